"""The load balancer sends every route of the prediction API to the API, the rest to Dagster.

The listener rules are the ones the Pulumi program registers (``stack`` in ``conftest.py``:
``run_mocked.py`` in a process of its own); the routes are the ones ``serving.app.create_app``
registers, so a route added to the API without its path on the load balancer fails here. The
rules are evaluated as an Application Load Balancer does: by ascending priority, the first rule
with a matching path pattern wins; a pattern matches the whole path (not the query string),
case-sensitively, ``*`` standing for any run of characters and ``?`` for exactly one.

    .venv/bin/python -m pytest -q tests/infra
"""

import re
from functools import cache
from typing import Any

import pytest

from serving.app import ServingSettings, create_app
from tests.infra.conftest import PROGRAM

RULE = "aws:lb/listenerRule:ListenerRule"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
API, WEBSERVER = "services-api", "services-webserver"
# AWS quotas per listener rule (not adjustable): condition values, and wildcards in them.
MAX_CONDITION_VALUES = 5
MAX_WILDCARDS = 5
MAX_PATTERN_LENGTH = 128
# Paths of the Dagster UI (dagster_webserver's routes and pages) that must stay with it.
DAGSTER_PATHS = ("/", "/server_info", "/graphql", "/runs", "/runs/abc", "/assets/a/b",
                 "/overview/activity", "/locations", "/jobs", "/deployment/daemons",
                 "/automation", "/logs/run/step/out", "/_next/static/chunk.js", "/favicon.ico")

pytestmark = pytest.mark.xdist_group("pulumi")


@pytest.fixture(scope="module")
def rules(stack: dict[str, Any]) -> list[dict[str, Any]]:
    """Each listener rule as its priority, path patterns and target service, by priority."""
    groups = {r["arn"]: r["name"] for r in stack["resources"] if r["type"] == TARGET_GROUP}
    found = []
    for rule in (r for r in stack["resources"] if r["type"] == RULE):
        inputs = rule["inputs"]
        [action] = inputs["actions"]
        assert action["type"] == "forward"
        found.append({"name": rule["name"], "priority": int(inputs["priority"]),
                      "conditions": inputs["conditions"],
                      "patterns": [p for c in inputs["conditions"]
                                   for p in c["pathPattern"]["values"]],
                      "service": groups[action["targetGroupArn"]]})
    return sorted(found, key=lambda r: r["priority"])


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.DOTALL)


def routed_to(rules: list[dict[str, Any]], path: str) -> str:
    """The service the load balancer forwards ``path`` to (``default``: the listener's 404)."""
    for rule in rules:
        if any(_regex(p).fullmatch(path) for p in rule["patterns"]):
            return rule["service"]
    return "default"


def api_paths() -> list[str]:
    """A request path for each route the API registers, with and without a trailing slash.

    Path parameters (``{file_path:path}``) get a sample value. Litestar answers a path with a
    trailing slash as the path without it, so both must reach the API.
    """
    app = create_app(ServingSettings(lake=str(PROGRAM / "no-lake"), poll_seconds=3600))
    paths = {re.sub(r"\{[^}]*\}", "sample.json", route.path) for route in app.routes}
    assert {"/predict", "/health", "/signal/eth", "/schema"} <= paths  # the app was read
    return sorted(paths | {f"{p.rstrip('/')}/" for p in paths})


@pytest.mark.parametrize("path", api_paths())
def test_every_route_of_the_api_reaches_the_api(rules: list[dict[str, Any]], path: str) -> None:
    assert routed_to(rules, path) == API, f"{path} does not reach the API"


@pytest.mark.parametrize("path", DAGSTER_PATHS)
def test_the_dagster_ui_keeps_its_paths(rules: list[dict[str, Any]], path: str) -> None:
    assert routed_to(rules, path) == WEBSERVER


def test_the_rules_fit_the_load_balancers_quotas(rules: list[dict[str, Any]]) -> None:
    assert {r["service"] for r in rules} == {API, WEBSERVER}
    priorities = [r["priority"] for r in rules]
    assert len(set(priorities)) == len(priorities), "two rules share a priority"
    assert all(1 <= p <= 50000 for p in priorities)
    for rule in rules:
        assert len(rule["conditions"]) == 1, rule["name"]
        assert 1 <= len(rule["patterns"]) <= MAX_CONDITION_VALUES, rule["name"]
        assert sum(p.count("*") + p.count("?") for p in rule["patterns"]) <= MAX_WILDCARDS
        assert all(len(p) <= MAX_PATTERN_LENGTH for p in rule["patterns"])
    # The webserver's catch-all comes after every API rule.
    assert rules[-1]["service"] == WEBSERVER and rules[-1]["patterns"] == ["/*"]


def test_the_routing_model_matches_like_a_load_balancer() -> None:
    rules = [{"priority": 1, "patterns": ["/a?c", "/x*"], "service": API},
             {"priority": 2, "patterns": ["/*"], "service": WEBSERVER}]
    assert routed_to(rules, "/abc") == API and routed_to(rules, "/x/y/z") == API
    assert routed_to(rules, "/ac") == WEBSERVER and routed_to(rules, "/abcd") == WEBSERVER
    assert routed_to(rules, "/ABC") == WEBSERVER  # case-sensitive
    assert routed_to(rules[:1], "/b") == "default"
