"""The stack's configuration: keys and defaults live in ``Pulumi.yaml``, read here once."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

PROJECT_FILE = Path(__file__).resolve().parents[1] / "Pulumi.yaml"
NAMESPACE = "cryptodudez"


def declared_keys() -> dict[str, dict[str, Any]]:
    """The ``config:`` block of ``Pulumi.yaml`` by short key (``imageUri``, ...)."""
    project = yaml.safe_load(PROJECT_FILE.read_text())
    return {key.split(":", 1)[1]: spec for key, spec in project["config"].items()}


@dataclass(frozen=True)
class StackConfig:
    """Typed stack configuration (field names are the ``Pulumi.yaml`` keys in snake case)."""

    environment: str
    owner: str
    image_uri: str
    image_tag: str
    certificate_arn: str
    lake_prefix: str
    glue_database: str
    raw_noncurrent_glacier_days: int
    raw_expiration_days: int
    log_retention_days: int
    vpc_cidr: str
    db_instance_class: str
    db_allocated_storage: int
    api_desired_count: int
    allowed_cidr: str
    emr_release_label: str

    @property
    def tags(self) -> dict[str, str]:
        """The tags every taggable resource carries."""
        return {"project": NAMESPACE, "environment": self.environment, "owner": self.owner,
                "managed-by": "pulumi"}

    @property
    def prefix(self) -> str:
        """Name prefix of the stack's resources."""
        return f"{NAMESPACE}-{self.environment}"

    @classmethod
    def load(cls) -> "StackConfig":
        """The stack's values, falling back to the defaults ``Pulumi.yaml`` declares.

        The CLI applies those defaults itself; the fallback keeps the program identical under
        ``pulumi.runtime.set_mocks``, where no CLI fills them in.
        """
        config = pulumi.Config(NAMESPACE)
        values: dict[str, Any] = {}
        for key, spec in declared_keys().items():
            name = "".join("_" + c.lower() if c.isupper() else c for c in key)
            if spec.get("type") == "integer":
                number = config.get_int(key)
                values[name] = int(spec["default"]) if number is None else number
            else:
                values[name] = config.get(key) or str(spec["default"])
        return cls(**values)
