"""Table checks, the landing sensor's plan and raw keys: behaviour the mutation run found
untested (docs/mutation.md).

Each test states what a reader of the check (in the Dagster UI) or an operator relies on:
the verdict, the failing count, the counts by rule or reason, and the samples.
"""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest

from cryptodudez.checks.schemas import StockPrices, SymbolsMeta
from cryptodudez.checks.tables import (
    TableStats,
    keys_unique,
    no_rows_quarantined,
    rows_accounted,
    schema_conforms,
)
from cryptodudez.resources.lake import RawObject, checked_raw_key, partition_key_for
from cryptodudez.sensors.landing import (
    FILE_VERSION_TAG,
    RAW_KEY_TAG,
    file_version,
    not_ingested,
    plan_runs,
)


def _prices(symbols: list[str], dates: list[str], *, low: float = 1.0,
            names: list[str | None] | None = None) -> pl.DataFrame:
    n = len(symbols)
    return pl.DataFrame({
        "Symbol": symbols,
        "Security Name": names if names is not None else [f"{s} Inc." for s in symbols],
        "Date": dates,
        "Open": [2.0] * n, "High": [3.0] * n, "Low": [low] * n, "Close": [2.0] * n,
        "Adj Close": [2.0] * n, "Volume": [100] * n,
        "_source": ["zip://a.zip::x.csv"] * n, "_line": list(range(2, n + 2)),
    }, schema_overrides={"Volume": pl.Int64, "Security Name": pl.String})


def _meta(result: dg.AssetCheckResult, name: str) -> object:
    return result.metadata[name].value


# --- TableStats and schema_conforms ----------------------------------------------------------

def test_schema_conforms_passes_and_counts_every_fragment() -> None:
    stats = TableStats()
    stats.add_written(_prices(["A", "B"], ["2020-01-02", "2020-01-03"]), StockPrices)
    stats.add_written(_prices(["C"], ["2020-01-01"]), StockPrices)
    stats.add_written(_prices([], []), StockPrices)  # an empty fragment changes nothing
    result = schema_conforms("stock_prices", stats)
    assert result.passed
    assert result.check_name == "stock_prices_schema_conforms"
    assert result.asset_key == dg.AssetKey("stock_prices")
    assert _meta(result, "rows") == 3
    assert stats.rows_written == 3
    assert stats.schema_failures == 0


def test_schema_conforms_fails_with_counts_by_rule_summed_over_fragments() -> None:
    stats = TableStats()
    # 2 rows with high < low in the first fragment, 1 in the second, 1 good row.
    stats.add_written(_prices(["A", "B"], ["2020-01-02", "2020-01-03"], low=9.0), StockPrices)
    stats.add_written(_prices(["C", "D"], ["2020-01-02", "2020-01-03"]), StockPrices)
    stats.add_written(_prices(["E"], ["2020-01-04"], low=9.0), StockPrices)
    result = schema_conforms("stock_prices", stats)
    assert not result.passed
    assert result.check_name == "stock_prices_schema_conforms"
    assert result.asset_key == dg.AssetKey("stock_prices")
    assert _meta(result, "failing_count") == 3
    assert _meta(result, "by_check") == {"high_ge_low": 3}
    assert stats.rows_written == 5
    sample = str(_meta(result, "sample"))
    assert "high_ge_low" in sample


def test_failure_sample_is_capped_and_filled_from_later_fragments() -> None:
    stats = TableStats()
    stats.add_written(_prices(["A", "B", "C"], ["2020-01-02"] * 3, low=9.0), StockPrices)
    assert stats.failure_sample.height == 3
    stats.add_written(_prices(["D", "E", "F", "G"], ["2020-01-02"] * 4, low=9.0), StockPrices)
    assert stats.failure_sample.height == 5  # filled up to SAMPLE from the next fragment
    assert stats.schema_failures == 7
    assert stats.failures_by_check == {"high_ge_low": 7}


