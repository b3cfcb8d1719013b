"""Prices and volumes are finite numbers and dates plausible, in the tables' schemas too.

The ingest's parser already refuses ``inf`` and ``NaN`` text (``test_ingest_rules.py``); the
schemas are what the asset checks run again on written tables, so a non-finite value that
reached a table by another path fails there with the rule's name.
"""

import math

import pandera.errors
import polars as pl
import pytest

from cryptodudez.checks.schemas import CryptoPrices, StockPrices, Tweets

STOCK = {"Symbol": "AAA", "Security Name": None, "Date": "2020-01-02", "Open": 10.0,
         "High": 11.0, "Low": 9.0, "Close": 10.5, "Adj Close": 10.4, "Volume": 1000}
CRYPTO = {"Name": "Aave", "Symbol": "AAVE", "Date": "2020-01-02", "High": 11.0, "Low": 9.0,
          "Open": 10.0, "Close": 10.5, "Volume": 5.0, "Marketcap": 1e9}


def _failures(schema: type, rows: list[dict[str, object]]) -> set[tuple[str, str, int]]:
    frame = pl.DataFrame(rows, schema_overrides={"Security Name": pl.String,
                                                 "Volume": pl.Int64}
                         if schema is StockPrices else {})
    return _failing_cells(schema, frame)


def _failing_cells(schema: type, frame: pl.DataFrame) -> set[tuple[str, str, int]]:
    """(column, check, row) of each cell ``schema`` rejects in ``frame``."""
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases.filter(pl.col("index").is_not_null())
        return {(c, k, i) for c, k, i in cases.select("column", "check", "index").iter_rows()}
    return set()


@pytest.mark.parametrize(("schema", "good", "column"), [
    (StockPrices, STOCK, "High"), (StockPrices, STOCK, "Adj Close"),
    (CryptoPrices, CRYPTO, "High"), (CryptoPrices, CRYPTO, "Marketcap"),
])
def test_an_infinite_value_fails_the_finite_rule(schema: type, good: dict[str, object],
                                                 column: str) -> None:
    assert _failures(schema, [good]) == set()
    assert _failures(schema, [good, {**good, column: math.inf}]) == {(column, "finite", 1)}
    assert (column, "finite", 1) in _failures(schema, [good, {**good, column: math.nan}])


@pytest.mark.parametrize(("schema", "good", "first", "rule"), [
    (StockPrices, STOCK, "1960-01-01", "date_not_before_1960-01-01"),
    (CryptoPrices, CRYPTO, "2009-01-03", "date_not_before_2009-01-03"),
])
def test_a_date_before_the_first_plausible_one_fails(schema: type, good: dict[str, object],
                                                     first: str, rule: str) -> None:
    """Written out here, not read from the schema module: a wrong bound must fail."""
    assert _failures(schema, [{**good, "Date": first}]) == set()
    for early in ("1600-01-01", "1959-12-31", "2009-01-02"):
        if early < first:
            assert _failures(schema, [good, {**good, "Date": early}]) == {
                (schema.__name__, rule, 1)}, early


TWEET = {"tweet_id": 1, "text": "x", "likes": 0, "retweets": 0, "replies": 0,
         "conversation_id": None, "language": None}


def _tweet_failures(created_at: str = "2021-01-01", **second: object
                    ) -> set[tuple[str, str, int]]:
    """The cells ``Tweets`` rejects in a good tweet and a second one with ``second``."""
    frame = pl.DataFrame([TWEET, {**TWEET, "tweet_id": 2, **second}],
                         schema_overrides={"conversation_id": pl.Int64,
                                           "language": pl.String}).with_columns(
        created_at=pl.lit(f"{created_at}T12:00:00Z").str.to_datetime(time_zone="UTC"))
    return _failing_cells(Tweets, frame)


@pytest.mark.parametrize("column", ["likes", "retweets", "replies"])
def test_an_engagement_count_no_tweet_can_have_fails(column: str) -> None:
    """Bounded at 10**12 (written out here): two counts of 2**62 on one day made the daily
    sum wrap negative in polars and abort the Spark twin."""
    assert _tweet_failures(**{column: 10**12}) == set()
    for value in (10**12 + 1, 2**62):
        assert _tweet_failures(**{column: value}) == {
            (column, "less_than_or_equal_to(1000000000000)", 1)}


def test_a_tweet_older_than_the_first_tweet_fails() -> None:
    """2006-03-21 written out here; epoch seconds read as milliseconds gave 1970-01-19."""
    assert _tweet_failures("2006-03-21") == set()
    rule = ("Tweets", "created_at_not_before_2006-03-21")
    assert {(c, k) for c, k, _ in _tweet_failures("2006-03-20")} == {rule}
    assert {(c, k) for c, k, _ in _tweet_failures("1970-01-19")} == {rule}
