"""Latest delivery wins by landed time, not by file name, whichever file is ingested first.

Every other re-delivery test lands the later delivery under the alphabetically later name, so
ordering by partition name would pass them too. Here the later delivery has the earlier name.
"""

import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from cryptodudez.lake.tables import resolve_across_files
from cryptodudez.resources.lake import RAW, VALIDATED, Lake, partition_key_for
from tests.helpers import QUIET, table

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
# The later delivery sorts first by name (and by partition key): "a" < "b".
LATE_KEY, EARLY_KEY = "deliveries/a-correction.zip", "deliveries/b-original.zip"
EARLY_LANDED = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LATE_LANDED = datetime(2026, 1, 6, 9, 0, tzinfo=UTC)
EARLY_BARS = {"2020-01-02": 100, "2020-01-03": 101, "2020-01-06": 102}
LATE_BARS = {"2020-01-03": 201, "2020-01-06": 202, "2020-01-07": 203}


def _archive(path: Path, bars: dict[str, int]) -> Path:
    lines = "".join(f"{date},10,12,9,11,11,{volume}\n" for date, volume in bars.items())
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("stocks/AAA.csv", f"{HEADER}\n{lines}")
    return path


def _land_at(lake: Lake, source: Path, key: str, landed: datetime) -> None:
    lake.land(source, key)
    stamp = landed.timestamp()
    os.utime(lake.path(RAW, key), (stamp, stamp))
    assert lake.stat_raw(key).landed_at == landed


def _ingest(defs: dg.Definitions, instance: dg.DagsterInstance,
            key: str) -> dg.ExecuteInProcessResult:
    partition = partition_key_for(key)
    instance.add_dynamic_partitions("landed_files", [partition])
    return defs.resolve_job_def("ingest_landed_file").execute_in_process(
        partition_key=partition, instance=instance, run_config=QUIET, raise_on_error=False)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _superseded(result: dg.ExecuteInProcessResult) -> int:
    mat = next(m for m in result.asset_materializations_for_node("lake_ingest")
               if m.asset_key.to_user_string() == "stock_prices")
    return int(mat.metadata["rows_superseded"].value)  # type: ignore[arg-type]


@pytest.mark.parametrize("first", [EARLY_KEY, LATE_KEY], ids=["early-first", "late-first"])
def test_the_later_landed_delivery_wins_although_its_name_sorts_first(
        defs, instance, tmp_path, first: str) -> None:
    lake: Lake = defs.resources["lake"]
    _land_at(lake, _archive(tmp_path / "early.zip", EARLY_BARS), EARLY_KEY, EARLY_LANDED)
    _land_at(lake, _archive(tmp_path / "late.zip", LATE_BARS), LATE_KEY, LATE_LANDED)
    second = LATE_KEY if first == EARLY_KEY else EARLY_KEY

    results = {key: _ingest(defs, instance, key) for key in (first, second)}

    assert all(r.success for r in results.values())
    for key, result in results.items():
        checks = _checks(result)
        assert checks["stock_prices_keys_unique"], key
        assert checks["stock_prices_rows_accounted"], key
    rows = table(defs, VALIDATED, "stock_prices").sort("Date")
    assert rows.select("Date", "Volume", "_partition").rows() == [
        ("2020-01-02", 100, partition_key_for(EARLY_KEY)),  # only in the early delivery
        ("2020-01-03", 201, partition_key_for(LATE_KEY)),   # shared: the later landing wins
        ("2020-01-06", 202, partition_key_for(LATE_KEY)),   # shared: the later landing wins
        ("2020-01-07", 203, partition_key_for(LATE_KEY)),   # only in the late delivery
    ]
    assert rows.filter(pl.col("_partition") == partition_key_for(LATE_KEY))[
        "_landed_at"].unique().to_list() == [LATE_LANDED]
    # The two shared dates are counted as superseded where the early delivery's rows lost:
    # in its own run when it came second, in nobody's run when it came first (its published
    # rows are removed by the later delivery's run, which loses nothing itself).
    assert _superseded(results[EARLY_KEY]) == (2 if first == LATE_KEY else 0)
    assert _superseded(results[LATE_KEY]) == 0


