"""The architecture diagrams' Mermaid sources draw in a real browser (mermaid.js in Chromium).

The committed images are checked against their sources without a browser
(``tests/infra/test_architecture_doc.py``); this draws the document's current sources with
the pinned mermaid.js, as ``scripts/architecture.py --render`` does, so a source Mermaid
cannot parse fails here rather than showing "Syntax error" in the docs.
"""

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from scripts import architecture

pytestmark = pytest.mark.xdist_group("ui")  # the one browser of the run's ui worker


@pytest.fixture(scope="module")
def mermaid_js() -> Any:
    if not architecture.MERMAID_JS.exists():
        pytest.skip(f"no {architecture.MERMAID_JS.name} (./run setup fetches it with npm)")
    return architecture.MERMAID_JS


def test_every_diagram_draws_with_its_labels(browser: Any, mermaid_js: Any) -> None:
    sources = architecture.sources(architecture.OUT.read_text())
    labels = {"data-flow": ("landing_sensor", "stock_features", "prediction API"),
              "local": ("webserver", "cryptodudez serve"),
              "aws": ("Application Load Balancer", "EMR Serverless", "Secrets Manager")}
    assert sorted(sources) == sorted(labels)
    for name, source in sources.items():
        svg = architecture.render_svg(browser, source, mermaid_js)
        ET.fromstring(svg)
        assert "Syntax error" not in svg, name
        for label in labels[name]:
            assert label in svg, (name, label)


def test_a_broken_source_is_no_drawing(browser: Any, mermaid_js: Any) -> None:
    with pytest.raises(Exception, match="Parse error"):
        architecture.render_svg(browser, "flowchart LR\n  a --> [b", mermaid_js)
