"""The Pulumi program under mocks: what it would deploy, and the policy that guards it.

The program runs in its own process (``conftest.py``); these tests read what it registered.
"""

import copy
import dataclasses
import json
import re
from typing import Any

import pytest
import yaml
from cryptodudez_infra.config import StackConfig, declared_keys
from cryptodudez_infra.policy import REQUIRED_TAGS, UNTAGGABLE, Violation, policy_violations

from cryptodudez import cli
from cryptodudez.lake.layout import FEATURES, JOB_SCRATCH
from cryptodudez.settings import Settings
from tests.infra.conftest import CERTIFICATE, PROGRAM

# The infra tests stay on one xdist worker (./run test uses --dist loadgroup), so the
# Pulumi program runs under mocks once (session fixtures in tests/infra/conftest.py).
pytestmark = pytest.mark.xdist_group("pulumi")

BUCKET = "aws:s3/bucket:Bucket"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RDS = "aws:rds/instance:Instance"


def of(stack: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in stack["resources"] if r["type"] == type_]


def one(stack: dict[str, Any], type_: str) -> dict[str, Any]:
    found = of(stack, type_)
    assert len(found) == 1, [r["name"] for r in found]
    return found[0]


def statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(resource["inputs"]["policy"])["Statement"]


def test_the_program_is_compliant(stack: dict[str, Any]) -> None:
    assert stack["violations"] == []
    assert len(stack["resources"]) > 50


def test_lake_bucket_is_versioned_kms_encrypted_private_and_tls_only(
        stack: dict[str, Any]) -> None:
    bucket = one(stack, BUCKET)
    key = next(r for r in of(stack, "aws:kms/key:Key") if r["name"] == "lake-key")
    assert key["inputs"]["enableKeyRotation"] is True

    def attached(type_: str) -> dict[str, Any]:
        found = [r for r in of(stack, type_) if r["inputs"]["bucket"] == bucket["id"]]
        assert len(found) == 1
        return found[0]["inputs"]

    versioning = attached("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    [rule] = attached("aws:s3/bucketServerSideEncryptionConfiguration:"
                      "BucketServerSideEncryptionConfiguration")["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": key["arn"]}
    assert rule["bucketKeyEnabled"] is True
    block = attached("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block[flag] is True for flag in ("blockPublicAcls", "blockPublicPolicy",
                                                "ignorePublicAcls", "restrictPublicBuckets"))
    [deny] = statements({"inputs": attached("aws:s3/bucketPolicy:BucketPolicy")})
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(deny["Resource"]) == [bucket["arn"], f"{bucket['arn']}/*"]


