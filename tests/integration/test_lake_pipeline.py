"""The whole lake on the bundled samples: idempotency, re-delivery, the CLI and the catalogue."""

import zipfile
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cryptodudez import cli, commands
from cryptodudez.resources.lake import QUARANTINE, VALIDATED
from cryptodudez.settings import PROJECT_DIR, Settings
from tests.conftest import SAMPLES
from tests.helpers import land_and_ingest, table

SAMPLE_FILES = {f"samples/{p.name}": p for p in sorted(SAMPLES.glob("*.zip"))}


def _snapshot(defs) -> dict[str, pl.DataFrame]:
    out = {}
    for layer in (VALIDATED, QUARANTINE):
        for name in ("stock_prices", "crypto_prices", "tweets", "symbols_meta"):
            frame = table(defs, layer, name)
            if frame.width:
                out[f"{layer}/{name}"] = frame.drop("_landed_at", strict=False).sort(
                    pl.all().exclude(pl.List(pl.String)))
    return out


def test_samples_ingest_and_rerun_is_a_no_op(defs, instance) -> None:
    results = land_and_ingest(defs, instance, SAMPLE_FILES)
    assert all(r.success for r in results.values())
    before = _snapshot(defs)
    assert before[f"{VALIDATED}/stock_prices"].height > 3000
    assert set(before[f"{QUARANTINE}/tweets"]["line"].to_list()) == {
        448, 895, 1200, 1831, 2228, 2696, 2697, 3082, 3117}

    again = land_and_ingest(defs, instance, SAMPLE_FILES)  # byte-identical landing
    for result in again.values():
        assert result.success
        mat = result.asset_materializations_for_node("lake_ingest")
        raw = next(m for m in mat if m.asset_key.to_user_string() == "raw_files")
        assert raw.metadata["unchanged"].value is True
    after = _snapshot(defs)
    assert before.keys() == after.keys()
    for name, frame in before.items():
        assert frame.equals(after[name]), name


def test_materialising_the_same_partition_twice_gives_the_same_tables(defs, instance) -> None:
    key = "samples/cryptocurrency_sample.zip"
    land_and_ingest(defs, instance, {key: SAMPLE_FILES[key]})
    before = _snapshot(defs)
    # Forget the catalogued version (as the README tells operators to) so the partition is
    # really recomputed, not skipped as byte-identical.
    with duckdb.connect(defs.resources["metastore"].path) as con:
        con.execute("DELETE FROM files")
    land_and_ingest(defs, instance, {key: SAMPLE_FILES[key]})
    after = _snapshot(defs)
    for name, frame in before.items():
        assert frame.equals(after[name]), name


def test_changed_file_under_the_same_name_is_a_new_version(defs, instance, tmp_path) -> None:
    key = "vendor/crypto.zip"
    original = SAMPLE_FILES["samples/cryptocurrency_sample.zip"]
    land_and_ingest(defs, instance, {key: original})
    assert set(table(defs, VALIDATED, "crypto_prices")["Symbol"].unique()) == {"ADA", "BTC",
                                                                               "ETH"}
    changed = tmp_path / "crypto.zip"
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(changed, "w") as dst:
        for name in src.namelist():
            if "Cardano" not in name:
                dst.writestr(name, src.read(name))
    land_and_ingest(defs, instance, {key: changed})
    assert set(table(defs, VALIDATED, "crypto_prices")["Symbol"].unique()) == {"BTC", "ETH"}
    files = defs.resources["metastore"].files()
    versions = files.filter(pl.col("member").is_null(), pl.col("partition_key") == key)
    assert versions.height == 2
    assert versions["sha256"].n_unique() == 2
    kept = Path(defs.resources["lake"].path("raw", ".versions", key))
    assert len(list(kept.iterdir())) == 1  # the replaced delivery is kept, not destroyed


def test_catalogue_records_files_members_and_columns(defs, instance) -> None:
    land_and_ingest(defs, instance, SAMPLE_FILES)
    meta = defs.resources["metastore"]
    files = meta.files()
    assert {"uri", "dataset", "sha256", "rows_read", "rows_valid", "rows_quarantined",
            "status"} <= set(files.columns)
    archives = files.filter(pl.col("member").is_null())
    assert archives.height == len(SAMPLE_FILES)
    assert archives["uri"].str.starts_with("file://").all()
    members = files.filter(pl.col("member").is_not_null(), pl.col("status") != "skipped")
    assert (members["rows_read"] == members["rows_valid"] + members["rows_quarantined"]).all()
    assert set(members["dataset"].drop_nulls()) == {
        "stock_market_daily", "nasdaq_symbols", "coin_daily_prices", "tweets_twint_v1",
        "tweets_twint_v2", "cryptomood_trades", "cryptomood_sentiments"}
    columns = meta.columns()
    eth = columns.filter(pl.col("uri").str.contains("coin_Ethereum.csv::"))
    assert eth.sort("position")["name"].to_list()[:4] == ["SNo", "Name", "Symbol", "Date"]
    assert dict(zip(eth["name"], eth["type"], strict=True))["High"] == "DOUBLE"


