"""Dagster (webserver, daemon, code location) and the prediction API on ECS Fargate."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from cryptodudez_infra import iam
from cryptodudez_infra.network import Network
from cryptodudez_infra.tags import named, statement

EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2 with forward-secret ciphers only (AWS's recommended listener policy)."""
CODE_LOCATION_PORT = 4000
API_PATHS = ("/predict", "/health", "/signal", "/coin", "/sentiment", "/merged", "/correlation",
             "/schema")
"""Where the prediction API's routes start (``serving.app.create_app``: ``/predict``,
``/health``, ``/signal/eth``, the four mood routes, the OpenAPI document and Swagger UI under
``/schema``). The load balancer sends each of these, and everything that extends it, to the
API (a trailing slash included: the API answers ``/health/`` as ``/health``) and every other
path to the Dagster UI. ``tests/infra/test_alb_routing.py`` fails when a route of the app is
missing."""
MAX_CONDITION_VALUES = 5
"""Values an ALB rule's conditions may hold in all (an AWS quota that cannot be raised)."""
API_RULE_PRIORITY = 10
"""Priority of the first API rule; the next ones follow it (the webserver's ``/*`` is 1000)."""
WEBSERVER_RULE_PRIORITY = 1000


def api_path_rules() -> list[list[str]]:
    """The path patterns of the API's listener rules, at most ``MAX_CONDITION_VALUES`` a rule."""
    patterns = [f"{path}*" for path in API_PATHS]
    return [patterns[i:i + MAX_CONDITION_VALUES]
            for i in range(0, len(patterns), MAX_CONDITION_VALUES)]


@dataclass(frozen=True)
class ServiceSpec:
    """One long-running role of the image (see the Dockerfile's header)."""

    name: str
    command: list[str]
    cpu: int
    memory: int
    security_group: pulumi.Input[str]
    port: int | None = None
    desired_count: int = 1
    dagster_storage: bool = True
    health_path: str | None = None
    statements: list[dict[str, Any]] = field(default_factory=list)