def test_stats_gather_date_range_symbols_and_a_preview_without_lineage_columns() -> None:
    stats = TableStats()
    stats.add_written(_prices(["A", "B"], ["2020-03-01", "2020-02-01"],
                              names=["A Inc.", None]), StockPrices, "Date")
    stats.add_written(_prices(["C", "A"], ["2021-01-05", "2019-12-31"],
                              names=[None, "A Inc."]), StockPrices, "Date")
    assert stats.date_range == ("2019-12-31", "2021-01-05")
    assert stats.symbols == {"A", "B", "C"}
    assert stats.unknown_symbols == {"B", "C"}
    assert stats.preview.height == 2
    assert not [c for c in stats.preview.columns if c.startswith("_")]
    assert stats.preview["Symbol"].to_list() == ["A", "B"]  # the first fragment's rows
    assert stats.schema is not None and "Volume" in stats.schema


def test_a_table_without_dates_has_no_date_range() -> None:
    stats = TableStats()
    stats.add_written(pl.DataFrame({"Symbol": ["A"], "Security Name": [None], "ETF": ["Y"]},
                                   schema_overrides={"Security Name": pl.String}), SymbolsMeta)
    assert stats.date_range is None
    assert stats.rows_written == 1
    assert stats.schema_failures == 0


# --- quarantine: TableStats.add_quarantined and no_rows_quarantined --------------------------

def _rejects(reasons: list[str], raw: str = "x") -> pl.DataFrame:
    n = len(reasons)
    return pl.DataFrame({"source": ["zip://a.zip::x.csv"] * n, "line": list(range(2, n + 2)),
                         "raw": [raw] * n, "reason": reasons, "_partition": ["p"] * n})


def test_no_rows_quarantined_passes_as_a_warning_check_when_nothing_was_rejected() -> None:
    stats = TableStats()
    stats.add_quarantined(_rejects([]))
    result = no_rows_quarantined("tweets", stats)
    assert result.passed
    assert result.check_name == "tweets_no_rows_quarantined"
    assert result.asset_key == dg.AssetKey("tweets")
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert _meta(result, "failing_count") == 0


def test_no_rows_quarantined_counts_rejects_by_reason_most_frequent_first() -> None:
    stats = TableStats()
    stats.add_quarantined(_rejects(["blank line", "wrong field count: expected 7, found 3",
                                    "wrong field count: expected 7, found 2"]))
    stats.add_quarantined(_rejects(["blank line", "blank line", "null in required field Open"]))
    result = no_rows_quarantined("stock_prices", stats)
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert _meta(result, "failing_count") == 6
    assert "wrong field count: expected 7, found 3" in str(_meta(result, "sample"))
    by_reason = _meta(result, "by_reason")
    assert by_reason == {"blank line": 3, "wrong field count": 2,
                         "null in required field Open": 1}
    assert list(by_reason) == ["blank line", "wrong field count",
                               "null in required field Open"]


def test_quarantine_sample_is_capped_and_cuts_long_raw_text() -> None:
    stats = TableStats()
    stats.add_quarantined(_rejects(["blank line"] * 3, raw="y" * 500))
    stats.add_quarantined(_rejects(["blank line"] * 4))
    assert stats.quarantined == 7
    sample = stats.quarantine_sample
    assert sample.height == 5
    assert sample.columns == ["source", "line", "raw", "reason"]
    assert sample["raw"].str.len_chars().to_list() == [80, 80, 80, 1, 1]


# --- rows_accounted and keys_unique ----------------------------------------------------------

MEMBERS = pl.DataFrame({
    "uri": ["zip://a.csv::x", "zip://b.csv::x", "zip://c.csv::x", "zip://t.csv::x"],
    "table": ["stock_prices", "stock_prices", "stock_prices", "tweets"],
    "status": ["validated", "validated_with_quarantine", "rejected", "validated"],
    # c.csv was rejected whole: its 3 data lines are quarantined as one file-level row
    # (no line), which the row-level quarantine on disk does not count.
    "rows_read": [10, 5, 3, 7],
    "rows_valid": [10, 4, 0, 7],
    "rows_quarantined": [0, 1, 3, 0],
})
QUARANTINE = pl.DataFrame({"source": ["zip://b.csv::x"], "len": [1]},
                          schema={"source": pl.String, "len": pl.UInt32})