def test_superseded_raw_versions_go_to_glacier_then_expire(stack: dict[str, Any]) -> None:
    lifecycle = one(stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    [rule] = [r for r in lifecycle["inputs"]["rules"] if r["id"] == "raw-noncurrent-versions"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {"prefix": "lake/raw/"}
    assert rule["noncurrentVersionTransitions"] == [{"noncurrentDays": 30,
                                                     "storageClass": "GLACIER"}]
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 365}
    assert "expiration" not in rule  # current versions under raw/ are never expired


def test_spark_job_scratch_results_expire(stack: dict[str, Any]) -> None:
    """The engine's scratch folder (the project's layout, not a copy of it) expires."""
    lifecycle = one(stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    [rule] = [r for r in lifecycle["inputs"]["rules"] if r["id"] == "job-scratch"]
    scratch = "/".join(["lake", FEATURES, "stock_features", JOB_SCRATCH]) + "/"
    assert rule["filter"] == {"prefix": scratch} and rule["status"] == "Enabled"
    assert rule["expiration"] == {"days": 2}
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 1}


def test_objects_created_under_raw_are_announced_on_the_landing_queue(
        stack: dict[str, Any]) -> None:
    queue = next(q for q in of(stack, "aws:sqs/queue:Queue") if q["name"] == "lake-landing")
    [target] = one(stack, "aws:s3/bucketNotification:BucketNotification")["inputs"]["queues"]
    assert target == {"queueArn": queue["arn"], "events": ["s3:ObjectCreated:*"],
                      "filterPrefix": "lake/raw/"}
    [allow] = statements(one(stack, "aws:sqs/queuePolicy:QueuePolicy"))
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": one(stack, BUCKET)["arn"]}}
    assert json.loads(queue["inputs"]["redrivePolicy"])["maxReceiveCount"] == 5


def test_glue_database_is_the_one_the_metastore_uses(stack: dict[str, Any]) -> None:
    database = one(stack, "aws:glue/catalogDatabase:CatalogDatabase")
    assert database["inputs"]["name"] == "cryptodudez"
    assert stack["outputs"]["lake_uri"].startswith("s3://")


def test_no_iam_policy_allows_a_wildcard_action_or_resource(stack: dict[str, Any]) -> None:
    policies = of(stack, ROLE_POLICY)
    assert len(policies) >= 6
    for policy in policies:
        for statement in statements(policy):
            assert statement["Effect"] == "Allow"
            assert all("*" not in action for action in statement["Action"]), policy["name"]
            assert "*" not in statement["Resource"], policy["name"]


def test_every_service_has_its_own_roles_scoped_to_what_it_uses(stack: dict[str, Any]) -> None:
    by_name = {p["name"]: statements(p) for p in of(stack, ROLE_POLICY)}
    api = by_name["services-api-task-policy"]
    api_actions = {a for s in api for a in s["Action"]}
    assert not {"s3:PutObject", "s3:DeleteObject", "glue:CreateTable"} & api_actions
    reads = next(s for s in api if s["Sid"] == "LakeRead")["Resource"]
    assert all(re.search(r"/lake/(models|validated|features)/\*$", r) for r in reads)
    code = {a for s in by_name["services-code-location-task-policy"] for a in s["Action"]}
    assert {"s3:PutObject", "glue:CreateTable", "sqs:ReceiveMessage"} <= code
    # The webserver and the daemon touch neither the lake nor the catalogue.
    assert "services-webserver-task-policy" not in by_name
    assert "services-daemon-task-policy" not in by_name
    spark = {a for s in by_name["spark-execution-policy"] for a in s["Action"]}
    assert "glue:CreateTable" not in spark
    task_defs = of(stack, "aws:ecs/taskDefinition:TaskDefinition")
    assert len({t["inputs"]["taskRoleArn"] for t in task_defs}) == 4
    assert len({t["inputs"]["executionRoleArn"] for t in task_defs}) == 4


def test_every_taggable_resource_carries_the_stack_tags(stack: dict[str, Any]) -> None:
    taggable = [r for r in stack["resources"]
                if r["type"].startswith("aws:") and r["type"] not in UNTAGGABLE]
    assert len(taggable) > 40
    for resource in taggable:
        tags = resource["inputs"].get("tags") or {}
        assert {t: tags.get(t) for t in REQUIRED_TAGS} == {
            "project": "cryptodudez", "environment": "dev", "owner": "data-platform",
            "managed-by": "pulumi"}, resource["name"]


def test_dagster_postgres_is_private_encrypted_and_its_password_in_secrets_manager(
        stack: dict[str, Any]) -> None:
    db = one(stack, RDS)["inputs"]
    assert db["engine"] == "postgres" and db["engineVersion"] == "16"
    assert db["publiclyAccessible"] is False
    assert db["storageEncrypted"] is True and db["kmsKeyId"]
    assert db["manageMasterUserPassword"] is True and "password" not in db
    assert db["deletionProtection"] is True
    secret = stack["outputs"]["secret"]
    assert secret.startswith("arn:aws:secretsmanager:")
    containers = [c for t in of(stack, "aws:ecs/taskDefinition:TaskDefinition")
                  for c in json.loads(t["inputs"]["containerDefinitions"])]
    injected = {c["name"]: c["secrets"] for c in containers}
    assert injected["api"] == []
    for name in ("webserver", "daemon", "code-location"):
        assert injected[name] == [{"name": "DAGSTER_PG_PASSWORD",
                                   "valueFrom": f"{secret}:password::"}]
    assert not any("PASSWORD" in e["name"] for c in containers for e in c["environment"])


def test_four_fargate_services_from_one_image_with_the_dockerfile_commands(
        stack: dict[str, Any]) -> None:
    services = {s["inputs"]["name"]: s["inputs"]
                for s in of(stack, "aws:ecs/service:Service")}
    assert sorted(services) == ["api", "code-location", "daemon", "webserver"]
    assert all(s["launchType"] == "FARGATE" for s in services.values())
    assert all(s["networkConfiguration"]["assignPublicIp"] is False for s in services.values())
    assert services["daemon"]["desiredCount"] == 1
    assert services["api"]["desiredCount"] == 2
    containers = {c["name"]: c for t in of(stack, "aws:ecs/taskDefinition:TaskDefinition")
                  for c in json.loads(t["inputs"]["containerDefinitions"])}
    repo = one(stack, "aws:ecr/repository:Repository")["inputs"]["name"]
    assert {c["image"] for c in containers.values()} == {
        f"123456789012.dkr.ecr.eu-central-1.amazonaws.com/{repo}:0.1.0"}
    assert containers["webserver"]["command"] == ["webserver", "--port", "3000"]
    assert containers["daemon"]["command"] == ["daemon"]
    assert containers["api"]["command"] == ["serve", "--port", "8000"]
    assert containers["code-location"]["command"] == ["code-location", "--port", "4000"]
    assert not any("entryPoint" in c for c in containers.values()), "the image's entry point"
    parser = cli._parser()  # every command is one of the image's CLI commands, as parsed
    for container in containers.values():
        parser.parse_args(container["command"])
    dagster_env = {e["name"]: e["value"] for e in containers["daemon"]["environment"]}
    settings = Settings.from_env({**dagster_env, "DAGSTER_PG_PASSWORD": "from-secrets-manager"})
    assert settings.code_location == "code-location.cryptodudez-dev.internal:4000"
    assert settings.dagster_pg_env
    env = {e["name"]: e["value"] for e in containers["api"]["environment"]}
    assert env["CRYPTODUDEZ_LAKE"] == stack["outputs"]["lake_uri"]
    assert env["CRYPTODUDEZ_GLUE_DATABASE"] == "cryptodudez"
    groups = {g["inputs"]["name"]: g["inputs"]
              for g in of(stack, "aws:cloudwatch/logGroup:LogGroup")
              if g["inputs"]["name"].startswith("/ecs/")}
    assert sorted(groups) == [f"/ecs/cryptodudez-dev/{n}" for n in sorted(services)]
    assert {g["retentionInDays"] for g in groups.values()} == {30}
    # Only the webserver and the API sit behind the load balancer.
    behind = sorted(n for n, s in services.items() if s.get("loadBalancers"))
    assert behind == ["api", "webserver"]
    ports = sorted(t["inputs"]["port"] for t in of(stack, "aws:lb/targetGroup:TargetGroup"))
    assert ports == [3000, 8000]


def test_spark_twins_run_on_emr_serverless(stack: dict[str, Any]) -> None:
    app = one(stack, "aws:emrserverless/application:Application")
    inputs = app["inputs"]
    assert inputs["type"] == "spark" and inputs["releaseLabel"].startswith("emr-7.")
    assert inputs["autoStopConfiguration"]["enabled"] is True
    group = next(g for g in of(stack, "aws:cloudwatch/logGroup:LogGroup")
                 if g["name"] == "spark-logs")
    assert group["inputs"]["retentionInDays"] == 30
    assert inputs["monitoringConfiguration"]["cloudwatchLoggingConfiguration"] == {
        "enabled": True, "logGroupName": group["inputs"]["name"]}


def test_dagster_starts_the_spark_jobs_on_its_application_only(stack: dict[str, Any]) -> None:
    """The Dagster services name the application and role (as ``Settings`` reads them), and
    only the code location, where runs execute, may start jobs, pass that one role to EMR
    Serverless alone, and read the jobs' logs."""
    app = one(stack, "aws:emrserverless/application:Application")
    role = next(r for r in of(stack, "aws:iam/role:Role") if r["name"] == "spark-execution")
    containers = {c["name"]: c for t in of(stack, "aws:ecs/taskDefinition:TaskDefinition")
                  for c in json.loads(t["inputs"]["containerDefinitions"])}
    for name in ("webserver", "daemon", "code-location"):
        env = {e["name"]: e["value"] for e in containers[name]["environment"]}
        settings = Settings.from_env({**env, "DAGSTER_PG_PASSWORD": "from-secrets-manager"})
        assert settings.emr_application_id == app["id"]
        assert settings.emr_execution_role_arn == role["arn"]
        assert settings.emr_spark_submit_parameters.startswith(
            f"--conf spark.archives={stack['outputs']['lake_uri']}/code/venv.tar.gz#environment")
        assert settings.emr_log_group == app["inputs"]["monitoringConfiguration"][
            "cloudwatchLoggingConfiguration"]["logGroupName"]
    api_env = {e["name"] for e in containers["api"]["environment"]}
    assert not any(name.startswith("CRYPTODUDEZ_EMR_") for name in api_env)
    by_name = {p["name"]: statements(p) for p in of(stack, ROLE_POLICY)}
    starters = sorted(name for name, found in by_name.items()
                      if any("emr-serverless:StartJobRun" in s["Action"] for s in found))
    assert starters == ["services-code-location-task-policy"]
    found = {s["Sid"]: s for s in by_name["services-code-location-task-policy"]}
    assert sorted(found["SparkJobRuns"]["Resource"]) == [app["arn"], f"{app['arn']}/jobruns/*"]
    assert found["SparkJobRole"]["Resource"] == [role["arn"]]
    assert found["SparkJobRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}
    group = next(g for g in of(stack, "aws:cloudwatch/logGroup:LogGroup")
                 if g["name"] == "spark-logs")
    assert sorted(found["SparkJobLogs"]["Resource"]) == [group["arn"], f"{group['arn']}:*"]
    assert sorted(found["SparkJobLogs"]["Action"]) == ["logs:DescribeLogStreams",
                                                       "logs:GetLogEvents"]
    execution = {s["Sid"]: s for s in by_name["spark-execution-policy"]}
    assert {a for s in execution.values() for a in s["Action"]} >= {
        "logs:CreateLogStream", "logs:PutLogEvents"}
    assert execution["LakeWrite"]["Resource"] == [f"{one(stack, BUCKET)['arn']}/lake/features/*"]


def test_every_config_key_is_described_with_a_default_in_pulumi_yaml() -> None:
    declared = declared_keys()
    assert all(spec.get("description") and "default" in spec for spec in declared.values())
    snake = {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k) for k in declared}
    assert snake == {f.name for f in dataclasses.fields(StackConfig)}
    project = yaml.safe_load((PROGRAM / "Pulumi.yaml").read_text())
    assert project["name"] == "cryptodudez" and project["runtime"]["name"] == "python"


@pytest.mark.parametrize(("rule", "resource"), [
    ("s3-public-access", "lake-bucket"),
    ("s3-sse-kms", "lake-bucket"),
    ("iam-wildcard-action", "services-code-location-task-policy"),
    ("iam-wildcard-resource", "spark-execution-policy"),
    ("tags", "lake-landing"),
    ("rds-private", "database-postgres"),
    ("rds-encryption", "database-postgres"),
])
def test_a_deliberately_unsafe_program_fails_the_policy(
        unsafe_stack: dict[str, Any], rule: str, resource: str) -> None:
    found = {(v["rule"], v["resource"].split("::")[1]) for v in unsafe_stack["violations"]}
    assert (rule, resource) in found


def _mutated(stack: dict[str, Any], type_: str, change: Any) -> list[dict[str, Any]]:
    resources = copy.deepcopy(stack["resources"])
    kept = []
    for resource in resources:
        changed = change(resource) if resource["type"] == type_ else resource
        if changed is not None:
            kept.append(changed)
    return kept


@pytest.mark.parametrize(("type_", "change", "rule"), [
    ("aws:s3/bucketPolicy:BucketPolicy", lambda r: None, "s3-tls-only"),
    ("aws:s3/bucketPolicy:BucketPolicy",
     lambda r: {**r, "inputs": {**r["inputs"], "policy": r["inputs"]["policy"].replace(
         '"Deny"', '"Allow"')}}, "s3-tls-only"),
    ("aws:s3/bucketVersioning:BucketVersioning",
     lambda r: {**r, "inputs": {**r["inputs"],
                                "versioningConfiguration": {"status": "Suspended"}}},
     "s3-versioning"),
    ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
     lambda r: None, "s3-sse-kms"),
    ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
     lambda r: {**r, "inputs": {**r["inputs"], "restrictPublicBuckets": False}},
     "s3-public-access"),
    (ROLE_POLICY, lambda r: {**r, "inputs": {**r["inputs"], "policy": json.dumps({
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::x"}]})}},
     "iam-wildcard-action"),
    (ROLE_POLICY, lambda r: {**r, "inputs": {**r["inputs"], "policy": json.dumps({
        "Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:x"}})}},
     "iam-wildcard-action"),
    (ROLE_POLICY, lambda r: {**r, "inputs": {**r["inputs"], "policy": json.dumps({
        "Statement": [{"Effect": "Allow", "Action": ["iam:PassRole"],
                       "Resource": ["arn:aws:iam::123456789012:role/x"]}]})}},
     "iam-passrole-unscoped"),
    (ROLE_POLICY, lambda r: {**r, "inputs": {**r["inputs"], "policy": json.dumps({
        "Statement": [{"Effect": "Allow", "Action": "iam:PassRole",
                       "Resource": ["arn:aws:iam::123456789012:role/x"],
                       "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-central-1"}}}]})}},
     "iam-passrole-unscoped"),
    (RDS, lambda r: {**r, "inputs": {**r["inputs"], "manageMasterUserPassword": False,
                                     "password": "hunter2"}},
     "rds-password-in-secrets-manager"),
    ("aws:ecs/cluster:Cluster",
     lambda r: {**r, "inputs": {**r["inputs"], "tags": {"project": "cryptodudez"}}}, "tags"),
])
def test_policy_rejects_each_unsafe_change(stack: dict[str, Any], type_: str, change: Any,
                                           rule: str) -> None:
    violations = policy_violations(_mutated(stack, type_, change))
    assert rule in {v.rule for v in violations}
    assert all(isinstance(v, Violation) for v in violations)


