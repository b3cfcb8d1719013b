"""The composition root loads offline, with an empty environment, for both resource sets."""

import subprocess
import sys

import dagster as dg

from cryptodudez.definitions import build_definitions
from cryptodudez.resources.coingecko import HttpCoinGecko, OfflineCoinGecko
from cryptodudez.resources.metastore import DuckDBMetastore, GlueMetastore
from cryptodudez.settings import PROJECT_DIR, Settings
from scripts.asset_graph import OUT, render


def test_import_touches_nothing_and_needs_no_environment(tmp_path) -> None:
    code = "import cryptodudez.definitions, cryptodudez.cli, cryptodudez.commands; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin"}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "ok"
    assert list(tmp_path.iterdir()) == []


def test_local_and_production_definitions_validate(tmp_path) -> None:
    local = build_definitions(Settings(lake=str(tmp_path / "lake")))
    dg.Definitions.validate_loadable(local)
    assert isinstance(local.resources["metastore"], DuckDBMetastore)
    prod = build_definitions(Settings(lake="s3://bucket/lake", endpoint_url="http://127.0.0.1:1"))
    dg.Definitions.validate_loadable(prod)
    assert isinstance(prod.resources["metastore"], GlueMetastore)


def test_coingecko_is_offline_unless_a_key_or_live_mode_is_set(tmp_path) -> None:
    lake = str(tmp_path / "lake")
    offline = build_definitions(Settings.from_env({"CRYPTODUDEZ_LAKE": lake}))
    assert isinstance(offline.resources["coingecko"], OfflineCoinGecko)
    assert offline.resources["coingecko"].coins_list()  # the shipped recording, no network
    live = Settings.from_env({"CRYPTODUDEZ_LAKE": lake, "COINGECKO_API_KEY": "secret-key-1"})
    assert isinstance(build_definitions(live).resources["coingecko"], HttpCoinGecko)
    assert "secret-key-1" not in repr(live)
    forced = Settings.from_env({"CRYPTODUDEZ_LAKE": lake, "COINGECKO_MODE": "live"})
    assert isinstance(build_definitions(forced).resources["coingecko"], HttpCoinGecko)


def test_asset_graph_and_checks() -> None:
    defs = build_definitions(Settings(lake="/nonexistent"))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_files", "stock_prices", "symbols_meta", "crypto_prices", "tweets"} <= keys
    checks = {k.name for k in graph.asset_check_keys}
    assert "stock_prices_schema_conforms" in checks
    assert "tweets_rows_accounted" in checks
    landing = defs.resolve_sensor_def("landing_sensor")
    assert sorted(j.name for j in landing.jobs) == ["ingest_event_file", "ingest_landed_file"]
    assert {"events", "events_compacted", "event_kpis"} <= keys
    assert {"events_lines_accounted", "events_rows_accounted", "events_ids_unique",
            "events_compacted_rows_kept"} <= checks


def test_settings_from_env_defaults_and_overrides(tmp_path) -> None:
    default = Settings.from_env({})
    assert default.lake.endswith("/lake")
    assert not default.is_production
    s3 = Settings.from_env({"CRYPTODUDEZ_LAKE": "s3://b/p", "AWS_ENDPOINT_URL": "http://x",
                            "AWS_DEFAULT_REGION": "eu-west-1"})
    assert s3.is_production
    assert (s3.endpoint_url, s3.region) == ("http://x", "eu-west-1")
    assert default.warehouse_path == default.lake + "/warehouse.duckdb"
    assert s3.warehouse_path == str(PROJECT_DIR / "warehouse.duckdb")
    chosen = Settings.from_env({"CRYPTODUDEZ_WAREHOUSE": str(tmp_path / "w.duckdb")})
    assert chosen.warehouse_path == str(tmp_path / "w.duckdb")


def test_asset_graph_document_is_generated_from_the_definitions() -> None:
    assert OUT.read_text() == render(), "run: .venv/bin/python scripts/asset_graph.py"


def test_the_daily_event_schedule_asks_for_the_day_that_ended(tmp_path) -> None:
    """At 01:30 UTC it runs the day before; built from the partitioned job (whose days end a
    day ahead) it asked for the day just begun, and never for yesterday (session 23)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    defs = build_definitions(Settings(lake=str(tmp_path / "lake"),
                                      dagster_home=str(tmp_path / "dh")))
    schedule = defs.resolve_schedule_def("event_daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 1 * * *", "UTC")
    for tick, day in ((datetime(2026, 11, 2, 1, 30, tzinfo=UTC), "2026-11-01"),
                      (datetime(2027, 1, 1, 1, 30, tzinfo=UTC), "2026-12-31")):
        with dg.build_schedule_context(scheduled_execution_time=tick,
                                       repository_def=defs.get_repository_def()) as context:
            requests = schedule.evaluate_tick(context).run_requests or []
        assert [r.partition_key for r in requests] == [day]
