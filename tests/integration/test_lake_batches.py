"""Streaming ingest: many batches per file, staged fragments, interrupted runs."""

import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from cryptodudez.archives import iter_unpacked
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.definitions import build_definitions
from cryptodudez.ingest import ingest_members
from cryptodudez.lake.tables import PartitionWriter
from cryptodudez.resources.lake import QUARANTINE, VALIDATED, Lake, partition_key_for
from cryptodudez.settings import Settings
from tests.conftest import SAMPLES
from tests.helpers import WriteNow, land_and_ingest, table

SAMPLE_FILES = {f"samples/{p.name}": p for p in sorted(SAMPLES.glob("*.zip"))}
TABLES = ("stock_prices", "symbols_meta", "crypto_prices", "tweets")
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


def _snapshot(defs: dg.Definitions) -> dict[str, pl.DataFrame]:
    """Every table, sorted, with lineage made relative to the lake's root."""
    root = defs.resources["lake"].url()
    out = {}
    for layer in (VALIDATED, QUARANTINE):
        for name in TABLES:
            frame = table(defs, layer, name)
            if frame.width:
                frame = frame.drop("_landed_at", strict=False).with_columns(
                    pl.col(c).str.replace(root, "<lake>", literal=True)
                    for c in ("_source", "source") if c in frame.columns)
                out[f"{layer}/{name}"] = frame.sort(pl.all().exclude(pl.List(pl.String)))
    return out


def _same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> bool:
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_one_member_per_batch_gives_the_same_tables_as_one_batch(
        defs, instance, tmp_path) -> None:
    whole = land_and_ingest(defs, instance, SAMPLE_FILES)
    tiny_defs = build_definitions(Settings(lake=str(tmp_path / "lake2"),
                                           dagster_home=str(tmp_path / "dh2")))
    tiny = land_and_ingest(tiny_defs, instance, SAMPLE_FILES, batch_bytes=1)
    assert all(r.success for r in [*whole.values(), *tiny.values()])
    for key in SAMPLE_FILES:
        assert _checks(whole[key]) == _checks(tiny[key]), key
    assert _same(_snapshot(defs), _snapshot(tiny_defs))
    lake: Lake = tiny_defs.resources["lake"]
    stock_key = partition_key_for("samples/stock_market_sample.zip")
    assert len(lake.partition_fragments(VALIDATED, "stock_prices", stock_key)) > 1


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path


def test_a_key_repeated_in_another_batch_of_the_same_file_is_superseded(
        defs, instance, tmp_path) -> None:
    bars = "2020-01-02,1,2,1,1,1,5\n2020-01-03,1,2,1,1,1,6\n"
    archive = _zip(tmp_path / "dup.zip", {
        "etfs/AAA.csv": f"{HEADER}\n{bars}",
        "stocks/AAA.csv": f"{HEADER}\n2020-01-03,1,2,1,1,1,60\n2020-01-06,1,2,1,1,1,7\n",
    })
    result = land_and_ingest(defs, instance, {"dup.zip": archive}, batch_bytes=1)["dup.zip"]
    assert result.success
    checks = _checks(result)
    assert checks["stock_prices_keys_unique"]
    assert checks["stock_prices_rows_accounted"]
    rows = table(defs, VALIDATED, "stock_prices").sort("Date")
    # The later member (stocks/ sorts after etfs/) wins the shared date.
    assert rows.select("Date", "Volume").rows() == [
        ("2020-01-02", 5), ("2020-01-03", 60), ("2020-01-06", 7)]
    mat = next(m for m in result.asset_materializations_for_node("lake_ingest")
               if m.asset_key.to_user_string() == "stock_prices")
    assert mat.metadata["rows_superseded"].value == 1


def test_an_interrupted_run_publishes_nothing_and_its_retry_cleans_up(
        defs, instance, tmp_path, monkeypatch) -> None:
    first = _zip(tmp_path / "v1.zip", {"stocks/AAA.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,5\n"})
    assert land_and_ingest(defs, instance, {"x.zip": first})["x.zip"].success
    before = _snapshot(defs)

    from cryptodudez.assets import lake as lake_assets  # noqa: PLC0415

    real = lake_assets.ingest_members
    calls = {"n": 0}

    def failing_second_batch(*args, **kwargs):  # every attempt dies at its second batch
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            raise RuntimeError("killed mid-file")
        return real(*args, **kwargs)

    monkeypatch.setattr(lake_assets, "ingest_members", failing_second_batch)
    second = _zip(tmp_path / "v2.zip", {
        "stocks/AAA.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,50\n",
        "stocks/BBB.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,9\n",
    })
    failed = land_and_ingest(defs, instance, {"x.zip": second}, batch_bytes=1)["x.zip"]
    assert not failed.success
    assert calls["n"] == 6  # the run's retry policy tried the step three times
    lake: Lake = defs.resources["lake"]
    key = partition_key_for("x.zip")
    assert lake.staged(VALIDATED, "stock_prices", key)  # the first batch waits in staging
    assert _same(_snapshot(defs), before)  # readers still see the previous version, whole

    monkeypatch.setattr(lake_assets, "ingest_members", real)
    job = defs.resolve_job_def("ingest_landed_file")
    retry = job.execute_in_process(partition_key=key, instance=instance,
                                   run_config={"ops": {"lake_ingest": {"config": {
                                       "batch_bytes": 1}}}})
    assert retry.success
    assert not lake.staged(VALIDATED, "stock_prices", key)
    rows = table(defs, VALIDATED, "stock_prices").sort("Symbol")
    assert rows.select("Symbol", "Volume").rows() == [("AAA", 50), ("BBB", 9)]


