"""EMR Serverless for the Spark twins (``cryptodudez/spark/``), and what starts their jobs."""

from typing import Any

import pulumi
import pulumi_aws as aws

from cryptodudez_infra import iam
from cryptodudez_infra.tags import named, statement

EMR_SERVICE = "emr-serverless.amazonaws.com"


class Spark(pulumi.ComponentResource):
    """An EMR Serverless Spark application, the job execution role, and the jobs' log group.

    The role reads the lake (the job entry points are uploaded to its ``code/``), writes only
    ``features/`` and reads the Glue catalogue; the application starts on submission and
    stops after 15 idle minutes. Its drivers log to the stack's own log group, where Dagster
    reads the jobs' Pipes messages (``cryptodudez.resources.spark_jobs``).
    """

    def __init__(self, name: str, *, prefix: str, release_label: str, arns: iam.LakeArns,
                 logs_arn: str, lake_uri: pulumi.Input[str], log_retention_days: int,
                 tags: dict[str, str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cryptodudez:spark:Spark", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=f"/aws/emr-serverless/{prefix}",
            retention_in_days=log_retention_days, tags=named(tags, f"{prefix}-spark"),
            opts=child)
        self.application = aws.emrserverless.Application(
            f"{name}-app", name=f"{prefix}-spark", release_label=release_label, type="spark",
            auto_start_configuration={"enabled": True},
            auto_stop_configuration={"enabled": True, "idle_timeout_minutes": 15},
            maximum_capacity={"cpu": "16 vCPU", "memory": "64 GB"},
            monitoring_configuration={"cloudwatch_logging_configuration": {
                "enabled": True, "log_group_name": self.log_group.name}},
            tags=named(tags, f"{prefix}-spark"), opts=child)
        self._streams = self.log_group.arn.apply(lambda arn: f"{arn}:*")
        self.execution_role = iam.role(
            f"{name}-execution", service=EMR_SERVICE,
            statements=[*iam.lake_read(arns), *iam.lake_write(arns, "features"),
                        *iam.glue(arns, write=False),
                        statement("JobLogGroups", ["logs:DescribeLogGroups"],
                                  [f"{logs_arn}:log-group:*"]),
                        statement("JobLogs", ["logs:CreateLogStream", "logs:DescribeLogStreams",
                                              "logs:PutLogEvents"], [self._streams])],
            tags=named(tags, f"{prefix}-spark"), parent=self,
            description="EMR Serverless job runs of the Spark twins")
        # The project's packed virtualenv (docs/spark.md), uploaded beside the entry points.
        self.spark_submit_parameters = pulumi.Output.concat(
            "--conf spark.archives=", lake_uri, "/code/venv.tar.gz#environment",
            " --conf spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON=./environment/bin/python",
            " --conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python",
            " --conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python")
        self.register_outputs({"application_id": self.application.id,
                               "execution_role_arn": self.execution_role.arn})

    def starter_statements(self) -> list[dict[str, Any]]:
        """What the Dagster process that starts the jobs may do: start (with Dagster's tags),
        watch and cancel runs of this application, hand them this role only, and read their
        driver logs."""
        app = self.application.arn
        return [
            statement("SparkJobRuns",
                      ["emr-serverless:GetApplication", "emr-serverless:StartJobRun",
                       "emr-serverless:GetJobRun", "emr-serverless:CancelJobRun",
                       "emr-serverless:GetDashboardForJobRun", "emr-serverless:TagResource"],
                      [app, app.apply(lambda arn: f"{arn}/jobruns/*")]),
            statement("SparkJobRole", ["iam:PassRole"], [self.execution_role.arn],
                      {"StringEquals": {"iam:PassedToService": EMR_SERVICE}}),
            statement("SparkJobLogs", ["logs:DescribeLogStreams", "logs:GetLogEvents"],
                      [self.log_group.arn, self._streams]),
        ]

    def environment(self) -> list[dict[str, Any]]:
        """The settings that send the ``spark-job`` engine's jobs here (``Settings``)."""
        return [
            {"name": "CRYPTODUDEZ_EMR_APPLICATION_ID", "value": self.application.id},
            {"name": "CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN", "value": self.execution_role.arn},
            {"name": "CRYPTODUDEZ_EMR_SPARK_SUBMIT_PARAMETERS",
             "value": self.spark_submit_parameters},
            {"name": "CRYPTODUDEZ_EMR_LOG_GROUP", "value": self.log_group.name},
        ]
