"""EMR Serverless for the Spark twins (``cryptodudez/spark/``)."""

import pulumi
import pulumi_aws as aws

from cryptodudez_infra import iam
from cryptodudez_infra.tags import named


class Spark(pulumi.ComponentResource):
    """An EMR Serverless Spark application and the job execution role it runs as.

    The role reads the lake, writes only ``features/`` and reads the Glue catalogue; the
    application starts on submission and stops after 15 idle minutes.
    """

    def __init__(self, name: str, *, prefix: str, release_label: str, arns: iam.LakeArns,
                 tags: dict[str, str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cryptodudez:spark:Spark", name, None, opts)
        self.application = aws.emrserverless.Application(
            f"{name}-app", name=f"{prefix}-spark", release_label=release_label, type="spark",
            auto_start_configuration={"enabled": True},
            auto_stop_configuration={"enabled": True, "idle_timeout_minutes": 15},
            maximum_capacity={"cpu": "16 vCPU", "memory": "64 GB"},
            tags=named(tags, f"{prefix}-spark"), opts=pulumi.ResourceOptions(parent=self))
        self.execution_role = iam.role(
            f"{name}-execution", service="emr-serverless.amazonaws.com",
            statements=[*iam.lake_read(arns), *iam.lake_write(arns, "features"),
                        *iam.glue(arns, write=False)],
            tags=named(tags, f"{prefix}-spark"), parent=self,
            description="EMR Serverless job runs of the Spark twins")
        self.register_outputs({"application_id": self.application.id,
                               "execution_role_arn": self.execution_role.arn})