def test_rows_accounted_reports_the_files_counts_and_only_this_tables_members() -> None:
    result = rows_accounted("stock_prices", MEMBERS, rows_on_disk=12,
                            quarantine_on_disk=QUARANTINE, superseded=2)
    assert result.passed
    assert result.check_name == "stock_prices_rows_accounted"
    assert result.asset_key == dg.AssetKey("stock_prices")
    assert _meta(result, "rows_read") == 18
    assert _meta(result, "rows_valid") == 14
    assert _meta(result, "rows_quarantined") == 4
    assert _meta(result, "rows_written") == 12
    assert _meta(result, "rows_superseded_by_other_files") == 2
    assert _meta(result, "failing_count") == 0
    assert str(_meta(result, "sample")) == "(none)"


def test_rows_accounted_counts_each_disagreement_and_names_the_member() -> None:
    members = MEMBERS.with_columns(
        rows_read=pl.when(pl.col("uri") == "zip://a.csv::x").then(11)
        .otherwise(pl.col("rows_read")))
    result = rows_accounted("stock_prices", members, rows_on_disk=13,
                            quarantine_on_disk=QUARANTINE.clear(), superseded=0)
    assert not result.passed
    # a.csv: read != valid + quarantined; b.csv: its quarantined row is not on disk; and the
    # table holds 13 rows for 14 valid ones.
    assert _meta(result, "failing_count") == 3
    sample = str(_meta(result, "sample"))
    assert sample.startswith("| uri | rows_read | rows_valid | rows_quarantined |")
    assert "zip://a.csv::x" in sample
    assert "zip://b.csv::x" in sample


def test_rows_accounted_of_a_table_the_file_did_not_feed() -> None:
    result = rows_accounted("crypto_prices", MEMBERS, rows_on_disk=0,
                            quarantine_on_disk=QUARANTINE.clear(), superseded=0)
    assert result.passed
    assert _meta(result, "rows_valid") == 0
    assert _meta(result, "rows_read") == 0
    stray = rows_accounted("crypto_prices", MEMBERS, rows_on_disk=1,
                           quarantine_on_disk=QUARANTINE.clear(), superseded=0)
    assert not stray.passed
    assert _meta(stray, "failing_count") == 1


def test_keys_unique_passes_on_no_repeats_and_names_the_key() -> None:
    result = keys_unique("stock_prices", ("Symbol", "Date"), pl.DataFrame())
    assert result.passed
    assert result.check_name == "stock_prices_keys_unique"
    assert result.asset_key == dg.AssetKey("stock_prices")
    assert _meta(result, "failing_count") == 0
    assert _meta(result, "key") == "Symbol, Date"
    assert _meta(result, "sample") == "(none)"


# --- the landing sensor's decisions --------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _obj(key: str, version: str) -> RawObject:
    return RawObject(key=key, version=version, size=1, landed_at=T0)


def test_not_ingested_keeps_new_and_changed_files_in_order() -> None:
    landed = [_obj("a.csv", "v2"), _obj("b c.csv", "v1"), _obj("n.csv", "v1")]
    ingested = {partition_key_for("a.csv"): "v1", partition_key_for("b c.csv"): "v1"}
    assert [o.key for o in not_ingested(landed, ingested)] == ["a.csv", "n.csv"]
    assert not_ingested(landed, {partition_key_for(o.key): o.version for o in landed}) == []


def _run(status: dg.DagsterRunStatus, obj: RawObject, n: int = 0) -> dg.DagsterRun:
    return dg.DagsterRun(job_name="ingest", run_id=f"{status.value}-{obj.key}-{n}",
                         status=status, tags={FILE_VERSION_TAG: file_version(obj)})


