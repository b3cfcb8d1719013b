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
})
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
            *_rds_violations(listed)]