@pytest.mark.parametrize("batch_bytes", [1, 10**9])
def test_reference_members_are_ingested_first_whatever_the_archive_order(
        defs, instance, tmp_path, batch_bytes) -> None:
    meta_header = ("Nasdaq Traded,Symbol,Security Name,Listing Exchange,Market Category,ETF,"
                   "Round Lot Size,Test Issue,Financial Status,CQS Symbol,NASDAQ Symbol,"
                   "NextShares")
    archive = _zip(tmp_path / "late_meta.zip", {
        "stocks/AAA.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,5\n",
        "zz_meta.csv": f"{meta_header}\nY,AAA,Alpha Inc,Q,Q,N,100,N,N,AAA,AAA,N\n",
    })
    result = land_and_ingest(defs, instance, {"m.zip": archive},
                             batch_bytes=batch_bytes)["m.zip"]
    assert _checks(result)["stock_prices_security_name_known"]
    assert table(defs, VALIDATED, "stock_prices")["Security Name"].to_list() == ["Alpha Inc"]


@pytest.mark.parametrize("error", [OSError("the store said no"),
                                   RuntimeError("the run store is locked")])
def test_a_staging_clear_that_fails_after_publishing_fails_nothing(
        defs, instance, tmp_path, monkeypatch, caplog, error) -> None:
    """The tables are published before staging is cleared: a failing clear is logged, and
    the run, its tables and its catalogue entry stand; the next run of the file clears it."""
    archive = _zip(tmp_path / "a.zip", {"stocks/AAA.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,5\n"})

    def broken(self: Lake, partition_key: str) -> dict[str, list[str]]:
        raise error

    real = Lake.staged_runs
    monkeypatch.setattr(Lake, "staged_runs", broken)
    result = land_and_ingest(defs, instance, {"a.zip": archive})["a.zip"]
    assert result.success
    assert _checks(result)["stock_prices_rows_accounted"]
    assert table(defs, VALIDATED, "stock_prices")["Volume"].to_list() == [5]
    assert "could not clear the staging" in caplog.text
    lake: Lake = defs.resources["lake"]
    key = partition_key_for("a.zip")
    left = Path(lake.partition_staging(key))
    assert [p.name for p in left.iterdir()] == [result.run_id]  # its emptied folders
    monkeypatch.setattr(Lake, "staged_runs", real)
    again = _zip(tmp_path / "a2.zip", {"stocks/AAA.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,6\n"})
    assert land_and_ingest(defs, instance, {"a.zip": again})["a.zip"].success
    assert list(left.iterdir()) == []  # the finished run's folders went with the next run's


def test_a_run_this_instance_does_not_know_keeps_its_staging(instance) -> None:
    """Another Dagster home on the same lake may be staging: unknown is not finished."""
    from cryptodudez.assets import lake as lake_assets  # noqa: PLC0415

    assert lake_assets._finished(instance, "a-run-of-another-dagster-home") is False


def _staged(lake: Lake, key: str, archive: Path, run: str,
            finished: Callable[[str], bool] = lambda run: False) -> PartitionWriter:
    """A run of ``archive`` as partition ``key``, staged and not yet published."""
    writer = PartitionWriter(lake, WriteNow(lake), key, datetime.now(UTC), run=run,
                             finished=finished)
    with archive.open("rb") as fh:
        for batch in iter_unpacked(f"file://{archive}", fh, DATASETS):
            writer.add(ingest_members(batch, DATASETS))
    return writer


def test_two_runs_of_one_file_never_mix_their_fragments(tmp_path) -> None:
    """A re-landed version's run stages while the older version's run is still going: each
    publishes its own fragments only, the last to publish wins whole, and a run that died
    staging is cleared once a run knows it has finished."""
    lake = Lake(uri=str(tmp_path / "lake"))
    key = partition_key_for("x.zip")

    def volumes() -> list[int]:
        return lake.read_table(VALIDATED, "stock_prices").sort("Date")["Volume"].to_list()

    _staged(lake, key, _zip(tmp_path / "v0.zip", {
        "stocks/AAA.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,4\n"}), "run-0")  # then died
    older = _staged(lake, key, _zip(tmp_path / "v1.zip", {
        "stocks/AAA.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,5\n"}), "run-1")
    newer = _staged(lake, key, _zip(tmp_path / "v2.zip", {
        "stocks/AAA.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,6\n2020-01-03,1,2,1,1,1,7\n"}),
        "run-2", finished=lambda run: run in {"run-0", "run-1"})
    with lake.publish_lock():
        older.publish()
    assert volumes() == [5]
    assert set(lake.staged_runs(key)) == {"run-0", "run-2"}  # not its to remove
    with lake.publish_lock():
        newer.publish()
    assert volumes() == [6, 7]
    assert lake.staged_runs(key) == {}
    assert list(Path(lake.partition_staging(key)).iterdir()) == []