def test_policy_accepts_the_recorded_stack_in_process(stack: dict[str, Any]) -> None:
    assert policy_violations(stack["resources"]) == []


def _listeners(stack: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(r["inputs"]["port"]): r for r in of(stack, "aws:lb/listener:Listener")}


def test_without_a_certificate_plain_http_only_from_the_allowed_network(
        stack: dict[str, Any]) -> None:
    listeners = _listeners(stack)
    assert sorted(listeners) == [80]
    assert listeners[80]["inputs"]["protocol"] == "HTTP"
    assert stack["outputs"]["url"].startswith("http://")
    alb_sg = next(g for g in of(stack, "aws:ec2/securityGroup:SecurityGroup")
                  if g["name"] == "network-alb-sg")
    assert {c for rule in alb_sg["inputs"]["ingress"] for c in rule["cidrBlocks"]} == {
        "10.0.0.0/8"}


def test_with_a_certificate_https_only_and_http_redirects(https_stack: dict[str, Any]) -> None:
    listeners = _listeners(https_stack)
    assert sorted(listeners) == [80, 443]
    https = listeners[443]["inputs"]
    assert https["protocol"] == "HTTPS" and https["certificateArn"] == CERTIFICATE
    assert https["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert listeners[80]["inputs"]["defaultActions"] == [{"type": "redirect", "redirect": {
        "port": "443", "protocol": "HTTPS", "statusCode": "HTTP_301"}}]
    rules = of(https_stack, "aws:lb/listenerRule:ListenerRule")
    assert rules and {r["inputs"]["listenerArn"] for r in rules} == {listeners[443]["arn"]}
    assert https_stack["outputs"]["url"].startswith("https://")
    assert https_stack["violations"] == []


