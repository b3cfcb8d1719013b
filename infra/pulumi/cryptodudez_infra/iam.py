"""Least-privilege IAM: one role per service, explicit actions on the stack's own ARNs."""

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from cryptodudez_infra.tags import assume_role_policy, policy_document, statement


@dataclass(frozen=True)
class LakeArns:
    """The ARNs the policies are scoped to."""

    bucket: pulumi.Output[str]
    lake_prefix: str
    key: pulumi.Output[str]
    glue_catalog: pulumi.Output[str]
    glue_database: pulumi.Output[str]
    glue_tables: pulumi.Output[str]
    landing_queue: pulumi.Output[str]

    def objects(self, layer: str = "") -> pulumi.Output[str]:
        """ARN pattern of the objects under ``<lake prefix>/<layer>``."""
        path = "/".join(p for p in (self.lake_prefix, layer) if p)
        return self.bucket.apply(lambda arn: f"{arn}/{path}/*" if path else f"{arn}/*")

    def list_condition(self, *layers: str) -> dict[str, Any]:
        """``s3:ListBucket`` limited to the given layers (the whole lake when none)."""
        base = f"{self.lake_prefix}/" if self.lake_prefix else ""
        prefixes = [f"{base}{layer}/*" for layer in layers] or [f"{base}*"]
        return {"StringLike": {"s3:prefix": prefixes}}


def lake_read(arns: LakeArns, *layers: str) -> list[dict[str, Any]]:
    """Read the given layers (all when none) and decrypt them."""
    objects = [arns.objects(layer) for layer in layers] or [arns.objects()]
    return [
        statement("LakeList", ["s3:ListBucket", "s3:ListBucketVersions"], [arns.bucket],
                  arns.list_condition(*layers)),
        statement("LakeRead", ["s3:GetObject", "s3:GetObjectVersion"], objects),
        statement("LakeDecrypt", ["kms:Decrypt"], [arns.key]),
    ]


def lake_write(arns: LakeArns, *layers: str) -> list[dict[str, Any]]:
    """Write and delete under the given layers (all when none), encrypting with the key."""
    objects = [arns.objects(layer) for layer in layers] or [arns.objects()]
    return [
        statement("LakeWrite", ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                  objects),
        statement("LakeEncrypt", ["kms:GenerateDataKey"], [arns.key]),
    ]


def glue(arns: LakeArns, *, write: bool) -> list[dict[str, Any]]:
    """Glue on the lake's database and its tables (read, or read and maintain tables)."""
    actions = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartitions"]
    if write:
        actions += ["glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable"]
    return [statement("GlueCatalog", actions,
                      [arns.glue_catalog, arns.glue_database, arns.glue_tables])]


def role(name: str, *, service: str, statements: list[dict[str, Any]], tags: dict[str, str],
         parent: pulumi.Resource, description: str,
         managed: tuple[str, ...] = ()) -> aws.iam.Role:
    """A role ``service`` assumes, with one inline policy of ``statements`` (if any)."""
    child = pulumi.ResourceOptions(parent=parent)
    created = aws.iam.Role(name, assume_role_policy=assume_role_policy(service),
                           description=description, tags=tags, opts=child)
    if statements:
        aws.iam.RolePolicy(f"{name}-policy", role=created.id, policy=policy_document(statements),
                           opts=child)
    for i, arn in enumerate(managed):
        aws.iam.RolePolicyAttachment(f"{name}-managed-{i}", role=created.name,
                                     policy_arn=arn, opts=child)
    return created
