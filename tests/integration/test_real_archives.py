"""The real, partly corrupted archives: exact quarantine contents and row accounting."""

import zipfile

import polars as pl
import pytest

from cryptodudez.resources.lake import QUARANTINE, VALIDATED
from tests.conftest import shared
from tests.helpers import csv_records, land_and_ingest, table

pytestmark = [pytest.mark.realdata]


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_crypto_archive_blanked_ethereum_rows_quarantined(defs, instance) -> None:
    path = shared("teraflow", "first-delivery", "cryptocurrency_historical_prices.zip")
    result = land_and_ingest(defs, instance, {"first/crypto.zip": path})["first/crypto.zip"]
    assert result.success
    q = table(defs, QUARANTINE, "crypto_prices")
    assert q.select("line", pl.col("source").str.extract(r"(coin_\w+)\.csv")).rows() == [
        (1129, "coin_Ethereum"), (2162, "coin_Ethereum")]
    assert q["raw"][0].startswith("1128,Ethereum,ETH,2018-09-08 23:59:59,,,")
    assert set(q["raw"][1]) == {","}
    eth = csv_records(path, "coin_Ethereum.csv")
    valid = table(defs, VALIDATED, "crypto_prices")
    assert valid.filter(pl.col("Symbol") == "ETH").height == len(eth) - 2
    assert _checks(result)["crypto_prices_rows_accounted"]
    files = defs.resources["metastore"].files()
    members = files.filter(pl.col("member").is_not_null(), pl.col("status") != "skipped")
    assert members.height == 23
    assert (members["rows_read"] == members["rows_valid"] + members["rows_quarantined"]).all()
    assert members["rows_valid"].sum() == valid.height


def test_tweets_first_delivery_then_redelivery_never_double_counts(defs, instance) -> None:
    first = shared("teraflow", "first-delivery", "elon_musk_tweets.zip")
    again = shared("teraflow", "redelivery", "elon_musk_tweets.zip")
    results = land_and_ingest(defs, instance, {"first-delivery/elon_musk_tweets.zip": first})
    assert all(r.success for r in results.values())
    q = table(defs, QUARANTINE, "tweets").sort("line")
    assert q["line"].to_list() == [448, 895, 1200, 1831, 2228, 2696, 2697, 3082, 3117]
    assert q.filter(pl.col("line") == 2697)["raw"].to_list() == ["banana"]
    assert q["source"].str.contains("2021.csv").all()
    records = csv_records(first, "2021.csv") + csv_records(first, "2020.csv")
    good_ids = {int(r[1] if len(r) == 39 else r[0]) for _, r in records
                if len(r) in (36, 39) and (r[1] if len(r) == 39 else r[0])}
    tweets = table(defs, VALIDATED, "tweets")
    assert set(tweets["tweet_id"].to_list()) == good_ids
    assert tweets["tweet_id"].is_unique().all()

    results = land_and_ingest(defs, instance, {"redelivery/elon_musk_tweets.zip": again})
    assert all(r.success for r in results.values())
    tweets = table(defs, VALIDATED, "tweets")
    again_ids = set()
    for suffix in [f"{y}.csv" for y in range(2010, 2023)]:
        for _, r in csv_records(again, suffix):
            again_ids.add(int(r[1] if len(r) == 39 else r[0]))
    assert tweets["tweet_id"].is_unique().all()
    assert set(tweets["tweet_id"].to_list()) == good_ids | again_ids
    # The latest delivery wins: tweets present in both now come from the redelivery.
    assert tweets.filter(pl.col("tweet_id").is_in(list(again_ids)))["_partition"].unique(
    ).to_list() == ["redelivery/elon_musk_tweets.zip"]


@pytest.mark.slow
def test_stock_archive_every_row_validated_or_quarantined(defs, instance) -> None:
    path = shared("stock-market-dataset", "archive.zip")
    result = land_and_ingest(defs, instance, {"stocks/archive.zip": path})["stocks/archive.zip"]
    assert result.success
    checks = _checks(result)
    assert checks["stock_prices_schema_conforms"]
    assert checks["stock_prices_rows_accounted"]
    assert checks["stock_prices_keys_unique"]
    assert not checks["stock_prices_security_name_known"]  # a warning: 2020 directory
    q = table(defs, QUARANTINE, "stock_prices")
    found = sorted(q.select(pl.col("source").str.extract(r"zip://(.*?)::"), "line").rows())
    assert found == [("stocks/BEP.csv", 2904), ("stocks/CIX.csv", 889),
                     ("stocks/CLWT.csv", 1135), ("stocks/CPG.csv", 2276),
                     ("stocks/CULL.csv", 771), ("stocks/CVX.csv", 1244),
                     ("stocks/DTE.csv", 1915)]
    valid = table(defs, VALIDATED, "stock_prices")
    with zipfile.ZipFile(path) as z:
        data_lines = sum(len(z.read(n).splitlines()) - 1 for n in z.namelist()
                         if n.startswith(("stocks/", "etfs/")) and n.endswith(".csv"))
    assert valid.height == data_lines - 7
    files = defs.resources["metastore"].files().filter(pl.col("table_name") == "stock_prices")
    assert files["rows_read"].sum() == valid.height + q.height
    assert valid.schema["Volume"] == pl.Int64
    assert valid.schema["Adj Close"] == pl.Float64
    assert valid["Date"].str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    assert valid.filter(pl.col("Security Name").is_null())["Symbol"].n_unique() > 0
    assert valid.filter(pl.col("Symbol") == "AAPL")["Security Name"][0].startswith("Apple")