def test_cli_demo_then_ingest_is_up_to_date(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "stock_prices" in out
    assert "quarantined" in out
    assert "event lake: compacting" in out
    assert "KPIs 2026-11-01" in out
    assert cli.main(["ingest"]) == 0
    samples = [p for p in (PROJECT_DIR / "samples").iterdir() if p.suffix in (".zip", ".gz")]
    assert len(samples) == 5
    assert f"'up_to_date': {len(samples)}" in capsys.readouterr().out
    assert (tmp_path / "lake" / "catalog.duckdb").exists()
    assert (tmp_path / "dagster" / "dagster.yaml").exists()


def test_land_command_lands_folders_under_a_prefix(tmp_path) -> None:
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "d"))
    folder = tmp_path / "drop"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "a.csv").write_bytes(b"x\n")
    uris = commands.land([folder], settings=settings, prefix="vendor")
    assert uris == [f"file://{tmp_path}/lake/raw/vendor/nested/a.csv"]


@pytest.mark.parametrize("bad", [b"", b"PK\x03\x04 not really a zip"])
def test_corrupt_landed_file_is_quarantined_not_a_crashed_run(defs, instance, tmp_path,
                                                             bad) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(bad)
    result = land_and_ingest(defs, instance, {"broken.zip": path})["broken.zip"]
    assert result.success
    q = table(defs, QUARANTINE, "unrecognised")
    assert q.height == 1
    assert q["line"][0] is None
    assert q["reason"][0].startswith(("empty file", "corrupt zip archive"))
    assert Path(defs.resources["lake"].path("raw", "broken.zip")).read_bytes() == bad


def test_cli_ingest_of_stocks_alone_serves_the_volume_model_and_waits_for_the_eth_inputs(
        tmp_path, capsys) -> None:
    # A stock-market user lands only stocks: the feature store (ETH prices and tweets) has
    # nothing to compute, so it is skipped with its reason instead of failing empty checks.
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dagster"))
    commands.land([PROJECT_DIR / "samples" / "stock_market_sample.zip"], settings=settings,
             prefix="stocks")
    counts = commands.ingest(settings=settings)
    out = capsys.readouterr().out
    assert counts["failed"] == 0, out
    assert counts["stock_pipeline_runs"] == 1
    assert counts["feature_store_runs"] == 0
    assert "feature store: skipped, the lake holds no crypto_prices and no tweets yet" in out


def _ingest_one_stock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, days: int,
                      capsys: pytest.CaptureFixture[str]) -> str:
    """Land ``days`` daily bars of one stock and ingest them; the ingest's output."""
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    header = "Date,Open,High,Low,Close,Adj Close,Volume\n"
    dates = [date(2020, 1, 2) + timedelta(days=d) for d in range(days)]
    rows = "".join(f"{d},10,11,9,10.5,{10 + i % 7},{1000 + i}\n" for i, d in enumerate(dates))
    path = tmp_path / "one.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("stocks/AAPL.csv", header + rows)
    assert cli.main(["land", str(path)]) == 0
    assert cli.main(["ingest"]) == 0
    out = capsys.readouterr().out
    assert "no volume model yet" in out
    assert "'failed': 0" in out and "'stock_pipeline_runs': 1" in out
    return out


def test_one_stock_symbol_is_not_a_failed_ingest(tmp_path, monkeypatch, capsys) -> None:
    """Sixty days of one stock give 30-day features, but the model needs a second symbol to
    choose its shrinkage on: no model, exit 0 (a reviewer: the run failed with a ValueError)."""
    assert "at least two symbols" in _ingest_one_stock(tmp_path, monkeypatch, 60, capsys)


def test_too_few_stock_rows_for_a_model_is_not_a_failed_ingest(tmp_path, monkeypatch,
                                                               capsys) -> None:
    """Ten days of one stock give features but no row with 30-day ones: no model, exit 0.

    Every ``ingest`` failed (exit 1) while no model existed.
    """
    _ingest_one_stock(tmp_path, monkeypatch, 10, capsys)
    assert cli.main(["ingest"]) == 0  # no model yet: the pipeline runs again, and says why
    out = capsys.readouterr().out
    assert "no volume model yet" in out
    assert "'failed': 0" in out and "'stock_pipeline_runs': 1" in out


def test_a_stock_file_with_every_row_quarantined_is_not_a_failed_ingest(
        tmp_path, monkeypatch, capsys) -> None:
    """Its only row quarantined, the table's fragment is empty: the stock pipeline ran on no
    rows and its checks (nothing checked is never a pass) failed the ingest (a reviewer)."""
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    path = tmp_path / "AAPL.csv"
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2020-02-30,1,2,0,1,1,10\n")
    assert cli.main(["land", str(path)]) == 0
    assert cli.main(["ingest"]) == 0
    out = capsys.readouterr().out
    assert "unparseable Date x1" in out
    assert "'failed': 0" in out and "'stock_pipeline_runs': 0" in out


def test_one_day_of_eth_is_not_a_failed_ingest(tmp_path, monkeypatch, capsys) -> None:
    """One ETH row and the sample's tweets: the feature store runs, the signal waits and says
    why, exit 0 (a reviewer: the ETH model's run failed the ingest)."""
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("CRYPTODUDEZ_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    member = "cryptocurrency_historical_prices/coin_Ethereum.csv"
    with zipfile.ZipFile(SAMPLES / "cryptocurrency_sample.zip") as z:
        lines = z.read(member).decode().splitlines()
    path = tmp_path / "one_eth_day.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, "\n".join(lines[:2]) + "\n")
    assert cli.main(["land", str(path), str(SAMPLES / "elon_musk_tweets_sample.zip")]) == 0
    assert cli.main(["ingest"]) == 0
    out = capsys.readouterr().out
    assert "no ETH signal yet: the training set holds 1 day of ETH" in out
    assert "'failed': 0" in out and "'feature_store_runs': 1" in out
