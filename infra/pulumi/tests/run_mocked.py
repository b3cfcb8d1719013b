"""Run the Pulumi program under ``pulumi.runtime.set_mocks`` and print what it registered.

    python infra/pulumi/tests/run_mocked.py [--unsafe VARIANT ...] [--config KEY=VALUE ...]

Prints one JSON document: ``{"resources": [{"type", "name", "id", "arn", "inputs"}...],
"outputs": {...}, "violations": [...]}``. No Pulumi CLI, no AWS provider plugin and no
network are involved: every resource and invoke is answered by the mocks below. The mocks are
process-global, so this runs as its own process (the tests call it with ``subprocess``).

``--unsafe`` applies a deliberately unsafe change to the registered resources through a stack
transformation (so the change reaches the mocks exactly as program code would):
public_bucket, sse_s3, wildcard_iam, untagged_queue, public_db.
"""

import argparse
import json
import runpy
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pulumi

PROGRAM = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROGRAM))

from cryptodudez_infra.policy import policy_violations  # noqa: E402

ACCOUNT = "123456789012"
REGION = "eu-central-1"
INVOKES: dict[str, dict[str, Any]] = {
    "aws:index/getRegion:getRegion": {"id": REGION, "name": REGION, "region": REGION},
    "aws:index/getCallerIdentity:getCallerIdentity": {
        "id": ACCOUNT, "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root",
        "userId": "mock"},
    "aws:index/getAvailabilityZones:getAvailabilityZones": {
        "id": REGION, "names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
        "zoneIds": ["euc1-az1", "euc1-az2", "euc1-az3"]},
}
UNSAFE = ("public_bucket", "sse_s3", "wildcard_iam", "untagged_queue", "public_db")


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers every resource with its inputs plus plausible computed outputs, and records it."""

    def __init__(self) -> None:
        self.resources: list[dict[str, Any]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id = f"{args.name}-id"
        service = args.typ.split(":")[1].split("/")[0]
        physical = args.inputs.get("name") or args.inputs.get("bucketPrefix", "") + args.name
        arn = f"arn:aws:{service}:{REGION}:{ACCOUNT}:{physical}"
        if args.typ == "aws:s3/bucket:Bucket":
            arn = f"arn:aws:s3:::{physical}"
        self.resources.append({"type": args.typ, "name": args.name, "id": resource_id,
                               "arn": arn, "inputs": args.inputs})
        outputs = {**args.inputs, "arn": arn}
        if args.typ == "aws:s3/bucket:Bucket":
            outputs.update(bucket=physical)
        elif args.typ == "aws:sqs/queue:Queue":
            outputs.update(url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}")
        elif args.typ == "aws:rds/instance:Instance":
            outputs.update(address=f"{args.name}.rds.example", masterUserSecrets=[{
                "secretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds-{args.name}",
                "secretStatus": "active", "kmsKeyId": "key"}])
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            outputs.update(dnsName=f"{args.name}.elb.example")
        elif args.typ == "aws:kms/key:Key":
            outputs.update(keyId=f"key-{args.name}")
        elif args.typ == "aws:ecr/repository:Repository":
            outputs.update(
                repositoryUrl=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{args.inputs['name']}")
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs
             ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token not in INVOKES:
            msg = f"no mock for invoke {args.token}"
            raise NotImplementedError(msg)
        return INVOKES[args.token], []


def _unsafe(variants: list[str]) -> pulumi.ResourceTransformation:
    """A stack transformation that makes the named resources unsafe."""

    def transform(
            args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        props = dict(args.props)
        if "public_bucket" in variants and args.type_.endswith("BucketPublicAccessBlock"):
            props.update(block_public_acls=False, block_public_policy=False,
                         ignore_public_acls=False, restrict_public_buckets=False)
        elif "sse_s3" in variants and args.type_.endswith(
                "BucketServerSideEncryptionConfiguration"):
            props["rules"] = [{"apply_server_side_encryption_by_default": {
                "sse_algorithm": "AES256"}}]
        elif "wildcard_iam" in variants and args.type_ == "aws:iam/rolePolicy:RolePolicy":
            props["policy"] = json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
        elif "untagged_queue" in variants and args.type_ == "aws:sqs/queue:Queue":
            props["tags"] = None
        elif "public_db" in variants and args.type_ == "aws:rds/instance:Instance":
            props.update(publicly_accessible=True, storage_encrypted=False)
        else:
            return None
        return pulumi.ResourceTransformationResult(props, args.opts)

    return transform


def run(unsafe: list[str], config: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``__main__.py`` under the mocks; the registered resources, outputs and violations.

    ``config``: stack configuration (``cryptodudez:key`` to value), as ``pulumi config set``.
    """
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="cryptodudez", stack="mocked", preview=False)
    pulumi.runtime.set_all_config(config or {})
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        if unsafe:
            pulumi.runtime.register_stack_transformation(_unsafe(unsafe))
        namespace = runpy.run_path(str(PROGRAM / "__main__.py"), run_name="__main__")
        exported = {k: v for k, v in namespace.items()
                    if k in ("lake", "services", "database", "spark")}
        return pulumi.Output.all(
            lake_uri=exported["lake"].uri, url=exported["services"].url,
            secret=exported["database"].secret_arn, image=namespace["image"],
        ).apply(outputs.update)

    program()
    resources = sorted(mocks.resources, key=lambda r: (r["type"], r["name"]))
    return {"resources": resources, "outputs": outputs,
            "violations": [asdict(v) for v in policy_violations(resources)]}


def main() -> int:
    """Print the mocked run as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--unsafe", action="append", choices=UNSAFE, default=[])
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="stack configuration, e.g. cryptodudez:certificateArn=arn:...")
    args = parser.parse_args()
    config = dict(item.split("=", 1) for item in args.config)
    json.dump(run(args.unsafe, config), sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
