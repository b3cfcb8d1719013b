"""Dataset converters: typed columns from String fields, with parse errors named."""

from datetime import UTC, datetime

import polars as pl
import pytest

from cryptodudez.datasets import specs
from cryptodudez.datasets.registry import closest, recognise


def _fields(columns: dict[str, list[str | None]], source: str) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    return pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String)).with_columns(
        __sid=pl.lit(0, dtype=pl.Int64), __line=pl.int_range(2, n + 2, dtype=pl.Int64),
        __source=pl.lit(source),
    )


def test_recognition_is_by_columns_not_names() -> None:
    assert recognise(list(specs.STOCK_HEADER), specs.DATASETS).table == "stock_prices"
    assert recognise(list(specs.TWEETS_V1_HEADER), specs.DATASETS).name == "tweets_twint_v1"
    assert recognise(list(specs.TWEETS_V2_HEADER), specs.DATASETS).name == "tweets_twint_v2"
    assert recognise(["Date", "Open", "High"], specs.DATASETS) is None
    drifted = [*specs.STOCK_HEADER[:-1], "Vol"]
    near, score = closest(drifted, specs.DATASETS)
    assert near.table == "stock_prices"
    assert score > 0.5


def test_stock_prices_symbol_and_class_come_from_member_path() -> None:
    fields = _fields(
        {"Date": ["2020-01-02", "2020-13-40"], "Open": ["1.5", "x"], "High": ["2", "2"],
         "Low": ["1", "1"], "Close": ["1.5", "1.5"], "Adj Close": ["1.4", "1.4"],
         "Volume": ["100", "100.0"]},
        "zip://etfs/SPY.csv::file:///lake/raw/archive.zip",
    )
    out = specs.convert_stock_prices(fields)
    assert out["Symbol"].to_list() == ["SPY", "SPY"]
    assert out["asset_class"].to_list() == ["etf", "etf"]
    assert out["Volume"].dtype == pl.Int64
    assert out["Volume"].to_list() == [100, 100]
    assert out["_parse_error"][0] is None
    assert "unparseable Date: '2020-13-40'" in out["_parse_error"][1]
    assert "unparseable Open: 'x'" in out["_parse_error"][1]


def test_fractional_volume_is_a_parse_error() -> None:
    fields = _fields(
        {"Date": ["2020-01-02"], "Open": ["1"], "High": ["1"], "Low": ["1"], "Close": ["1"],
         "Adj Close": ["1"], "Volume": ["10.5"]},
        "file:///lake/raw/stocks/A.csv",
    )
    assert "unparseable Volume" in specs.convert_stock_prices(fields)["_parse_error"][0]


def test_tweets_v2_local_time_converted_to_utc() -> None:
    cols = {key: [None] for key in specs.TWEETS_V2_HEADER}
    cols |= {"id": ["10"], "conversation_id": ["9"],
             "created_at": ["2021-12-31 01:11:23 Arabian Standard Time"],
             "timezone": ["+0400"], "tweet": ["@a @b hi https://x.y"], "likes_count": ["3"],
             "retweets_count": ["2"], "replies_count": ["1"], "hashtags": ["['x', 'y']"],
             "urls": ["['https://x.y']"],
             "reply_to": ["[{'screen_name': 'a', 'name': 'A', 'id': '42'}]"]}
    out = specs.convert_tweets_v2(_fields(cols, "file:///t.csv"))
    row = out.row(0, named=True)
    assert row["created_at"] == datetime(2021, 12, 30, 21, 11, 23, tzinfo=UTC)
    assert row["mentions"] == ["@a", "@b"]
    assert row["hashtags"] == ["x", "y"]
    assert row["urls"] == ["https://x.y"]
    assert row["reply_to_user_ids"] == [42]
    assert (row["likes"], row["retweets"], row["replies"]) == (3, 2, 1)
    assert row["_parse_error"] is None


def test_tweets_v1_epoch_millis() -> None:
    cols = {key: [None] for key in specs.TWEETS_V1_HEADER}
    cols |= {"id": ["10"], "created_at": ["1609184778000.0"], "tweet": ["x"],
             "nlikes": ["1"], "nretweets": ["oops"], "nreplies": ["0"]}
    out = specs.convert_tweets_v1(_fields(cols, "file:///t.csv"))
    assert out["created_at"][0] == datetime(2020, 12, 28, 19, 46, 18, tzinfo=UTC)
    assert "unparseable nretweets: 'oops'" in out["_parse_error"][0]


def test_tweets_v1_epoch_millis_out_of_range_is_a_parse_error() -> None:
    """Beyond what a datetime holds, polars' cast panics; such a value is a parse error."""
    values = ["9223372036854775807", "-9223372036854775808", "9007199254740993",
              "253402300800000", "253402300799999"]
    cols = {key: [None] * len(values) for key in specs.TWEETS_V1_HEADER}
    cols |= {"id": ["10"] * len(values), "created_at": values, "tweet": ["x"] * len(values),
             "nlikes": ["1"] * len(values), "nretweets": ["0"] * len(values),
             "nreplies": ["0"] * len(values)}
    out = specs.convert_tweets_v1(_fields(cols, "file:///t.csv"))
    for value, error in zip(values[:4], out["_parse_error"][:4], strict=True):
        assert f"unparseable created_at: '{value}'" in error
    assert out["created_at"][4] == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert out["_parse_error"][4] is None


def test_attach_security_names_keeps_unknown_symbols_null() -> None:
    stocks = pl.DataFrame({"Symbol": ["A", "Z"], "Security Name": [None, None]},
                          schema={"Symbol": pl.String, "Security Name": pl.String})
    symbols = pl.DataFrame({"Symbol": ["A"], "Security Name": ["Agilent"]})
    out = specs.attach_security_names(stocks, symbols)
    assert out["Security Name"].to_list() == ["Agilent", None]


NAMED = pl.DataFrame({"Symbol": ["A", "B", "C", "Z"],
                      "Security Name": [None, "Old B", "Cee", "Gone"], "Volume": [1, 2, 3, 4]},
                     schema_overrides={"Security Name": pl.String})


@pytest.mark.parametrize(("symbols", "names", "stale"), [
    # prices published before the directory; one renamed, one forgotten since
    (pl.DataFrame({"Symbol": ["A", "B", "C"], "Security Name": ["Aye", "New B", "Cee"]}),
     ["Aye", "New B", "Cee", None], ["A", "B", "Z"]),
    # no directory published: no symbol has a name
    (pl.DataFrame(), [None, None, None, None], ["B", "C", "Z"]),
])
def test_names_are_the_directorys_whatever_the_rows_had(
        symbols: pl.DataFrame, names: list[str | None], stale: list[str]) -> None:
    out = specs.attach_security_names(NAMED, symbols)
    assert out.columns == NAMED.columns
    assert out["Security Name"].to_list() == names
    assert out.drop("Security Name").equals(NAMED.drop("Security Name"))
    found = specs.stale_security_names(NAMED.lazy(), symbols).collect()
    assert sorted(found["Symbol"].to_list()) == stale
    assert specs.stale_security_names(out.lazy(), symbols).collect().height == 0


def test_64_bit_ids_survive_exactly() -> None:
    cols = {key: [None] for key in specs.TWEETS_V1_HEADER}
    cols |= {"id": ["1343608616960491521"], "created_at": ["1609184778000.0"],
             "tweet": ["x"], "nlikes": ["1"], "nretweets": ["0"], "nreplies": ["0"]}
    out = specs.convert_tweets_v1(_fields(cols, "file:///t.csv"))
    assert out["tweet_id"][0] == 1343608616960491521
