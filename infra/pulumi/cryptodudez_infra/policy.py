"""Policy as code: the rules every resource of the stack must satisfy.

``policy_violations`` reads the resources as the engine receives them (type, name and wire
inputs with camelCase keys; the Pulumi mocks record exactly these), so the tests check what
would be deployed, not what the components meant to do.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED_TAGS = ("project", "environment", "owner", "managed-by")

# Resource types that take no tags (sub-resources of a tagged one); every other aws: type
# must carry REQUIRED_TAGS, so a new resource type is checked until listed here.
UNTAGGABLE = frozenset({
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketNotification:BucketNotification",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:kms/alias:Alias",
    "aws:sqs/queuePolicy:QueuePolicy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
})
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
TLS_POLICIES = frozenset({"ELBSecurityPolicy-TLS13-1-2-2021-06",
                          "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
                          "ELBSecurityPolicy-TLS13-1-3-2021-06"})
"""Listener policies allowing only TLS 1.2 and 1.3 with forward-secret ciphers."""
ANYWHERE = "0.0.0.0/0"
BUCKET = "aws:s3/bucket:Bucket"
IDENTITY_POLICIES = frozenset({"aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy",
                               "aws:iam/userPolicy:UserPolicy",
                               "aws:iam/groupPolicy:GroupPolicy"})
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                       "restrictPublicBuckets")


@dataclass(frozen=True)
class Violation:
    """One broken rule: which rule, on which resource (``type::name``), and why."""

    rule: str
    resource: str
    detail: str


def _key(resource: Mapping[str, Any]) -> str:
    return f"{resource['type']}::{resource['name']}"


def _statements(policy: Any) -> list[dict[str, Any]]:
    document = json.loads(policy) if isinstance(policy, str) else policy or {}
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _by_bucket(resources: Iterable[Mapping[str, Any]],
               type_: str) -> dict[str, list[Mapping[str, Any]]]:
    found: dict[str, list[Mapping[str, Any]]] = {}
    for resource in resources:
        if resource["type"] == type_:
            found.setdefault(str(resource["inputs"].get("bucket")), []).append(resource)
    return found


def _bucket_violations(resources: list[Mapping[str, Any]]) -> Iterator[Violation]:
    sse = _by_bucket(resources, "aws:s3/bucketServerSideEncryptionConfiguration:"
                                "BucketServerSideEncryptionConfiguration")
    blocks = _by_bucket(resources, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    policies = _by_bucket(resources, "aws:s3/bucketPolicy:BucketPolicy")
    versioning = _by_bucket(resources, "aws:s3/bucketVersioning:BucketVersioning")
    for bucket in (r for r in resources if r["type"] == BUCKET):
        where, bucket_id = _key(bucket), str(bucket.get("id"))
        rules = [rule for config in sse.get(bucket_id, [])
                 for rule in config["inputs"].get("rules", [])]
        if not any((rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")
                   in ("aws:kms", "aws:kms:dsse") for rule in rules):
            yield Violation("s3-sse-kms", where, "no default encryption with KMS")
        if not any(all(block["inputs"].get(flag) is True for flag in PUBLIC_ACCESS_FLAGS)
                   for block in blocks.get(bucket_id, [])):
            yield Violation("s3-public-access", where,
                            f"public access not fully blocked ({', '.join(PUBLIC_ACCESS_FLAGS)})")
        if not any(_denies_plain_http(s) for policy in policies.get(bucket_id, [])
                   for s in _statements(policy["inputs"].get("policy"))):
            yield Violation("s3-tls-only", where,
                            "no Deny statement on aws:SecureTransport = false")
        if not any((v["inputs"].get("versioningConfiguration") or {}).get("status") == "Enabled"
                   for v in versioning.get(bucket_id, [])):
            yield Violation("s3-versioning", where, "versioning not enabled")


def _denies_plain_http(statement: Mapping[str, Any]) -> bool:
    condition = (statement.get("Condition") or {}).get("Bool") or {}
    actions = _as_list(statement.get("Action"))
    return (statement.get("Effect") == "Deny" and "*" in _as_list(statement.get("Principal"))
            and str(condition.get("aws:SecureTransport")).lower() == "false"
            and ("s3:*" in actions or "*" in actions))


def _iam_violations(resources: list[Mapping[str, Any]]) -> Iterator[Violation]:
    for policy in (r for r in resources if r["type"] in IDENTITY_POLICIES):
        for statement in _statements(policy["inputs"].get("policy")):
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement:
                yield Violation("iam-wildcard-action", _key(policy), "Allow with NotAction")
            for action in _as_list(statement.get("Action")):
                if "*" in str(action):
                    yield Violation("iam-wildcard-action", _key(policy),
                                    f"Allow on {action!r}")
            if "*" in _as_list(statement.get("Resource")):
                yield Violation("iam-wildcard-resource", _key(policy), "Allow on Resource '*'")
            if "iam:PassRole" in _as_list(statement.get("Action")) and not any(
                    "iam:PassedToService" in keys
                    for keys in (statement.get("Condition") or {}).values()):
                yield Violation("iam-passrole-unscoped", _key(policy),
                                "iam:PassRole without an iam:PassedToService condition")


def _tag_violations(resources: list[Mapping[str, Any]]) -> Iterator[Violation]:
    for resource in resources:
        if not resource["type"].startswith("aws:") or resource["type"] in UNTAGGABLE:
            continue
        tags = resource["inputs"].get("tags") or {}
        missing = [tag for tag in REQUIRED_TAGS if not tags.get(tag)]
        if missing:
            yield Violation("tags", _key(resource), f"missing tags {missing}")


def _rds_violations(resources: list[Mapping[str, Any]]) -> Iterator[Violation]:
    for db in (r for r in resources if r["type"] in ("aws:rds/instance:Instance",
                                                     "aws:rds/cluster:Cluster")):
        inputs = db["inputs"]
        if inputs.get("publiclyAccessible"):
            yield Violation("rds-private", _key(db), "publicly accessible")
        if inputs.get("storageEncrypted") is not True:
            yield Violation("rds-encryption", _key(db), "storage not encrypted")
        if inputs.get("password") or inputs.get("manageMasterUserPassword") is not True:
            yield Violation("rds-password-in-secrets-manager", _key(db),
                            "master password not managed in Secrets Manager")


def _forwards(actions: Any) -> bool:
    return any(a.get("type") == "forward" for a in _as_list(actions))


def _alb_violations(resources: list[Mapping[str, Any]]) -> Iterator[Violation]:
    """HTTPS listeners use a TLS 1.2+ policy; plain HTTP never serves traffic next to HTTPS,
    and never from anywhere on the internet."""
    listeners = [r for r in resources if r["type"] == LISTENER]
    rules = [r for r in resources if r["type"] == LISTENER_RULE]
    groups = {r["id"]: r for r in resources if r["type"] == SECURITY_GROUP}
    balancers = {r["arn"]: r for r in resources if r["type"] == LOAD_BALANCER}
    https_balancers = {r["inputs"].get("loadBalancerArn") for r in listeners
                       if r["inputs"].get("protocol") == "HTTPS"}
    for listener in listeners:
        inputs = listener["inputs"]
        if inputs.get("protocol") == "HTTPS" and inputs.get("sslPolicy") not in TLS_POLICIES:
            yield Violation("alb-tls-policy", _key(listener),
                            f"TLS policy {inputs.get('sslPolicy')!r} allows old protocols")
        if inputs.get("protocol") != "HTTP":
            continue
        serves = _forwards(inputs.get("defaultActions")) or any(
            r["inputs"].get("listenerArn") == listener["arn"]
            and _forwards(r["inputs"].get("actions")) for r in rules)
        if not serves:
            continue
        balancer = inputs.get("loadBalancerArn")
        if balancer in https_balancers:
            yield Violation("alb-plaintext", _key(listener),
                            "plain HTTP serves traffic next to an HTTPS listener")
        lb = balancers.get(balancer)
        open_groups = [g for g in (groups.get(i) for i in
                                   _as_list(lb["inputs"].get("securityGroups")) if lb)
                       if g and any(ANYWHERE in _as_list(rule.get("cidrBlocks"))
                                    for rule in _as_list(g["inputs"].get("ingress")))]
        if open_groups:
            yield Violation("alb-public-plaintext", _key(listener),
                            "plain HTTP served to 0.0.0.0/0")


def _registry_violations(resources: list[Mapping[str, Any]]) -> Iterator[Violation]:
    for repo in (r for r in resources if r["type"] == ECR_REPOSITORY):
        inputs = repo["inputs"]
        if inputs.get("imageTagMutability") != "IMMUTABLE":
            yield Violation("ecr-immutable-tags", _key(repo), "image tags can be overwritten")
        if not (inputs.get("imageScanningConfiguration") or {}).get("scanOnPush"):
            yield Violation("ecr-scan-on-push", _key(repo), "images are not scanned on push")


def policy_violations(resources: Iterable[Mapping[str, Any]]) -> list[Violation]:
    """Every rule the registered ``resources`` break (empty when the stack is compliant).

    Args:
        resources: ``{"type", "name", "id", "inputs"}`` per registered resource, inputs as
            the engine receives them (camelCase keys, policies as JSON strings).

    Returns:
        The violations, in resource order per rule family.
    """
    listed = list(resources)
    return [*_bucket_violations(listed), *_iam_violations(listed), *_tag_violations(listed),
            *_rds_violations(listed), *_alb_violations(listed), *_registry_violations(listed)]
