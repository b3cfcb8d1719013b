"""docs/architecture.md is generated from the code and the Pulumi program, and current."""

from typing import Any

import pytest

from scripts import architecture

# The infra tests stay on one xdist worker (./run test uses --dist loadgroup), so the
# Pulumi program runs under mocks once (session fixtures in tests/infra/conftest.py).
pytestmark = pytest.mark.xdist_group("pulumi")


def test_architecture_doc_is_current(stack: dict[str, Any]) -> None:
    text = architecture.render(stack)
    assert architecture.OUT.read_text() == text, "run: .venv/bin/python scripts/architecture.py"


def test_diagrams_cover_both_deployments_and_the_data_flow(stack: dict[str, Any]) -> None:
    text = architecture.render(stack)
    assert text.count("```mermaid") == 3
    for fragment in ("layer_raw -. lists .-> sensor_landing_sensor",
                     "sensor_landing_sensor --> job_ingest_landed_file",
                     "job_ingest_landed_file ==> group_validated", "quarantine/",
                     "group_models --> api", "group_mood --> warehouse",
                     "user -- :3000 --> svc_webserver", "svc_api ---|/data/lake| vol_lake",
                     "alb -- :8000 --> ecs_api", "ecs_daemon -- :4000 --> ecs_code_location",
                     '"lake/raw/ created" --> sqs_lake_landing', "ecs_api -- read --> s3",
                     "ecs_code_location -- read/write --> glue", "emr -- read/write --> s3"):
        assert fragment in text, fragment
    # The webserver and the daemon reach neither the lake nor the catalogue.
    assert "ecs_webserver -- read" not in text and "ecs_daemon -- read" not in text
