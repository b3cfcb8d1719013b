"""``infra/pulumi/README.md`` says what the program does: its configuration and its commands."""

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

PROGRAM = Path(__file__).resolve().parents[2] / "infra" / "pulumi"
README = PROGRAM / "README.md"
if str(PROGRAM) not in sys.path:
    sys.path.insert(0, str(PROGRAM))

from cryptodudez_infra.config import declared_keys  # noqa: E402

pytestmark = pytest.mark.xdist_group("pulumi")


def config_table(text: str) -> dict[str, str]:
    """The README's configuration table: key to the default it shows (backticks removed)."""
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(
        r"^\| `([A-Za-z]+)` \| `([^`]*)` \|", section, flags=re.MULTILINE)}


def shown(default: Any) -> str:
    """A ``Pulumi.yaml`` default as the table shows it (an empty string as ``""``)."""
    return '""' if default == "" else str(default)


def test_the_configuration_table_lists_every_key_with_its_default() -> None:
    table = config_table(README.read_text())
    assert table == {key: shown(spec["default"]) for key, spec in declared_keys().items()}


def test_the_configuration_table_reader_sees_a_stale_default() -> None:
    text = README.read_text().replace("| `imageUri` | `\"\"` |", "| `imageUri` | `x:latest` |")
    assert config_table(text)["imageUri"] == "x:latest"
    assert "imageTag" not in config_table(text.replace("| `imageTag` |", "| imageTag |"))


def test_the_readme_names_each_containers_command(stack: dict[str, Any]) -> None:
    text = " ".join(README.read_text().split())  # the README wraps its lines
    containers = [c for t in stack["resources"]
                  if t["type"] == "aws:ecs/taskDefinition:TaskDefinition"
                  for c in json.loads(t["inputs"]["containerDefinitions"])]
    assert len(containers) == 4
    for container in containers:
        assert f"`{' '.join(container['command'])}`" in text, container["name"]