def test_plan_requests_each_pending_file_with_its_partition_and_tags() -> None:
    a, b = _obj("x/a b.csv", "1"), _obj("b.csv", "7")
    other = _obj("b.csv", "6")  # a failed run of an older version does not count
    plan = plan_runs([a, b], [_run(dg.DagsterRunStatus.FAILURE, other),
                              _run(dg.DagsterRunStatus.FAILURE, a)])
    assert [(r.run_key, r.partition_key) for r in plan.requests] == [
        (f"{file_version(a)}#1", partition_key_for("x/a b.csv")),
        (f"{file_version(b)}#0", "b.csv"),
    ]
    assert plan.requests[0].tags == {RAW_KEY_TAG: "x/a b.csv",
                                     FILE_VERSION_TAG: file_version(a)}
    assert plan.in_flight == []
    assert plan.given_up == []


def test_plan_gives_up_only_at_the_limit_and_a_live_run_wins_over_failures() -> None:
    obj = _obj("a.csv", "1")
    failures = [_run(dg.DagsterRunStatus.FAILURE, obj, n) for n in range(3)]
    assert [r.run_key for r in plan_runs([obj], failures[:2], max_attempts=3).requests] == [
        f"{file_version(obj)}#2"]
    assert plan_runs([obj], failures, max_attempts=3).given_up == ["a.csv"]
    live = plan_runs([obj], [*failures, _run(dg.DagsterRunStatus.STARTED, obj, 9)],
                     max_attempts=3)
    assert live.in_flight == ["a.csv"]
    assert live.given_up == []
    assert live.requests == []


def test_a_version_ingested_before_and_landed_again_is_requested_again() -> None:
    """v1 ingested, then v2, then v1 again (on S3 the same ETag): v1's old successful run
    counted as in flight, and the lake kept serving v2 (session 23)."""
    obj = _obj("vendor/prices.csv", "etag-v1")
    plan = plan_runs([obj], [_run(dg.DagsterRunStatus.SUCCESS, obj)], max_attempts=1)
    assert [r.run_key for r in plan.requests] == [f"{file_version(obj)}#1"]
    assert plan.in_flight == plan.given_up == []
    # its failures still count towards the limit, its success does not
    runs = [_run(dg.DagsterRunStatus.SUCCESS, obj), _run(dg.DagsterRunStatus.FAILURE, obj, 1)]
    assert plan_runs([obj], runs, max_attempts=1).given_up == ["vendor/prices.csv"]
    assert [r.run_key for r in plan_runs([obj], runs, max_attempts=2).requests] == [
        f"{file_version(obj)}#2"]


def test_a_file_in_flight_or_given_up_does_not_stop_the_files_after_it() -> None:
    busy, done, new = _obj("a.csv", "1"), _obj("b.csv", "1"), _obj("c.csv", "1")
    runs = [_run(dg.DagsterRunStatus.STARTED, busy),
            *[_run(dg.DagsterRunStatus.FAILURE, done, n) for n in range(2)]]
    plan = plan_runs([busy, done, new], runs, max_attempts=2)
    assert plan.in_flight == ["a.csv"]
    assert plan.given_up == ["b.csv"]
    assert [r.partition_key for r in plan.requests] == ["c.csv"]


def test_a_run_without_a_version_tag_belongs_to_no_file() -> None:
    obj = _obj("a.csv", "1")
    untagged = dg.DagsterRun(job_name="ingest", run_id="r", status=dg.DagsterRunStatus.STARTED,
                             tags={})
    assert [r.run_key for r in plan_runs([obj], [untagged]).requests] == [
        f"{file_version(obj)}#0"]


# --- raw keys --------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "why"), [
    ("a\x1fb.csv", "control character"),  # the last C0 control
    ("a\x01b.csv", "control character"),
    ("a/", "empty"),
    ("a/./b.csv", "'.'"),
    ("a/..", "'..'"),
    ("/", "absolute"),
    (".hidden", "hidden"),
])
def test_more_keys_that_would_leave_raw_or_never_be_ingested_are_refused(key: str,
                                                                        why: str) -> None:
    with pytest.raises(ValueError, match="refusing raw key") as err:
        checked_raw_key(key)
    assert why in str(err.value)
    assert repr(key) in str(err.value)  # the message names the key as given


@pytest.mark.parametrize("key", ["a b.csv", "a\x20b.csv", "ü/ñ.csv", "a.b/c", "a~/b"])
def test_printable_keys_are_kept(key: str) -> None:
    assert checked_raw_key(key) == key
