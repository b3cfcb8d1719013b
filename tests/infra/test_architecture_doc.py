"""docs/architecture.md is generated from the code and the Pulumi program, and current,
and so are its rendered images (docs/images/architecture/)."""

import xml.etree.ElementTree as ET
from pathlib import Path
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


def images_problem(document: str, images: Path) -> str | None:
    """Why the document's images are not the renderings of its current Mermaid sources."""
    sources = architecture.sources(document)
    if sorted(sources) != ["aws", "data-flow", "local"]:
        return f"the document shows images {sorted(sources)}"
    for name, source in sources.items():
        path = images / f"{name}.svg"
        if not path.exists():
            return f"{path.name} is missing"
        svg = path.read_text()
        if architecture.svg_source_digest(svg) != architecture.digest(source):
            return f"{path.name} was drawn from another source of {name}"
        ET.fromstring(svg)  # a standalone SVG must be well-formed XML (labels are XHTML)
    return None


def test_each_diagram_has_its_image_drawn_from_its_current_source() -> None:
    problem = images_problem(architecture.OUT.read_text(), architecture.IMAGES)
    assert problem is None, f"{problem}: run .venv/bin/python scripts/architecture.py --render"


def test_a_stale_or_missing_image_is_found(tmp_path: Path) -> None:
    document = architecture.OUT.read_text()
    for svg in architecture.IMAGES.glob("*.svg"):
        (tmp_path / svg.name).write_bytes(svg.read_bytes())
    assert images_problem(document, tmp_path) is None
    # a diagram changed in the code, the image not drawn again
    changed = document.replace("flowchart LR\n  user(", "flowchart LR\n  extra --> user\n  user(")
    assert images_problem(changed, tmp_path) == "local.svg was drawn from another source of local"
    (tmp_path / "aws.svg").unlink()
    assert images_problem(document, tmp_path) == "aws.svg is missing"
