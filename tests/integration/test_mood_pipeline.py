"""The correlation pipeline end to end: the sample ingested, the asset's results stored once,
its checks failing on planted bugs, and the four routes over HTTP on the same lake."""

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import duckdb
import polars as pl
import pytest
from scipy import stats as scipy_stats

from cryptodudez.definitions import build_definitions
from cryptodudez.mood import results
from cryptodudez.mood.series import merged, nearest_pooled_r
from cryptodudez.settings import Settings
from serving.app import ServingSettings, create_app
from tests.api.live import LiveServer, raw_exchange, split_response
from tests.conftest import SAMPLES
from tests.helpers import QUIET, land_and_ingest

pytestmark = pytest.mark.xdist_group("mood")
MOOD_CHECKS = ("mood_correlation_complete", "mood_correlation_matches_sql",
               "mood_merged_no_lookahead")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The sample ingested and the mood job run once, on a persistent instance."""
    root = tmp_path_factory.mktemp("mood")
    settings = Settings(lake=str(root / "lake"), dagster_home=str(root / "dagster"))
    defs = build_definitions(settings)
    (root / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster")) as instance:
        ingested = land_and_ingest(defs, instance,
                                   {"cryptomood/sample.zip": SAMPLES / "cryptomood_sample.zip"})
        assert all(r.success for r in ingested.values())
        run = defs.resolve_job_def("mood").execute_in_process(instance=instance,
                                                             run_config=QUIET)
        yield {"settings": settings, "defs": defs, "instance": instance, "run": run}


def _mood_result(run: dg.ExecuteInProcessResult) -> tuple[dict[str, Any], dict[str, bool]]:
    mats = run.get_asset_materialization_events()
    meta = {k: v.value for k, v in mats[-1].materialization.metadata.items()}
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    return meta, checks


def _warehouse(settings: Settings) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(settings.warehouse_path, read_only=True)


def test_the_asset_stores_every_row_asked_once_and_its_checks_pass(pipeline) -> None:
    meta, checks = _mood_result(pipeline["run"])
    assert checks == dict.fromkeys(MOOD_CHECKS, True)
    assert meta["written"] is True
    assert meta["dagster/row_count"] == 3 * 2 * 5  # coins x buckets x lags -2..2
    assert meta["significant_at_q_0_05"] == 0  # the honest answer on this data
    with _warehouse(pipeline["settings"]) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT (coin, bucket, lag)) "
                           "FROM mood_correlation").fetchone()
        assert rows == (30, 30)
        assert con.execute("SELECT count(*) FROM mood_results").fetchone() == (1,)


def test_rerunning_writes_nothing_and_leaves_the_tables_identical(pipeline) -> None:
    settings = pipeline["settings"]
    with _warehouse(settings) as con:
        before = [con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                  for t in ("mood_results", "mood_correlation", "mood_merged")]
    again = pipeline["defs"].resolve_job_def("mood").execute_in_process(
        instance=pipeline["instance"], run_config=QUIET)
    meta, checks = _mood_result(again)
    assert meta["written"] is False
    assert checks == dict.fromkeys(MOOD_CHECKS, True)
    with _warehouse(settings) as con:
        after = [con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                 for t in ("mood_results", "mood_correlation", "mood_merged")]
    assert after == before


def test_a_wrong_stored_correlation_fails_the_sql_twin(pipeline, monkeypatch) -> None:
    real = results.correlation

    def planted(*args: Any, **kwargs: Any) -> pl.DataFrame:
        table = real(*args, **kwargs)
        return table.with_columns(pearson_r=pl.when(pl.col("lag") == 1)
                                  .then(pl.col("pearson_r") * 0.9).otherwise("pearson_r"))

    monkeypatch.setattr(results, "correlation", planted)
    run = pipeline["defs"].resolve_job_def("mood").execute_in_process(
        instance=pipeline["instance"], raise_on_error=False,
        run_config={**QUIET, "ops": {"mood_correlation": {"config": {"buckets": ["PT5S"]}}}})
    _, checks = _mood_result(run)
    assert checks["mood_correlation_matches_sql"] is False
    assert checks["mood_correlation_complete"] is True


def test_a_missing_row_fails_completeness_and_lookahead_is_caught(pipeline,
                                                                   monkeypatch) -> None:
    real_corr, real_merged = results.correlation, results.merged_rows
    monkeypatch.setattr(results, "correlation",
                        lambda *a, **k: real_corr(*a, **k).filter(pl.col("lag") != 2))

    def peeking(*args: Any, **kwargs: Any) -> pl.DataFrame:  # joins the *next* bucket's mood
        frame = real_merged(*args, **kwargs)
        return frame.with_columns(sentiment_end=pl.col("bucket_end") + pl.duration(seconds=20),
                                  sentiment=pl.col("sentiment").shift(-1))

    monkeypatch.setattr(results, "merged_rows", peeking)
    run = pipeline["defs"].resolve_job_def("mood").execute_in_process(
        instance=pipeline["instance"], raise_on_error=False,
        run_config={**QUIET, "ops": {"mood_correlation": {"config": {"buckets": ["PT15S"]}}}})
    _, checks = _mood_result(run)
    assert checks["mood_correlation_complete"] is False
    assert checks["mood_merged_no_lookahead"] is False


def test_a_ranged_run_passes_its_checks_and_keeps_its_own_merged_series(pipeline) -> None:
    """A narrowed run on the data version the full run used: the SQL twin narrows too, and
    each range's merged series reads back whole, neither overwriting the other."""
    start = datetime(2018, 7, 16, 20, 13, 5, tzinfo=UTC)  # inside a PT10S and a PT1M bucket
    run = pipeline["defs"].resolve_job_def("mood").execute_in_process(
        instance=pipeline["instance"], raise_on_error=False,
        run_config={**QUIET, "ops": {"mood_correlation": {"config": {
            "start": "2018-07-16T20:13:05Z"}}}})
    meta, checks = _mood_result(run)
    assert checks == dict.fromkeys(MOOD_CHECKS, True)
    assert json.loads(meta["params"])["start"] == start.isoformat()
    trades, moods = _inputs(pipeline)
    assert meta["data_version"] == results.data_version(trades, moods)
    with _warehouse(pipeline["settings"]) as con:
        for coin in ("BTC", "ETH", "LTC"):
            for bucket in ("PT10S", "PT1M"):
                series = {bound: results.read_merged(
                    con, meta["data_version"], coin=coin, bucket=bucket, tolerance_buckets=0,
                    start=bound) for bound in (None, start)}
                for bound, back in series.items():
                    expected = merged(trades, moods, coin, bucket, tolerance=timedelta(0),
                                      start=bound).select(results.MERGED_COLUMNS)
                    assert back.equals(expected), (coin, bucket, bound)
                assert series[None].height > series[start].height > 0