class Services(pulumi.ComponentResource):
    """The ECS cluster, one task definition, role, log group and service per role, and the ALB.

    All four services run the image built from the Dockerfile with its documented commands:
    ``webserver`` (:3000, behind the ALB on every path the API does not own), ``daemon``
    (exactly one task), the code location (``code-location --port 4000``, a Dagster code
    server found through Cloud Map) and ``serve`` (the prediction API, :8000, behind the ALB
    on ``API_PATHS``).
    """

    def __init__(self, name: str, *, prefix: str, region: str, image: pulumi.Input[str],
                 vpc_id: pulumi.Input[str], public_subnet_ids: Sequence[pulumi.Input[str]],
                 private_subnet_ids: Sequence[pulumi.Input[str]], network: Network,
                 lake_uri: pulumi.Input[str], glue_database: str, arns: iam.LakeArns,
                 db_address: pulumi.Input[str], db_secret_arn: pulumi.Input[str],
                 db_key_arn: pulumi.Input[str], landing_queue_url: pulumi.Input[str],
                 api_desired_count: int, log_retention_days: int, tags: dict[str, str],
                 certificate_arn: str = "", spark_env: Sequence[dict[str, Any]] = (),
                 spark_statements: Sequence[dict[str, Any]] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cryptodudez:services:Services", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster", name=prefix,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            tags=named(tags, prefix), opts=child)
        namespace = aws.servicediscovery.PrivateDnsNamespace(
            f"{name}-namespace", name=f"{prefix}.internal", vpc=vpc_id,
            description="Dagster code location", tags=tags, opts=child)
        code_host = f"code-location.{prefix}.internal"

        self.alb = aws.lb.LoadBalancer(
            f"{name}-alb", name_prefix="cdz-", load_balancer_type="application",
            internal=False, security_groups=[network.alb_sg.id], subnets=list(public_subnet_ids),
            drop_invalid_header_fields=True, tags=named(tags, f"{prefix}-alb"), opts=child)

        specs = [
            ServiceSpec("webserver", ["webserver", "--port", "3000"], 512, 1024,
                        network.webserver_sg.id, port=3000, health_path="/server_info"),
            ServiceSpec("daemon", ["daemon"], 512, 1024, network.daemon_sg.id),
            ServiceSpec(
                "code-location",
                # awsvpc: the task's own interface (the image listens on 0.0.0.0); only the
                # code-location SG lets anyone in.
                ["code-location", "--port", str(CODE_LOCATION_PORT)],
                1024, 4096, network.code_sg.id, port=CODE_LOCATION_PORT,
                statements=[*iam.lake_read(arns), *iam.lake_write(arns),
                            *iam.glue(arns, write=True),
                            # Nothing reads the queue yet (the landing sensor lists raw/
                            # on S3 each tick); kept for an event-driven sensor.
                            statement("LandingQueue",
                                      ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                                       "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
                                      [arns.landing_queue]),
                            # Runs execute here: the spark-job engine starts EMR jobs.
                            *spark_statements]),
            ServiceSpec("api", ["serve", "--port", "8000"], 1024, 2048, network.api_sg.id,
                        port=8000, desired_count=api_desired_count, dagster_storage=False,
                        health_path="/health",
                        statements=[*iam.lake_read(arns, "models", "validated", "features")]),
        ]
        environment = [
            {"name": "CRYPTODUDEZ_LAKE", "value": lake_uri},
            {"name": "CRYPTODUDEZ_GLUE_DATABASE", "value": glue_database},
            {"name": "AWS_REGION", "value": region},
            {"name": "DAGSTER_HOME", "value": "/data/dagster"},
        ]
        dagster_env = [
            {"name": "DAGSTER_PG_HOST", "value": db_address},
            {"name": "DAGSTER_PG_DB", "value": "dagster"},
            {"name": "DAGSTER_PG_USERNAME", "value": "dagster"},
            {"name": "CRYPTODUDEZ_CODE_LOCATION", "value": f"{code_host}:{CODE_LOCATION_PORT}"},
            # Set for an event-driven landing sensor; no code reads it yet.
            {"name": "CRYPTODUDEZ_LANDING_QUEUE_URL", "value": landing_queue_url},
            *spark_env,
        ]

        not_found = [{"type": "fixed-response", "fixed_response": {
            "content_type": "text/plain", "message_body": "not found", "status_code": "404"}}]
        if certificate_arn:
            # HTTPS only: :443 with a TLS 1.2+ policy; :80 answers nothing but a redirect.
            self.listener = aws.lb.Listener(
                f"{name}-https", load_balancer_arn=self.alb.arn, port=443, protocol="HTTPS",
                ssl_policy=TLS_POLICY, certificate_arn=certificate_arn,
                default_actions=not_found, tags=named(tags, f"{prefix}-https"), opts=child)
            aws.lb.Listener(
                f"{name}-http", load_balancer_arn=self.alb.arn, port=80, protocol="HTTP",
                default_actions=[{"type": "redirect", "redirect": {
                    "port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}],
                tags=named(tags, f"{prefix}-http"), opts=child)
        else:
            self.listener = aws.lb.Listener(
                f"{name}-http", load_balancer_arn=self.alb.arn, port=80, protocol="HTTP",
                default_actions=not_found, tags=named(tags, f"{prefix}-http"), opts=child)
        self.log_groups: dict[str, aws.cloudwatch.LogGroup] = {}
        self.services: dict[str, aws.ecs.Service] = {}
        for priority, spec in enumerate(specs, start=1):
            svc = f"{name}-{spec.name}"
            log_group = aws.cloudwatch.LogGroup(
                svc, name=f"/ecs/{prefix}/{spec.name}", retention_in_days=log_retention_days,
                tags=named(tags, f"{prefix}-{spec.name}"), opts=child)
            self.log_groups[spec.name] = log_group
            execution_statements = [statement(
                "Logs", ["logs:CreateLogStream", "logs:PutLogEvents"],
                [log_group.arn.apply(lambda arn: f"{arn}:*")])]
            secrets = []
            if spec.dagster_storage:
                execution_statements += [
                    statement("DagsterStorageSecret", ["secretsmanager:GetSecretValue"],
                              [db_secret_arn]),
                    statement("DagsterStorageSecretKey", ["kms:Decrypt"], [db_key_arn])]
                secrets = [{"name": "DAGSTER_PG_PASSWORD",
                            "valueFrom": pulumi.Output.concat(db_secret_arn, ":password::")}]
            execution_role = iam.role(
                f"{svc}-execution", service="ecs-tasks.amazonaws.com",
                statements=execution_statements, managed=(EXECUTION_POLICY,),
                tags=named(tags, f"{prefix}-{spec.name}-execution"), parent=self,
                description=f"ECS pulls the image and starts {spec.name}")
            task_role = iam.role(
                f"{svc}-task", service="ecs-tasks.amazonaws.com", statements=spec.statements,
                tags=named(tags, f"{prefix}-{spec.name}-task"), parent=self,
                description=f"what {spec.name} may do in AWS")
            container: dict[str, Any] = {
                "name": spec.name, "image": image, "essential": True,
                "command": spec.command,
                "environment": environment + (dagster_env if spec.dagster_storage else []),
                "secrets": secrets,
                "portMappings": [{"containerPort": spec.port, "protocol": "tcp"}]
                if spec.port else [],
                "readonlyRootFilesystem": False,
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": log_group.name, "awslogs-region": region,
                    "awslogs-stream-prefix": spec.name}},
            }
            task = aws.ecs.TaskDefinition(
                svc, family=f"{prefix}-{spec.name}", cpu=str(spec.cpu),
                memory=str(spec.memory), network_mode="awsvpc",
                requires_compatibilities=["FARGATE"],
                runtime_platform={"operating_system_family": "LINUX",
                                  "cpu_architecture": "X86_64"},
                execution_role_arn=execution_role.arn, task_role_arn=task_role.arn,
                container_definitions=pulumi.Output.json_dumps([container]),
                tags=named(tags, f"{prefix}-{spec.name}"), opts=child)
            load_balancers: list[aws.ecs.ServiceLoadBalancerArgs] = []
            registry: aws.ecs.ServiceServiceRegistriesArgs | None = None
            if spec.health_path and spec.port:
                target = aws.lb.TargetGroup(
                    svc, name_prefix=f"cdz{priority}", port=spec.port, protocol="HTTP",
                    target_type="ip", vpc_id=vpc_id,
                    health_check={"path": spec.health_path, "matcher": "200"},
                    tags=named(tags, f"{prefix}-{spec.name}"), opts=child)
                # The API's paths first (several rules: an ALB rule holds at most five
                # values), then the Dagster UI on everything else.
                rules = (enumerate(api_path_rules(), start=API_RULE_PRIORITY)
                         if spec.name == "api" else [(WEBSERVER_RULE_PRIORITY, ["/*"])])
                for n, (rule_priority, patterns) in enumerate(rules):
                    aws.lb.ListenerRule(
                        svc if n == 0 else f"{svc}-{n + 1}", listener_arn=self.listener.arn,
                        priority=rule_priority,
                        conditions=[{"path_pattern": {"values": patterns}}],
                        actions=[{"type": "forward", "target_group_arn": target.arn}],
                        tags=named(tags, f"{prefix}-{spec.name}"), opts=child)
                load_balancers = [aws.ecs.ServiceLoadBalancerArgs(
                    target_group_arn=target.arn, container_name=spec.name,
                    container_port=spec.port)]
            elif spec.port:
                discovery = aws.servicediscovery.Service(
                    svc, name=spec.name, namespace_id=namespace.id,
                    dns_config={"namespace_id": namespace.id, "routing_policy": "MULTIVALUE",
                                "dns_records": [{"type": "A", "ttl": 10}]},
                    tags=named(tags, f"{prefix}-{spec.name}"), opts=child)
                registry = aws.ecs.ServiceServiceRegistriesArgs(registry_arn=discovery.arn)
            self.services[spec.name] = aws.ecs.Service(
                svc, name=spec.name, cluster=self.cluster.arn, task_definition=task.arn,
                desired_count=spec.desired_count, launch_type="FARGATE",
                network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                    subnets=list(private_subnet_ids), security_groups=[spec.security_group],
                    assign_public_ip=False),
                load_balancers=load_balancers, service_registries=registry,
                deployment_minimum_healthy_percent=0 if spec.name == "daemon" else 50,
                deployment_maximum_percent=100 if spec.name == "daemon" else 200,
                propagate_tags="SERVICE", enable_execute_command=False,
                tags=named(tags, f"{prefix}-{spec.name}"), opts=child)
        scheme = "https://" if certificate_arn else "http://"
        self.url = pulumi.Output.concat(scheme, self.alb.dns_name)
        self.register_outputs({"url": self.url, "cluster": self.cluster.name})