def test_a_file_that_feeds_no_row_of_a_table_reads_none_of_it(
        defs, instance, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolving "the latest delivery wins" for a table the file staged no row in reads
    nothing: such a file can neither lose nor supersede a row there. The old code read every
    other file's keys of the table (the whole table, downloaded on S3) on every ingest."""
    lake: Lake = defs.resources["lake"]
    _land_at(lake, _archive(tmp_path / "early.zip", EARLY_BARS), EARLY_KEY, EARLY_LANDED)
    _land_at(lake, _archive(tmp_path / "late.zip", LATE_BARS), LATE_KEY, LATE_LANDED)
    assert all(_ingest(defs, instance, key).success for key in (EARLY_KEY, LATE_KEY))
    assert len(lake.fragments(VALIDATED, "stock_prices")) == 2
    reads: list[list[str]] = []
    scan = Lake.scan_parquet

    def counted(self: Lake, paths: list[str], *args: object, **kwargs: object) -> pl.LazyFrame:
        reads.append(list(paths))
        return scan(self, paths, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Lake, "scan_parquet", counted)
    removed = resolve_across_files(lake, "stock_prices", partition_key_for("other/tweets.zip"),
                                   pl.Series("_key_hash", [], dtype=pl.UInt64), [])
    assert removed.height == 0
    assert reads == []
    assert len(lake.fragments(VALIDATED, "stock_prices")) == 2


CRYPTO_HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"


def _coin_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A coin's daily prices: (day, High, Close) per row."""
    lines = "".join(f"{i},Foo,FOO,{day} 23:59:59,{high},1,1.5,{close},100,1000\n"
                    for i, (day, high, close) in enumerate(rows, start=1))
    path.write_text(f"{CRYPTO_HEADER}\n{lines}")
    return path


def _coin_zip(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.write(_coin_csv(path.with_suffix(".csv"), rows), "b.csv")
    return path


def _coins(defs: dg.Definitions) -> list[tuple[str, float, str]]:
    rows = table(defs, VALIDATED, "crypto_prices").sort("Date")
    return [(str(d)[:10], c, p) for d, c, p in rows.select("Date", "Close", "_partition").rows()]


@pytest.mark.parametrize("redelivery", ["re-dated", "row-quarantined", "broken-zip"])
def test_a_replaced_delivery_gives_back_the_rows_it_had_superseded(
        defs, instance, tmp_path, redelivery: str) -> None:
    """A later delivery's previous version had superseded a row of an earlier file; when it
    is replaced by a version without that row (re-dated, quarantined, unreadable), the
    earlier file's row wins again, in the same run. It used to be lost: removed from the
    earlier file's fragment for good, in neither the table nor quarantine, while the
    unchanged earlier file stayed recorded as ingested."""
    lake: Lake = defs.resources["lake"]
    metastore = defs.resources["metastore"]
    early, late = "d1/a.csv", "d2/b.zip" if redelivery == "broken-zip" else "d2/b.csv"
    pa, pb = partition_key_for(early), partition_key_for(late)
    make = _coin_zip if redelivery == "broken-zip" else _coin_csv
    _land_at(lake, _coin_csv(tmp_path / "a.csv", [("2020-01-01", "2", "1.5"),
                                                  ("2020-01-02", "2", "1.6")]),
             early, EARLY_LANDED)
    original = make(tmp_path / f"b1{Path(late).suffix}", [("2020-01-02", "3", "1.7")])
    _land_at(lake, original, late, LATE_LANDED)
    assert all(_ingest(defs, instance, key).success for key in (early, late))
    assert _coins(defs) == [("2020-01-01", 1.5, pa), ("2020-01-02", 1.7, pb)]
    assert metastore.superseded_rows(pa) == {"crypto_prices": 1}

    redelivered = tmp_path / f"b2{Path(late).suffix}"
    if redelivery == "re-dated":
        make(redelivered, [("2020-01-03", "3", "1.7")])
    elif redelivery == "row-quarantined":
        make(redelivered, [("2020-01-02", "not a number", "1.7")])
    else:
        redelivered.write_bytes(b"PK\x03\x04 not a zip after all")
    _land_at(lake, redelivered, late, datetime(2026, 1, 7, 9, 0, tzinfo=UTC))
    result = _ingest(defs, instance, late)

    assert result.success
    expected = [("2020-01-01", 1.5, pa), ("2020-01-02", 1.6, pa)]  # a.csv's row is back
    if redelivery == "re-dated":
        expected.append(("2020-01-03", 1.7, pb))
    assert _coins(defs) == expected
    assert metastore.superseded_rows(pa) == {}
    assert metastore.superseded_rows(pb) == {}
    assert _checks(result)["crypto_prices_keys_unique"]
    mat = next(m for m in result.asset_materializations_for_node("lake_ingest")
               if m.asset_key.to_user_string() == "crypto_prices")
    assert mat.metadata["rows_restored"].value == 1
    # Nothing is left for the next `cryptodudez ingest`: both versions are recorded.
    assert metastore.ingested_versions() == {
        pa: lake.stat_raw(early).version, pb: lake.stat_raw(late).version}

    if redelivery != "re-dated":
        return  # the round trip below is the same for every kind of redelivery
    # The original delivered once more supersedes the row again, counted once, and the
    # record of what it superseded survives the round trip: replaced again, the row is back.
    _land_at(lake, original, late, datetime(2026, 1, 8, 9, 0, tzinfo=UTC))
    assert _ingest(defs, instance, late).success
    assert _coins(defs) == [("2020-01-01", 1.5, pa), ("2020-01-02", 1.7, pb)]
    assert metastore.superseded_rows(pa) == {"crypto_prices": 1}
    _land_at(lake, redelivered, late, datetime(2026, 1, 9, 9, 0, tzinfo=UTC))
    assert _ingest(defs, instance, late).success
    assert _coins(defs) == expected
    assert metastore.superseded_rows(pa) == {}


def test_a_replaced_delivery_is_refused_while_a_file_it_had_beaten_is_gone(
        defs, instance, tmp_path) -> None:
    """The earlier file was deleted from raw/ after its row lost: publishing the replacement
    would remove the later row and nothing could give the earlier one back. A QA walkthrough
    saw that row vanish with every check passing; now the run fails before publishing,
    naming the file, and succeeds once it is landed again."""
    lake: Lake = defs.resources["lake"]
    early, late = "d1/a.csv", "d2/b.csv"
    pa, pb = partition_key_for(early), partition_key_for(late)
    first = _coin_csv(tmp_path / "a.csv", [("2020-01-01", "2", "1.5"), ("2020-01-02", "2", "1.6")])
    _land_at(lake, first, early, EARLY_LANDED)
    _land_at(lake, _coin_csv(tmp_path / "b1.csv", [("2020-01-02", "3", "1.7")]), late,
             LATE_LANDED)
    assert all(_ingest(defs, instance, key).success for key in (early, late))
    before = [("2020-01-01", 1.5, pa), ("2020-01-02", 1.7, pb)]
    assert _coins(defs) == before

    Path(lake.path(RAW, early)).unlink()
    _land_at(lake, _coin_csv(tmp_path / "b2.csv", [("2020-01-03", "3", "1.7")]), late,
             datetime(2026, 1, 7, 9, 0, tzinfo=UTC))
    result = _ingest(defs, instance, late)

    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"raw/{early}: gone from the lake" in str(failure.event_specific_data)
    assert _coins(defs) == before  # nothing published: no row lost

    _land_at(lake, first, early, datetime(2026, 1, 8, 9, 0, tzinfo=UTC))
    assert _ingest(defs, instance, late).success
    assert _coins(defs) == [("2020-01-01", 1.5, pa), ("2020-01-02", 1.6, pa),
                            ("2020-01-03", 1.7, pb)]