def test_a_warehouse_of_the_old_merged_layout_is_upgraded_and_the_run_goes_on(
        pipeline, tmp_path) -> None:
    old = tmp_path / "old.duckdb"
    with duckdb.connect(str(old)) as con:
        con.execute("""CREATE TABLE mood_merged (
            data_version VARCHAR NOT NULL, coin VARCHAR NOT NULL, bucket VARCHAR NOT NULL,
            tolerance_buckets BIGINT NOT NULL, bucket_start TIMESTAMPTZ NOT NULL,
            bucket_end TIMESTAMPTZ NOT NULL, price DOUBLE, last_trade_ts TIMESTAMPTZ,
            trades BIGINT, log_return DOUBLE, asof_at TIMESTAMPTZ, sentiment_end TIMESTAMPTZ,
            sentiment DOUBLE, tweets BIGINT, last_tweet_ts TIMESTAMPTZ,
            PRIMARY KEY (data_version, coin, bucket, tolerance_buckets, bucket_start))""")
    settings = replace(pipeline["settings"], warehouse=str(old))
    run = build_definitions(settings).resolve_job_def("mood").execute_in_process(
        instance=pipeline["instance"], raise_on_error=False, run_config=QUIET)
    assert run.success
    warnings = [e.user_message for e in pipeline["instance"].all_logs(run.run_id)
                if "older version's columns" in e.user_message]
    assert warnings and "mood_merged" in warnings[0]
    with duckdb.connect(str(old), read_only=True) as con:
        ranges = con.sql("SELECT DISTINCT range_start, range_end FROM mood_merged").fetchall()
    assert ranges == [("", "")]


@pytest.fixture(scope="module")
def api(pipeline) -> Iterator[str]:
    settings = pipeline["settings"]
    app = create_app(ServingSettings(lake=settings.lake, poll_seconds=0.5,
                                     warehouse=settings.warehouse_path))
    with LiveServer(app) as base:
        yield base


