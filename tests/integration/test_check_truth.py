"""Check results are true for the asset, as the Dagster instance (what the UI reads) holds them.

Each test plants a fault the check exists to catch: a quarantined row, an unknown member, a
lost fragment, a row on disk that breaks the schema; and reads the verdict back per partition.
"""

import io
import os
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl

from cryptodudez.resources.lake import VALIDATED, Lake, partition_key_for
from tests.conftest import SAMPLES
from tests.helpers import land_and_ingest

TWEETS = SAMPLES / "elon_musk_tweets_sample.zip"
STOCKS = SAMPLES / "stock_market_sample.zip"
FAILED, SUCCEEDED = "FAILED", "SUCCEEDED"


def _statuses(instance: dg.DagsterInstance, asset: str, check: str) -> dict[str | None, str]:
    """Partition -> latest status of a check, as the UI's partition view reads it."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    infos = instance.event_log_storage.get_asset_check_partition_info([key])
    return {info.partition_key: info.latest_execution_status.value for info in infos}


def test_a_file_with_rejects_keeps_its_failed_check_after_a_clean_file(
        defs, instance, tmp_path: Path) -> None:
    clean = tmp_path / "clean.zip"
    with zipfile.ZipFile(clean, "w") as archive, zipfile.ZipFile(STOCKS) as sample:
        for name in sample.namelist():
            if name.startswith("stocks/A"):
                archive.writestr(name.replace("stocks/", "stocks/z"), sample.read(name))
    results = land_and_ingest(defs, instance, {"t/tweets.zip": TWEETS, "t/clean.zip": clean})
    assert all(r.success for r in results.values())
    quarantined = _statuses(instance, "tweets", "tweets_no_rows_quarantined")
    assert quarantined[partition_key_for("t/tweets.zip")] == FAILED
    # the later, clean file has its own verdict; it does not overwrite the tweets file's
    assert quarantined[partition_key_for("t/clean.zip")] == SUCCEEDED
    accounted = _statuses(instance, "tweets", "tweets_rows_accounted")
    assert set(accounted.values()) == {SUCCEEDED}


def test_an_unknown_member_fails_recognition_again_when_landed_again(
        defs, instance, tmp_path: Path) -> None:
    odd = tmp_path / "odd.zip"
    with zipfile.ZipFile(odd, "w") as archive:
        archive.writestr("mystery.csv", "foo,bar,baz\n1,2,3\n")
    key = "v/odd.zip"
    land_and_ingest(defs, instance, {key: odd})
    check = "raw_files_all_members_recognised"
    assert _statuses(instance, "raw_files", check)[partition_key_for(key)] == FAILED
    lake: Lake = defs.resources["lake"]
    path = lake.path("raw", key)
    os.utime(path, (1_800_000_000, 1_800_000_000))  # the same bytes, landed again
    again = land_and_ingest(defs, instance, {key: odd})[key]
    raw = next(m for m in again.asset_materializations_for_node("lake_ingest")
               if m.asset_key == dg.AssetKey("raw_files"))
    assert raw.metadata["unchanged"].value is True
    assert _statuses(instance, "raw_files", check)[partition_key_for(key)] == FAILED


def test_a_lost_fragment_fails_rows_accounted(defs, instance) -> None:
    key = "s/stocks.zip"
    land_and_ingest(defs, instance, {key: STOCKS})
    pk = partition_key_for(key)
    assert _statuses(instance, "stock_prices", "stock_prices_rows_accounted")[pk] == \
        SUCCEEDED
    lake: Lake = defs.resources["lake"]
    fragment = lake.partition_fragments(VALIDATED, "stock_prices", pk)[0]
    Path(fragment).unlink()  # rows lost behind the platform's back
    lake.land(STOCKS, key)
    os.utime(lake.path("raw", key), (1_800_000_000, 1_800_000_000))
    result = land_and_ingest(defs, instance, {key: STOCKS})[key]
    assert not result.success  # blocking check
    assert _statuses(instance, "stock_prices", "stock_prices_rows_accounted")[pk] == \
        FAILED


def test_schema_conforms_checks_what_is_on_disk(defs, instance) -> None:
    key = "s/stocks.zip"
    land_and_ingest(defs, instance, {key: STOCKS})
    pk = partition_key_for(key)
    lake: Lake = defs.resources["lake"]
    fragment = lake.partition_fragments(VALIDATED, "stock_prices", pk)[0]
    frame = pl.read_parquet(fragment)
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(-1.0).otherwise(pl.col("Low")).alias("Low"))
    buf = io.BytesIO()
    broken.write_parquet(buf)
    Path(fragment).write_bytes(buf.getvalue())  # a negative price, written behind our back
    os.utime(lake.path("raw", key), (1_800_000_000, 1_800_000_000))
    result = land_and_ingest(defs, instance, {key: STOCKS})[key]
    assert not result.success
    assert _statuses(instance, "stock_prices", "stock_prices_schema_conforms")[pk] == \
        FAILED


def test_schema_conforms_sees_a_writer_that_corrupts_rows(defs, instance, monkeypatch) -> None:
    """A planted writer bug (a value changed on its way to disk) fails the check in the same
    run: the check validates what was published, not the frame the ingest held."""
    original = Lake.write_parquet

    def corrupting(self: Lake, path: str, frame: pl.DataFrame) -> None:
        if "stock_prices" in path and "Low" in frame.columns and frame.height:
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) == 0).then(-1.0).otherwise(pl.col("Low"))
                .alias("Low"))
        original(self, path, frame)

    monkeypatch.setattr(Lake, "write_parquet", corrupting)
    key = "s/stocks.zip"
    result = land_and_ingest(defs, instance, {key: STOCKS})[key]
    assert not result.success
    pk = partition_key_for(key)
    assert _statuses(instance, "stock_prices", "stock_prices_schema_conforms")[pk] == FAILED
    assert _statuses(instance, "stock_prices", "stock_prices_rows_accounted")[pk] == SUCCEEDED