def test_the_image_registry_is_immutable_scanned_and_encrypted(stack: dict[str, Any]) -> None:
    repo = one(stack, "aws:ecr/repository:Repository")["inputs"]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
    lifecycle = json.loads(one(stack, "aws:ecr/lifecyclePolicy:LifecyclePolicy")
                           ["inputs"]["policy"])
    assert lifecycle["rules"][0]["selection"]["countNumber"] == 30


def _https_mutated(https_stack: dict[str, Any], change: Any) -> list[dict[str, Any]]:
    return [change(r) for r in copy.deepcopy(https_stack["resources"])]


def _set(resource: dict[str, Any], type_: str, port: int | None = None,
         **inputs: Any) -> dict[str, Any]:
    if resource["type"] != type_ or (port is not None and
                                     int(resource["inputs"].get("port", 0)) != port):
        return resource
    return {**resource, "inputs": {**resource["inputs"], **inputs}}


@pytest.mark.parametrize(("change", "rule"), [
    (lambda r: _set(r, "aws:lb/listener:Listener", 443,
                    sslPolicy="ELBSecurityPolicy-2016-08"), "alb-tls-policy"),
    (lambda r: _set(r, "aws:lb/listener:Listener", 80, defaultActions=[
        {"type": "forward", "targetGroupArn": "arn:tg"}]), "alb-plaintext"),
    (lambda r: _set(r, "aws:lb/listenerRule:ListenerRule", listenerArn="arn:aws:lb:"
                    "eu-central-1:123456789012:services-http"), "alb-plaintext"),
    (lambda r: _set(r, "aws:ecr/repository:Repository", imageTagMutability="MUTABLE"),
     "ecr-immutable-tags"),
    (lambda r: _set(r, "aws:ecr/repository:Repository",
                    imageScanningConfiguration={"scanOnPush": False}), "ecr-scan-on-push"),
])
def test_policy_rejects_unsafe_listener_and_registry_changes(
        https_stack: dict[str, Any], change: Any, rule: str) -> None:
    assert policy_violations(https_stack["resources"]) == []
    assert rule in {v.rule for v in policy_violations(_https_mutated(https_stack, change))}


def test_policy_rejects_plain_http_open_to_the_internet(stack: dict[str, Any]) -> None:
    def open_alb(resource: dict[str, Any]) -> dict[str, Any]:
        if resource["name"] != "network-alb-sg":
            return resource
        ingress = [{**rule, "cidrBlocks": ["0.0.0.0/0"]} for rule in resource["inputs"]["ingress"]]
        return {**resource, "inputs": {**resource["inputs"], "ingress": ingress}}

    assert policy_violations(stack["resources"]) == []
    found = {v.rule for v in policy_violations([open_alb(r) for r in stack["resources"]])}
    assert "alb-public-plaintext" in found