def _get(base: str, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(base + path, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _inputs(pipeline) -> tuple[pl.DataFrame, pl.DataFrame]:
    from cryptodudez.assets.mood import mood_inputs  # noqa: PLC0415

    return mood_inputs(pipeline["defs"].resources["lake"])


def test_correlation_over_http_is_per_coin_and_equals_scipy(pipeline, api) -> None:
    status, body = _get(api, "/correlation?bucket=PT10S,PT1M&max_lag=2")
    assert status == 200
    assert body["source"] == "warehouse"  # the asset's default parameters, stored
    trades, moods = _inputs(pipeline)
    for row in body["results"]:
        frame = merged(trades, moods, row["coin"], row["bucket"], tolerance=timedelta(0),
                       lag=row["lag"])
        pairs = frame.select("log_return", "sentiment").drop_nulls()
        assert row["n"] == pairs.height
        if pairs.height >= 8:
            ref = scipy_stats.pearsonr(pairs["log_return"], pairs["sentiment"])
            rho = scipy_stats.spearmanr(pairs["log_return"], pairs["sentiment"])
            assert math.isclose(row["pearson_r"], ref.statistic, abs_tol=1e-12)
            assert math.isclose(row["pearson_p"], ref.pvalue, rel_tol=1e-9)
            assert math.isclose(row["spearman_rho"], rho.statistic, abs_tol=1e-12)
        else:
            assert row["pearson_r"] is None and "fewer than min_n=8" in row["null_reason"]
    pooled = nearest_pooled_r(trades, moods)
    assert pooled is not None and round(pooled, 3) == 0.107  # the public artefact...
    assert all(row["pearson_r"] is None or abs(row["pearson_r"] - pooled) > 1e-3
               for row in body["results"])  # ...which no per-coin row reproduces


def test_a_new_parameter_set_is_computed_then_cached(api) -> None:
    path = "/correlation?coin=ETH&bucket=PT20S&max_lag=1&method=spearman&tolerance=1"
    status, first = _get(api, path)
    assert (status, first["source"]) == (200, "computed")
    assert first["params"]["method"] == "spearman"
    assert [r["lag"] for r in first["results"]] == [-1, 0, 1]
    assert _get(api, path)[1] == first  # the cache answers the same bytes


def test_merged_never_looks_ahead(api) -> None:
    for lag in (0, 1, 3):
        status, body = _get(api, f"/merged?coin=ETH&bucket=PT10S&tolerance=2&lag={lag}")
        assert status == 200
        rows = [r for r in body["rows"] if r["sentiment"] is not None]
        assert rows
        for r in rows:
            assert r["sentiment_end"] <= r["asof_at"] <= r["bucket_end"]
            assert r["last_tweet_ts"] < r["sentiment_end"]


def test_coin_and_sentiment_pages_and_filters(api) -> None:
    status, page = _get(api, "/coin?coin=ETH&limit=50&offset=50")
    assert status == 200
    assert (page["total"], len(page["items"]), page["next_offset"]) == (98, 48, None)
    assert [i["ts"] for i in page["items"]] == sorted(i["ts"] for i in page["items"])
    status, ltc = _get(api, "/sentiment?coin=LTC&limit=1000")
    status_all, every = _get(api, "/sentiment?limit=1000")
    assert status == status_all == 200
    assert every["total"] == 94
    assert all("LTC" in i["coins"] for i in ltc["items"])
    assert ltc["total"] == sum("LTC" in i["coins"] for i in every["items"])
    start = urllib.parse.quote("2018-07-16T20:13:00Z")
    status, late = _get(api, f"/coin?coin=BTC&start={start}&limit=1000")
    assert all(i["ts"] >= "2018-07-16T20:13:00" for i in late["items"])
    assert 0 < late["total"] < 89


@pytest.mark.parametrize(("path", "named"), [
    ("/coin", "'coin'"), ("/coin?coin=eth", "'coin'"), ("/coin?coin=XRP", "'coin'"),
    ("/coin?coin=ETH&limit=0", "'limit'"), ("/coin?coin=ETH&limit=1001", "'limit'"),
    ("/coin?coin=ETH&offset=-1", "'offset'"), ("/coin?coin=ETH&start=yesterday", "'start'"),
    ("/coin?coin=ETH&start=2018-07-16T20:00:00", "'start'"),
    ("/coin?coin=ETH&start=2018-07-17&end=2018-07-16", "'start'"),
    ("/coin?coin=ETH&coin=BTC", "'coin'"), ("/sentiment?coin=DOGE", "'coin'"),
    ("/merged?coin=ETH&bucket=1M", "'bucket'"), ("/merged?coin=ETH&bucket=PT0S", "'bucket'"),
    ("/merged?coin=ETH&bucket=P1M", "'bucket'"), ("/merged?coin=ETH&tolerance=x", "'tolerance'"),
    ("/merged?coin=ETH&lag=21", "'lag'"), ("/correlation?max_lag=21", "'max_lag'"),
    ("/correlation?method=kendall", "'method'"), ("/correlation?coin=ETH,ETH", "'coin'"),
    ("/correlation?bucket=PT10S,PT10S", "'bucket'"), ("/correlation?end=2018-13-01", "'end'"),
    # an offset that puts the UTC instant beyond year 1 or 9999 (was a 500)
    ("/coin?coin=ETH&start=0001-01-01T00:00:00%2B01:00", "'start'"),
    ("/sentiment?end=9999-12-31T23:59:59-01:00", "'end'"),
    # the same grid spelled twice would count twice among the q-values' tests
    ("/correlation?bucket=PT1M,PT60S", "'bucket'"),
    ("/correlation?bucket=PT10S,PT010S", "'bucket'"),
    ("/correlation?bucket=PT%D9%A1%D9%A0S", "'bucket'"),  # Arabic-Indic digits
    ("/correlation?bucket=" + ",".join(f"PT{s}S" for s in range(1, 10)), "'bucket'"),  # 9 > 8
    ("/coin?coin=ETH&offset=1000000000", "'offset'"),
])
def test_a_bad_parameter_is_a_400_naming_it(api, path: str, named: str) -> None:
    status, body = _get(api, path)
    assert status == 400, body
    assert named in body["detail"]


@pytest.mark.parametrize("path", [
    "/coin?coin=ETH&limit=5", "/sentiment?limit=5", "/merged?coin=BTC&bucket=PT1M",
    "/correlation?coin=LTC&bucket=PT1M&max_lag=1", "/coin?coin=XRP", "/correlation?max_lag=99",
])
def test_head_on_a_mood_route_is_its_get_without_the_body(api, path: str) -> None:
    port = int(api.rsplit(":", 1)[1])
    request = f"{{}} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    get_status, get_headers, get_body = split_response(
        raw_exchange(port, request.format("GET").encode()))
    head_status, head_headers, head_body = split_response(
        raw_exchange(port, request.format("HEAD").encode()))
    assert get_status.split()[1] in (b"200", b"400"), path
    assert head_status == get_status, path  # was 405 Method Not Allowed
    assert head_headers == get_headers, path
    assert int(get_headers[b"content-length"]) == len(get_body) > 0, path
    assert head_body == b"", path


def test_the_openapi_schema_documents_the_routes_and_their_parameters(api) -> None:
    status, schema = _get(api, "/schema/openapi.json")
    assert status == 200
    params = {path: {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
              for path in ("/coin", "/sentiment", "/merged", "/correlation")}
    assert params == {
        "/coin": {"coin", "start", "end", "limit", "offset"},
        "/sentiment": {"coin", "start", "end", "limit", "offset"},
        "/merged": {"coin", "bucket", "tolerance", "lag", "start", "end"},
        "/correlation": {"coin", "bucket", "max_lag", "tolerance", "method", "start", "end"},
    }
    assert "400" in schema["paths"]["/correlation"]["get"]["responses"]
    # the handlers return encoded bytes: the body's schema is documented, not inferred
    bodies = {path: schema["paths"][path]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"] for path in params}
    assert {path: body["type"] for path, body in bodies.items()} == dict.fromkeys(params,
                                                                                 "object")
    assert set(bodies["/coin"]["properties"]["items"]["items"]["properties"]) == {
        "ts", "price", "size", "taker_side", "exchange", "quote", "uuid"}
    status, merged_body = _get(api, "/merged?coin=ETH&bucket=PT1M")
    assert set(merged_body) == set(bodies["/merged"]["properties"])
    assert set(merged_body["rows"][0]) == set(
        bodies["/merged"]["properties"]["rows"]["items"]["properties"])
    status, page = _get(api, "/sentiment?limit=1")
    assert set(page) == set(bodies["/sentiment"]["properties"])
    assert set(page["items"][0]) == set(
        bodies["/sentiment"]["properties"]["items"]["items"]["properties"])
    status, table = _get(api, "/correlation?coin=ETH")
    assert set(table) == set(bodies["/correlation"]["properties"])
