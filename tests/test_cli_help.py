"""The command's help says what the code does: its routes, options and environment.

Each expectation is derived from the code that the help describes (the API's route table,
the variables the settings read), so a route or a variable added there fails here until the
help names it.
"""

import argparse
import re
from pathlib import Path

import pytest

from cryptodudez import cli
from cryptodudez.settings import PG_ENV, PROJECT_DIR, Settings
from serving import server
from serving.app import SCHEMA_PATH, ServingSettings, create_app


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _top_help_of(command: str) -> str:
    """The text ``cryptodudez --help`` gives ``command`` in its list of commands."""
    text = cli._parser().format_help()
    entry = re.search(rf"^    {re.escape(command)}\s+(.*?)(?=^    \S|^\S|\Z)", text,
                      re.MULTILINE | re.DOTALL)
    assert entry is not None, text
    return " ".join(entry[1].split())


def _api_routes(tmp_path: Path) -> set[str]:
    """The API's own routes (its OpenAPI pages under SCHEMA_PATH count as one)."""
    app = create_app(ServingSettings(lake=str(tmp_path / "lake")))
    return {SCHEMA_PATH if r.path.startswith(SCHEMA_PATH) else r.path for r in app.routes}


def _routes_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w/])/[a-z][\w/]*", text))


def test_serve_help_names_every_route_of_the_api_and_no_other(tmp_path: Path) -> None:
    """QA: the top-level help said `serve GET /predict`; the API serves seven routes."""
    routes = _api_routes(tmp_path)
    assert {"/predict", "/health", "/correlation", SCHEMA_PATH} <= routes  # the table is read
    assert _routes_in(_top_help_of("serve")) == routes
    assert _routes_in(_subcommands()["serve"].format_help()) >= routes


def test_every_option_of_every_command_has_help() -> None:
    """QA: backfill-events --from/--to and ui --host/--port had none."""
    missing = [f"{name} {'/'.join(action.option_strings) or action.dest}"
               for name, parser in _subcommands().items() for action in parser._actions
               if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []
    commands = _subcommands()
    assert "first UTC day" in commands["backfill-events"].format_help()
    assert "TCP port of the webserver" in commands["ui"].format_help()


class _Recording(dict[str, str]):
    """An environment that records the names it is asked for."""

    def __init__(self, *args: object, **kwargs: str) -> None:
        super().__init__(*args, **kwargs)
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def _variables_read() -> set[str]:
    """Every variable the command reads: its settings, the servers' and CoinGecko's."""
    empty, by_parts = _Recording(), _Recording({name: "x" for name in PG_ENV})
    Settings.from_env(empty)
    Settings.from_env(by_parts)  # the Postgres parts are read once the host is set
    coingecko = (PROJECT_DIR / "cryptodudez" / "resources" / "coingecko.py").read_text()
    return (empty.asked | by_parts.asked | set(re.findall(r'"(COINGECKO_[A-Z_]+)"', coingecko))
            | {server.HOST_VARIABLE, server.HEALTH_FILE_VARIABLE})


def test_the_help_names_every_variable_the_command_reads_and_only_those() -> None:
    """QA: no help named CRYPTODUDEZ_LAKE, DAGSTER_HOME or --traceback."""
    read = _variables_read()
    assert {"CRYPTODUDEZ_LAKE", "DAGSTER_HOME", "CRYPTODUDEZ_WAREHOUSE",
            "COINGECKO_API_KEY", "DAGSTER_PG_PORT"} <= read  # the recording works
    text = cli._parser().format_help()
    epilog = text[text.index("environment ("):]
    named = set(re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", epilog))
    assert named == read
    assert "--traceback (anywhere on the line): print the full traceback" in epilog
    assert ("exit status: 0 done; 1 a failure (a failed run, a lake "
            "file that cannot be read") in epilog
    assert "2 a bad argument, path, key or setting" in epilog


@pytest.mark.parametrize("command", ["land", "summary", "coingecko"])
def test_the_help_says_what_the_command_writes_or_skips(command: str) -> None:
    said = {"land": "hidden files in a folder are skipped, and listed",
            "summary": "where the tables, the metastore and the warehouse are",
            "coingecko": f"write the chart to {cli.CHART_FOLDER}/ beside the warehouse "
                         "(its path is printed)"}[command]
    assert said in _top_help_of(command)


def test_the_readme_configuration_table_names_every_variable_the_command_reads() -> None:
    """The help's epilog sends the reader there for the details."""
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme[readme.index("## Configuration"):readme.index("## Lake layout")]
    assert sorted(v for v in _variables_read() if f"`{v}`" not in section) == []
