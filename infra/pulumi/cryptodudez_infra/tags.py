"""Helpers shared by the components: tags and IAM policy documents."""

import json
from collections.abc import Sequence
from typing import Any

import pulumi


def named(tags: dict[str, str], name: str) -> dict[str, str]:
    """``tags`` plus a ``Name`` tag."""
    return {**tags, "Name": name}


def statement(sid: str, actions: Sequence[str], resources: Sequence[pulumi.Input[str]],
              condition: dict[str, Any] | None = None) -> dict[str, Any]:
    """One Allow statement (explicit actions only; ``policy_violations`` rejects wildcards)."""
    stmt: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": list(actions),
                            "Resource": list(resources)}
    if condition:
        stmt["Condition"] = condition
    return stmt


def policy_document(statements: Sequence[dict[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document as JSON, resolving the Outputs (ARNs) inside it."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def assume_role_policy(service: str) -> str:
    """A trust policy letting ``service`` (``ecs-tasks.amazonaws.com``, ...) assume a role."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}]})
