"""The feature store's transforms on small generated inputs, and its checks failing."""

import itertools
import math
import statistics
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from cryptodudez.checks import features as fchecks
from cryptodudez.features import build, guard, labels, markets, store, tweets
from cryptodudez.features import evaluation as ev
from cryptodudez.features.labels import LabelConfig
from serving.signal_store import ServedSignals, SignalRow

LANDED = datetime(2026, 1, 1, tzinfo=UTC)


def crypto_rows(days: int = 500, seed: int = 0, start: date = date(2020, 1, 1)) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for symbol, vol in (("ETH", 0.04), ("BTC", 0.03), ("ADA", 0.05)):
        close = 100 * np.exp(np.cumsum(rng.normal(0, vol, days)))
        frames.append(pl.DataFrame({
            "Symbol": symbol,
            "Date": [(start + timedelta(days=i)).isoformat() for i in range(days)],
            "Close": close, "Volume": rng.uniform(1e6, 2e6, days),
            "_landed_at": LANDED,
        }))
    return pl.concat(frames)


def stock_rows(days: int = 500, seed: int = 1, start: date = date(2020, 1, 1)) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    dates = [start + timedelta(days=i) for i in range(days)]
    dates = [d for d in dates if d.weekday() < 5]  # no weekend bars
    n = len(dates)
    return pl.concat([pl.DataFrame({
        "Symbol": symbol, "Date": [d.isoformat() for d in dates],
        "Adj Close": 300 * np.exp(np.cumsum(rng.normal(0, 0.01, n))),
        "Volume": rng.integers(1_000_000, 2_000_000, n), "asset_class": asset_class,
        "_landed_at": LANDED,
    }) for symbol, asset_class in (("SPYX", "etf"), ("ACME", "stock"))])


def tweet_rows(seed: int = 2, n: int = 400, start: date = date(2020, 1, 1)) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    t0 = datetime.combine(start, datetime.min.time(), UTC)
    words = ["doge to the moon", "Tesla ships", "ethics matter", "Dodge ram", "I love ETH!",
             "bitcoin is fine", "hello @someone https://t.co/x", "rockets 🚀"]
    return pl.DataFrame({
        "tweet_id": np.arange(n, dtype=np.int64),
        "created_at": [t0 + timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 300, n)],
        "text": [words[i % len(words)] for i in range(n)],
        "likes": rng.integers(0, 1000, n), "retweets": rng.integers(0, 100, n),
        "replies": rng.integers(0, 50, n), "_landed_at": LANDED,
        "_source": "gen", "_line": np.arange(n, dtype=np.int64),
    })


SYMBOLS = ("ETH", "BTC", "ADA", "SPYX", "ACME")
"""Every symbol of the generated inputs: the sample the market check compares."""


def inputs(**kw) -> build.Inputs:
    return build.Inputs(crypto=crypto_rows(**kw).lazy(), stocks=stock_rows().lazy(),
                        tweets=tweet_rows().lazy())


# -- tweets --------------------------------------------------------------------------------

def test_days_without_tweets_are_zero_rows_up_to_the_watermark() -> None:
    t0 = datetime(2021, 3, 1, 12, tzinfo=UTC)
    rows = pl.DataFrame({"tweet_id": [1, 2], "created_at": [t0, t0 + timedelta(days=3)],
                         "text": ["a", "b"], "likes": [1, 2], "retweets": [0, 0],
                         "replies": [0, 0], "_landed_at": [LANDED, LANDED]})
    out = tweets.daily_tweet_features(rows.lazy(), start=date(2021, 3, 1),
                                      end=date(2021, 3, 10), watermark=date(2021, 3, 4))
    assert out["day"].to_list() == [date(2021, 3, d) for d in range(1, 5)]  # none after it
    assert out["tweets"].to_list() == [1, 0, 0, 1]
    assert out["likes"].to_list() == [1, 0, 0, 2]


def test_terms_match_on_word_boundaries_and_count_tweets() -> None:
    t0 = datetime(2021, 3, 1, 12, tzinfo=UTC)
    texts = ["Doge doge DOGE", "dodge", "dogecoin!", "ethics", "ETH up", "teslas"]
    rows = pl.DataFrame({"tweet_id": range(len(texts)), "created_at": [t0] * len(texts),
                         "text": texts, "likes": 0, "retweets": 0, "replies": 0,
                         "_landed_at": LANDED})
    out = tweets.daily_tweet_features(rows.lazy(), start=date(2021, 3, 1),
                                      end=date(2021, 3, 2), watermark=date(2021, 3, 1))
    assert out["term_doge"].item() == 2  # "dodge" is not doge; one tweet counts once
    assert out["term_ethereum"].item() == 1  # "ethics" is not ETH
    assert out["term_tesla"].item() == 0  # "teslas" is another word


def test_duplicates_count_once_and_the_last_delivery_wins() -> None:
    t0 = datetime(2021, 3, 1, 23, 30, tzinfo=UTC)
    rows = pl.DataFrame({
        "tweet_id": [7, 7, 8], "created_at": [t0, t0, t0], "text": ["x", "x", "y"],
        "likes": [10, 99, 1], "retweets": 0, "replies": 0,
        "_landed_at": [LANDED, LANDED + timedelta(days=1), LANDED]})
    out = tweets.daily_tweet_features(rows.lazy(), start=date(2021, 3, 1),
                                      end=date(2021, 3, 2), watermark=date(2021, 3, 1))
    assert out["tweets"].item() == 2
    assert out["likes"].item() == 100
    # engagement is known only from the delivery that brought it
    assert out["engagement_available_at"].item() == LANDED + timedelta(days=1)
    assert out["available_at"].item() == datetime(2021, 3, 2, tzinfo=UTC)


def test_engagement_snapshot_is_never_used_before_its_delivery() -> None:
    built = build.build_all(inputs(), with_text=False)
    # the history ends in 2021; the snapshot landed in 2026: unknown at every decision
    feats = built.features
    assert feats.filter(pl.col("tw_tweets") > 0).height > 100
    # the only engagement known in time is that of days without tweets (zero, known when
    # the day ends): a scraped like count never reaches a decision before its delivery
    known = feats.filter(pl.col("tw_likes").is_not_null())
    assert known.height > 0 and known["tw_likes"].max() == 0
    assert built.tweet_daily["likes"].max() > 0


# -- markets -------------------------------------------------------------------------------

def test_us_close_is_16_new_york_in_utc_across_dst() -> None:
    frame = pl.DataFrame({"Symbol": ["X", "X"], "Date": ["2021-01-04", "2021-07-06"],
                          "Adj Close": [1.0, 1.1], "Volume": [1, 1], "asset_class": ["stock"] * 2})
    bars = markets.bars(pl.LazyFrame(schema={"Symbol": pl.String, "Date": pl.String,
                                             "Close": pl.Float64, "Volume": pl.Float64}),
                        frame.lazy()).collect().sort("date")
    assert [t.hour for t in bars["event_time"]] == [21, 20]


def test_spine_never_shrinks_and_keeps_a_day_without_a_close() -> None:
    rows = crypto_rows(days=30).filter(~((pl.col("Symbol") == "ETH")
                                         & (pl.col("Date") == "2020-01-10")))
    spine = markets.eth_spine(rows.lazy())
    assert spine.height == 30
    assert spine.filter(pl.col("date") == date(2020, 1, 10))["close"].item() is None
    assert spine["at"][0] == datetime(2020, 1, 1, 23, 59, 59, tzinfo=UTC)


def test_weekend_days_see_fridays_bar_with_its_age_and_no_inner_join() -> None:
    built = build.build_all(inputs(), with_text=False)
    asof = store.market_asof(built.spine, built.market_daily)
    spy = asof.filter(pl.col("symbol") == "SPYX")
    sunday = spy.filter(pl.col("date") == date(2020, 6, 7)).row(0, named=True)
    assert sunday["event_time"] == datetime(2020, 6, 5, 20, tzinfo=UTC)  # Friday's close
    assert math.isclose(sunday["age_hours"], 2 * 24 + 3 + 59 / 60 + 59 / 3600)
    # every spine day keeps every listed symbol: days x symbols, nothing dropped
    assert asof.filter(pl.col("symbol") == "BTC").height == built.spine.height
    assert built.features.height == built.spine.height


def test_correlation_of_eth_with_itself_is_one_and_a_flat_price_has_none() -> None:
    rows = crypto_rows(days=120)
    flat = rows.filter(pl.col("Symbol") == "BTC").with_columns(Symbol=pl.lit("FLAT"),
                                                               Close=pl.lit(5.0))
    feats = markets.symbol_features(markets.bars(pl.concat([rows, flat]).lazy(),
                                                 stock_rows(days=0).lazy())).collect()
    eth = feats.filter(pl.col("symbol") == "ETH")["corr_eth_60d"].drop_nulls()
    assert eth.len() > 50 and ((eth - 1).abs() < 1e-9).all()
    assert feats.filter(pl.col("symbol") == "FLAT")["corr_eth_60d"].null_count() == 120


# -- a stock whose ticker is also a coin's -------------------------------------------------

def ethan_allen(symbol: str, days: int = 500) -> pl.DataFrame:
    """A stock near 19 USD on weekdays (Ethan Allen Interiors trades as ETH on the NYSE)."""
    rng = np.random.default_rng(4)
    dates = [d for d in (date(2020, 1, 1) + timedelta(days=i) for i in range(days))
             if d.weekday() < 5]
    n = len(dates)
    return pl.DataFrame({
        "Symbol": symbol, "Date": [d.isoformat() for d in dates],
        "Adj Close": 19 * np.exp(np.cumsum(rng.normal(0, 0.02, n))),
        "Volume": rng.integers(100_000, 500_000, n), "asset_class": "stock",
        "_landed_at": LANDED,
    })


GAP = date(2020, 6, 3)
"""A Wednesday without an ETH coin close (quarantined): the stock ETH has a bar that day."""


def coins_with_a_gap() -> pl.DataFrame:
    return crypto_rows().filter((pl.col("Symbol") != "ETH")
                                | (pl.col("Date") != GAP.isoformat()))


def with_stock(symbol: str) -> build.Inputs:
    return replace(inputs(), crypto=coins_with_a_gap().lazy(),
                   stocks=pl.concat([stock_rows(), ethan_allen(symbol)]).lazy())


def _as_eth(frame: pl.DataFrame, *keys: str) -> pl.DataFrame:
    """``frame`` with the stock EAIX called ETH, in key order."""
    return frame.with_columns(symbol=pl.when(pl.col("symbol") == "EAIX").then(pl.lit("ETH"))
                              .otherwise(pl.col("symbol"))).sort(*keys)


def test_a_stock_with_a_coins_ticker_is_its_own_series() -> None:
    clash = build.build_all(with_stock("ETH"), with_text=False)
    apart = build.build_all(with_stock("EAIX"), with_text=False)  # the same stock, renamed
    # the coin's series holds the coin's closes only, on every day (weekdays too)
    coin = clash.market_daily.filter(markets.is_eth()).sort("date")
    assert coin["close"].to_list() == coins_with_a_gap().filter(pl.col("Symbol") == "ETH")[
        "Close"].to_list()
    stock = clash.market_daily.filter((pl.col("symbol") == "ETH")
                                      & (pl.col("asset_class") == "stock"))
    assert stock.height == 358 and stock["close"].max() < 40
    # every table is the one built when the stock has a ticker of its own: ETH's features,
    # every symbol's correlation and beta to ETH, the indices (the stock is a member of
    # STOCK_EW; only the coin is left out of CRYPTO_EW), the spine and the model's mkt_ETH_*
    keys = ("symbol", "asset_class", "date")
    assert clash.market_daily.sort(*keys).equals(_as_eth(apart.market_daily, *keys))
    assert clash.spine.equals(apart.spine)
    assert clash.features.equals(apart.features)
    # on the coin's missing day the model's ETH is the coin's previous bar, not the stock's
    gap = clash.features.filter(pl.col("date") == GAP).row(0, named=True)
    assert gap["mkt_ETH_event_time"] == datetime(2020, 6, 2, 23, 59, 59, tzinfo=UTC)
    asof = store.market_asof(clash.spine, clash.market_daily)
    asof_keys = ("date", "symbol", "asset_class")
    assert asof.equals(_as_eth(store.market_asof(apart.spine, apart.market_daily), *asof_keys))
    assert asof.filter(pl.col("symbol") == "ETH")["asset_class"].unique().sort().to_list() == [
        "crypto", "stock"]
    # the key checks take the asset class: two series of one ticker pass, a doubled bar not
    assert fchecks.schema_check("m", clash.market_daily, fchecks.MarketDaily).passed
    assert fchecks.schema_check("a", asof, fchecks.EthMarketAsof).passed
    assert not fchecks.schema_check("m", pl.concat([clash.market_daily, stock.head(1)]),
                                    fchecks.MarketDaily).passed
    assert not fchecks.schema_check("a", pl.concat([asof, asof.filter(
        pl.col("asset_class") == "stock").head(1)]), fchecks.EthMarketAsof).passed


def test_market_check_keeps_a_coin_and_a_stock_of_one_ticker_apart() -> None:
    src = with_stock("ETH")
    frame = build.market_daily(src)
    reference = fchecks.duckdb_returns(src.crypto.collect(), src.stocks.collect())
    assert reference.filter(pl.col("symbol") == "ETH").height == 499 + 358
    result = fchecks.market_daily_checks(frame, reference, symbols=SYMBOLS)
    assert all(r.passed for r in result)
    assert result[1].metadata["rows_compared"].value == reference.height
    # planted: the two ETH series merged on (symbol, date), the stock's bar winning on weekdays
    merged = markets.symbol_features(markets.bars(src.crypto, src.stocks).sort(
        "symbol", "date", "asset_class").unique(["symbol", "date"], keep="last",
                                                 maintain_order=True)).collect()
    bad = fchecks.market_daily_checks(merged, reference, symbols=SYMBOLS)[1]
    # the coin's weekdays but the one it has no close
    assert not bad.passed and bad.metadata["missing_rows"].value == 357
    assert bad.metadata["failing_count"].value > 0  # returns across the 19 / 100 USD jumps


# -- labels --------------------------------------------------------------------------------

def brute_labels(close: list[float | None], config: LabelConfig,
                 bands: list[float | None] | None = None) -> list[str | None]:
    """The labels day by day; ``bands`` (one per day, None where unknown) or the fixed band."""
    out: list[str | None] = []
    for t in range(len(close)):
        path = close[t:t + config.horizon + 1]
        needed = path[:1] if config.method == "triple_barrier" else path[:1] + path[-1:]
        short = len(path) < config.horizon + 1
        b = config.band if bands is None else bands[t]
        if ((short and config.method == "horizon") or any(c is None for c in needed)
                or b is None):
            out.append(None)
            continue
        if config.method == "horizon":
            r = math.log(path[-1] / path[0])
            out.append("buy" if r > b else "sell" if r < -b else "hodl")
        else:
            label: str | None = "hodl"
            for c in path[1:]:
                if c is None:  # the path is unknown from here on: no barrier decided yet
                    label = None
                    break
                r = math.log(c / path[0])
                if r > b:
                    label = "buy"
                    break
                if r < -b:
                    label = "sell"
                    break
            else:  # no barrier touched: hodl only if the whole horizon is known
                label = None if short else label
            out.append(label)
    return out


@pytest.mark.parametrize("config", [LabelConfig(), LabelConfig(horizon=7, band=0.03),
                                    LabelConfig(horizon=5, band=0.04, method="triple_barrier")])
def test_labels_match_a_brute_force_reference(config: LabelConfig) -> None:
    spine = markets.eth_spine(crypto_rows(days=200).filter(
        ~((pl.col("Symbol") == "ETH") & (pl.col("Date") == "2020-03-01"))).lazy())
    got = labels.label(spine, config)["label"].to_list()
    assert got == brute_labels(spine["close"].to_list(), config)


def brute_volatility_bands(close: list[float], config: LabelConfig) -> list[float | None]:
    """``band * vol_20d * sqrt(horizon)``: the sample deviation of the 20 log returns to day t."""
    returns = [math.log(b / a) for a, b in itertools.pairwise(close)]
    window = 20
    return [None if t < window else
            config.band * statistics.stdev(returns[t - window:t]) * math.sqrt(config.horizon)
            for t in range(len(close))]


def synthetic_spine(days: int = 200, seed: int = 3) -> pl.DataFrame:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.04, days)))
    return pl.DataFrame({"date": [date(2021, 1, 1) + timedelta(days=i) for i in range(days)],
                         "close": close})


def test_triple_barrier_on_a_volatility_band_has_no_label_before_the_band() -> None:
    spine = synthetic_spine()
    config = LabelConfig(horizon=5, band=1.0, band_kind="volatility", method="triple_barrier")
    got = labels.label(spine, config)
    close = spine["close"].to_list()
    bands = brute_volatility_bands(close, config)
    assert bands[:20] == [None] * 20 and None not in bands[20:]
    expected = brute_labels(close, config, bands)
    assert expected[:20] == [None] * 20
    assert None not in expected[20:200 - 5]  # every day with a band and a known horizon
    assert got["label"].to_list() == expected
    assert got["band"].to_list()[20:] == pytest.approx(bands[20:], rel=1e-9)
    # the days with a band: the same labels as the barrier on the tail where every band is known
    tail = labels._triple_barrier(got.slice(20), config.horizon)
    assert got["label"].slice(20).equals(tail)
    # and unlabelled on the same days as the horizon method before its horizon runs out
    horizon = labels.label(spine, replace(config, method="horizon"))
    assert (got["label"].head(195).is_null()).equals(horizon["label"].head(195).is_null())


def test_triple_barrier_on_a_fixed_band_has_no_label_on_leading_missing_closes() -> None:
    spine = synthetic_spine().with_columns(
        close=pl.when(pl.int_range(pl.len()) < 3).then(None).otherwise(pl.col("close")))
    config = LabelConfig(horizon=5, band=0.04, method="triple_barrier")
    got = labels.label(spine, config)["label"]
    close = spine["close"].to_list()
    assert close[:3] == [None] * 3 and None not in close[3:]
    expected = brute_labels(close, config)
    assert expected[:3] == [None] * 3 and None not in expected[3:200 - 5]
    assert got.to_list() == expected
    # the days with a close: the same labels as on the tail that starts at the first close
    assert got.slice(3).equals(labels.label(spine.slice(3), config)["label"])


def test_triple_barrier_on_fewer_days_than_its_horizon_labels_none() -> None:
    # A slice of n - step with step > n cut from the end ("could not broadcast", QA).
    # A barrier touched within the days there are decides; the rest stay unlabelled.
    spine = synthetic_spine().head(4)
    config = LabelConfig(horizon=7, band=0.04, method="triple_barrier")
    got = labels.label(spine, config)["label"].to_list()
    assert got == brute_labels(spine["close"].to_list(), config)
    assert got[-1] is None


def test_volatility_band_uses_data_up_to_the_decision_only() -> None:
    spine = markets.eth_spine(crypto_rows(days=200).lazy())
    config = LabelConfig(band=1.0, band_kind="volatility")
    full = labels.label(spine, config)
    cut = labels.label(spine.head(120), config)
    assert full["band"].head(120).equals(cut["band"])


# -- the leakage guard ---------------------------------------------------------------------

def features_of(i: build.Inputs) -> pl.DataFrame:
    return build.build_all(i, with_text=False).features


def test_the_guard_finds_nothing_in_the_store_and_catches_tomorrows_price() -> None:
    src = inputs()
    full = features_of(src)
    cutoffs = [date(2020, 8, 1), date(2021, 1, 20)]
    assert guard.leaking_columns(features_of, src, full, cutoffs) == {}

    def leaky(i: build.Inputs) -> pl.DataFrame:
        f = features_of(i)
        return f.with_columns(tomorrow_return=pl.col("close").log().diff().shift(-1))

    leaks = guard.leaking_columns(leaky, src, leaky(src), cutoffs)
    assert set(leaks) == {"tomorrow_return"}


# -- offline and online store --------------------------------------------------------------

def test_snapshots_rebuild_byte_for_byte_and_a_different_rebuild_is_refused() -> None:
    files: dict[str, bytes] = {}
    io = {"exists": files.__contains__, "read": files.__getitem__,
          "write": files.__setitem__, "folder": lambda *p: "/".join(p)}
    config = LabelConfig()
    first = store.training_set(features_of(inputs()), config)
    key = store.SnapshotKey("code", "2026-01-01T00:00:00", config)
    made = store.write_snapshot(key, first, **io)
    again = store.write_snapshot(key, store.training_set(features_of(inputs()), config), **io)
    assert made["reused"] is False and again["reused"] is True
    assert again["sha256"] == made["sha256"]
    changed = first.with_columns(pl.col("mkt_BTC_vol_20d") * (1 + 1e-12))
    with pytest.raises(store.SnapshotMismatchError, match="not reproducible"):
        store.write_snapshot(key, changed, **io)


def test_the_snapshot_key_changes_with_code_data_and_labels() -> None:
    a = store.SnapshotKey("c1", "2026-01-01T00:00:00", LabelConfig())
    assert len({a.id, store.SnapshotKey("c2", a.watermark, a.labels).id,
                store.SnapshotKey("c1", "2026-01-02T00:00:00", a.labels).id,
                store.SnapshotKey("c1", a.watermark, LabelConfig(horizon=2)).id}) == 4


def test_online_row_is_fresh_only_when_every_required_view_is() -> None:
    feats = features_of(inputs())
    row = store.online_row(feats, datetime(2026, 1, 1, tzinfo=UTC))
    assert row["date"] == feats["date"].max().isoformat()
    assert row["fresh"] is False  # the tweets end before the prices: activity is stale
    assert row["views"]["tweet_activity"]["fresh"] is False
    assert row["views"]["market_ETH"]["fresh"] is True
    recent = feats.filter(pl.col("date") <= date(2020, 10, 1))
    assert store.online_row(recent, datetime(2026, 1, 1, tzinfo=UTC))["fresh"] is True


# -- the checks fail on planted faults -----------------------------------------------------

def test_tweet_daily_checks_fail_on_a_wrong_count_and_a_missing_day() -> None:
    src = inputs()
    start, end = date(2020, 1, 1), date(2020, 3, 1)
    frame = build.tweet_daily(src, start=start, end=end, watermark=date(2020, 10, 1),
                              with_text=False)
    ok = fchecks.tweet_daily_checks(frame, src.tweets, start=start, end=end)
    assert all(r.passed for r in ok)
    bumped = frame.with_columns(tweets=pl.when(pl.col("day") == date(2020, 1, 5))
                                .then(pl.col("tweets") + 1).otherwise(pl.col("tweets")))
    failed = {r.check_name for r in fchecks.tweet_daily_checks(
        bumped, src.tweets, start=start, end=end) if not r.passed}
    assert failed == {"tweet_daily_matches_sql_recount"}
    gap = frame.filter(pl.col("day") != date(2020, 1, 9))
    failed = {r.check_name for r in fchecks.tweet_daily_checks(
        gap, src.tweets, start=start, end=end) if not r.passed}
    assert "tweet_daily_every_day_present" in failed


def test_the_last_tweet_day_is_the_utc_day_of_the_latest_tweet() -> None:
    plus_two = timezone(timedelta(hours=2))
    rows = pl.DataFrame({
        "tweet_id": [1, 2],
        "created_at": [datetime(2021, 3, 1, 12, tzinfo=UTC),
                       datetime(2021, 3, 4, 0, 30, tzinfo=plus_two)],  # 3 March in UTC
    }).with_columns(pl.col("created_at").dt.convert_time_zone("UTC"))
    assert fchecks.duckdb_last_tweet_day(rows.lazy()) == date(2021, 3, 3)
    assert fchecks.duckdb_last_tweet_day(rows.head(0).lazy()) is None


def test_tweet_daily_ends_on_the_latest_tweets_day_not_after_it() -> None:
    src = inputs()
    latest = max(tweet_rows()["created_at"]).date()  # all in UTC
    start, end = date(2020, 7, 1), date(2021, 1, 1)  # the window runs past the latest tweet
    # built as the asset builds it: up to the store's own watermark
    frame = build.tweet_daily(src, start=start, end=end, watermark=build.tweet_watermark(src),
                              with_text=False)
    checks = {r.check_name: r for r in fchecks.tweet_daily_checks(frame, src.tweets,
                                                                  start=start, end=end)}
    assert all(r.passed for r in checks.values())
    assert checks["tweet_daily_every_day_present"].metadata["calendar_days"].value == (
        (latest - start).days + 1)
    assert frame["day"].max() == latest
    # a zero day invented after the latest tweet (unknown, not zero) fails
    invented = pl.concat([frame, frame.tail(1).with_columns(
        day=pl.col("day") + timedelta(days=1), tweets=pl.lit(0, pl.Int64))])
    present = fchecks.tweet_daily_checks(invented, src.tweets, start=start, end=end)[1]
    assert not present.passed and present.metadata["extra_days"].value == 1


def test_market_checks_fail_on_a_shifted_return_and_an_infinite_correlation() -> None:
    src = inputs()
    frame = build.market_daily(src)
    reference = fchecks.duckdb_returns(src.crypto.collect(), src.stocks.collect())
    assert all(r.passed for r in fchecks.market_daily_checks(frame, reference,
                                                             symbols=SYMBOLS))
    shifted = frame.with_columns(log_return=pl.col("log_return").shift(1).over("symbol"))
    bad = {r.check_name: r.passed
           for r in fchecks.market_daily_checks(shifted, reference, symbols=SYMBOLS)}
    assert bad["market_daily_matches_sql_recomputation"] is False
    inf = frame.with_columns(corr_eth_60d=pl.lit(float("-inf")))
    bad = {r.check_name: r.passed
           for r in fchecks.market_daily_checks(inf, reference, symbols=SYMBOLS)}
    assert bad["market_daily_schema"] is False


def _market_daily_of(builder: str, src: build.Inputs) -> pl.DataFrame:
    if builder == "by_year":
        return build.market_daily_by_year(src, start=date(2020, 1, 1), end=date(2022, 1, 1))
    return build.market_daily(src)


@pytest.mark.parametrize("builder", ["whole", "by_year"])
def test_market_check_passes_on_every_bar_of_the_builder(builder: str) -> None:
    src = inputs()
    reference = fchecks.duckdb_returns(src.crypto.collect(), src.stocks.collect())
    result = fchecks.market_daily_checks(_market_daily_of(builder, src), reference,
                                          symbols=SYMBOLS)[1]
    assert result.passed
    # every bar of the reference is compared: 3 coins x 500 days, 2 stocks x 358 weekdays
    assert result.metadata["rows_compared"].value == reference.height == 3 * 500 + 2 * 358
    assert result.metadata["missing_rows"].value == result.metadata["extra_rows"].value == 0


def test_market_check_fails_on_a_dropped_or_invented_bar() -> None:
    src = inputs()
    frame = build.market_daily(src)
    reference = fchecks.duckdb_returns(src.crypto.collect(), src.stocks.collect())

    def recomputation(written: pl.DataFrame) -> dict[str, object]:
        result = fchecks.market_daily_checks(written, reference, symbols=SYMBOLS)[1]
        return {"passed": result.passed, "missing": result.metadata["missing_rows"].value,
                "extra": result.metadata["extra_rows"].value}

    # each symbol's latest bar dropped (ACME and SPYX end on Friday 2021-05-14)
    latest = frame.filter(pl.col("date") != pl.col("date").max().over("symbol"))
    assert recomputation(latest) == {"passed": False, "missing": 5, "extra": 0}
    # ETH cut after 2020-06-01: 2020-06-02 .. 2021-05-14, 347 bars
    cut = frame.filter((pl.col("symbol") != "ETH") | (pl.col("date") <= date(2020, 6, 1)))
    assert recomputation(cut) == {"passed": False, "missing": 347, "extra": 0}
    # a bar the validated table never had
    invented = pl.concat([frame, frame.filter(pl.col("symbol") == "BTC").tail(1).with_columns(
        date=pl.col("date") + timedelta(days=1))])
    assert recomputation(invented) == {"passed": False, "missing": 0, "extra": 1}
    # a sample symbol the reference has no bar of (none validated): every row of it invented
    without_acme = reference.filter(pl.col("symbol") != "ACME")
    result = fchecks.market_daily_checks(frame, without_acme, symbols=SYMBOLS)[1]
    assert not result.passed and result.metadata["extra_rows"].value == 358


def test_spine_and_label_checks_fail_on_planted_faults() -> None:
    src = inputs()
    feats = features_of(src)
    first, last = feats["date"].min(), feats["date"].max()
    assert fchecks.spine_check(feats, first, last, first, last + timedelta(days=1)).passed
    dropped = feats.filter(pl.col("close").is_not_null() & (pl.col("date") != date(2020, 2, 2)))
    assert not fchecks.spine_check(dropped, first, last, first, last + timedelta(days=1)).passed
    config = LabelConfig()
    ts = store.training_set(feats, config)
    assert fchecks.labels_against_sql(ts, src.crypto, config).height == 0
    flipped = ts.with_columns(label=pl.when(pl.col("date") == date(2020, 5, 5))
                              .then(pl.lit("hodl")).otherwise(pl.col("label")))
    flipped = flipped.with_columns(label=pl.when(
        (pl.col("date") == date(2020, 5, 5)) & (ts["label"] == "hodl"))
        .then(pl.lit("buy")).otherwise(pl.col("label")))
    assert fchecks.labels_against_sql(flipped, src.crypto, config).height == 1


def test_schema_checks_fail_on_planted_rows() -> None:
    src = inputs()
    daily = build.tweet_daily(src, start=date(2020, 1, 1), end=date(2020, 2, 1),
                              watermark=date(2020, 10, 1), with_text=False)
    assert fchecks.schema_check("t", daily, fchecks.TweetDaily).passed
    more_terms = daily.with_columns(term_doge=pl.col("tweets") + 1)
    assert not fchecks.schema_check("t", more_terms, fchecks.TweetDaily).passed
    early = daily.with_columns(available_at=pl.col("event_time") - timedelta(seconds=1))
    assert not fchecks.schema_check("t", early, fchecks.TweetDaily).passed
    assert not fchecks.schema_check("t", daily.head(0), fchecks.TweetDaily).passed  # no rows

    feats = features_of(src)
    assert fchecks.schema_check("f", feats, fchecks.EthFeatures).passed
    future = feats.with_columns(mkt_BTC_event_time=pl.col("at") + timedelta(seconds=1))
    assert not fchecks.schema_check("f", future, fchecks.EthFeatures).passed

    built = build.build_all(src, with_text=False)
    asof = store.market_asof(built.spine, built.market_daily)
    assert fchecks.schema_check("a", asof, fchecks.EthMarketAsof).passed
    doubled = pl.concat([asof, asof.head(1)])
    assert not fchecks.schema_check("a", doubled, fchecks.EthMarketAsof).passed


def test_the_lookahead_check_fails_on_any_leak_and_without_a_cutoff() -> None:
    assert fchecks.lookahead_check({}, ["2021-01-01"]).passed
    assert not fchecks.lookahead_check({"x": ["2021-01-01"]}, ["2021-01-01"]).passed
    assert not fchecks.lookahead_check({}, []).passed


def _training(closes: list[float | None], labels: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({"date": [date(2021, 1, 1) + timedelta(days=i)
                                  for i in range(len(closes))],
                         "close": closes, "label": labels},
                        schema={"date": pl.Date, "close": pl.Float64, "label": pl.String})


def test_baseline_actions_by_sql_on_a_hand_made_series() -> None:
    closes: list[float | None] = ([100.0 + i for i in range(21)] + [130.0, 90.0, None, 200.0]
                                  + [300.0] * 20)
    labels: list[str | None] = ["sell"] * 8 + ["buy"] * 8 + ["hodl"] * 7 + [None] * 22
    training = _training(closes, labels)

    def actions(name: str) -> list[str | None]:
        return fchecks.baseline_actions_sql(training, name)["action"].to_list()

    # 20 days without history, then up, up, down, no close (no trade), up, then up again
    # except 20 days after the missing close (no trade: never a sell)
    assert actions("momentum_20d") == (["hodl"] * 20 + ["buy", "buy", "sell", "hodl", "buy"]
                                       + ["buy"] * 18 + ["hodl", "buy"])
    assert actions("momentum_20d") == list(ev.momentum_actions(training["close"].to_numpy()))
    assert actions("majority") == ["buy"] * 45  # buy and sell tie at 8: buy comes first
    assert actions("always_hodl") == ["hodl"] * 45
    assert actions("buy_and_hold") == ["buy"] * 45
    assert actions("no_such_rule") == [None] * 45


def _published(served: str, training: pl.DataFrame, actions: list[str]) -> ServedSignals:
    rows = {day: SignalRow(date=day, action=action,
                           probabilities={c: float(c == action) for c in ("buy", "hodl", "sell")},
                           features_as_of=datetime.combine(day, datetime.min.time(), UTC),
                           in_sample=False)
            for day, action in zip(training["date"], actions, strict=True)}
    return ServedSignals(version="v1", served=served, rows=rows, first=min(rows),
                         latest=max(rows))


def test_the_served_signal_check_follows_the_verdict_row_by_row() -> None:
    training = _training([100.0 + i for i in range(21)] + [130.0, 90.0],
                         ["buy"] * 12 + ["sell"] * 11)
    momentum = ["hodl"] * 20 + ["buy", "buy", "sell"]
    no_edge = {"edge": False, "best_baseline": "momentum_20d"}

    def check(verdict: dict[str, object], served: str, actions: list[str]) -> bool:
        source = fchecks.verdict_actions(training, verdict, feature_columns=["close"], seed=0)
        return fchecks.served_verdict_check(
            verdict, _published(served, training, actions), source).passed

    assert check(no_edge, "baseline:momentum_20d", momentum)
    assert not check(no_edge, "model", momentum)  # no edge, yet the model is named
    assert not check(no_edge, "baseline:buy_and_hold", momentum)  # not the best one
    # named right, but the rows are another baseline's (always HODL's, or buy and hold's)
    assert not check(no_edge, "baseline:momentum_20d", ["hodl"] * 23)
    assert not check(no_edge, "baseline:momentum_20d", ["buy"] * 23)
    assert not check(no_edge, "baseline:momentum_20d", [*momentum[:-1], "hodl"])
    assert check({"edge": False, "best_baseline": "majority"}, "baseline:majority", ["buy"] * 23)
    # a day missing from the published rows
    source = fchecks.verdict_actions(training, no_edge, feature_columns=["close"], seed=0)
    short = _published("baseline:momentum_20d", training.head(22), momentum[:22])
    assert not fchecks.served_verdict_check(no_edge, short, source).passed
    # an action that is not its row's most probable class
    published = _published("baseline:momentum_20d", training, momentum)
    rows, day = dict(published.rows), training["date"][-1]  # momentum sells that day
    rows[day] = replace(rows[day], probabilities={"buy": 0.6, "hodl": 0.1, "sell": 0.3})
    assert not fchecks.served_verdict_check(no_edge, replace(published, rows=rows),
                                            source).passed


def test_eth_close_range_reads_the_table_not_the_spine() -> None:
    rows = crypto_rows(days=30)
    assert fchecks.eth_close_range(rows.lazy()) == (date(2020, 1, 1), date(2020, 1, 30))
    # a spine that lost its last day fails against the table's range
    spine = markets.eth_spine(rows.lazy()).head(29)
    first, last = fchecks.eth_close_range(rows.lazy())
    assert not fchecks.spine_check(spine, first, last, date(2020, 1, 1),
                                   date(2020, 2, 1)).passed


# -- a window without data: an empty partition, its checks pass; no data at all: fail -----

def test_a_window_after_the_data_is_empty_and_its_checks_pass() -> None:
    src = inputs()  # bars and tweets in 2020 and 2021
    start, end = date(2025, 1, 1), date(2027, 1, 1)
    daily = build.tweet_daily(src, start=start, end=end, watermark=build.tweet_watermark(src),
                              with_text=False)
    checks = fchecks.tweet_daily_checks(daily, src.tweets, start=start, end=end)
    assert daily.height == 0 and all(r.passed for r in checks), checks
    assert checks[0].metadata["rows"].value == 0
    assert "is before 2025-01-01" in (checks[0].description or "")
    # the same frame, but no tweet validated at all: nothing was checked, not a pass
    none = fchecks.tweet_daily_checks(daily, src.tweets.head(0), start=start, end=end)
    assert not none[0].passed
    assert none[0].description == "no rows were written: nothing to check"

    market = build.market_daily_by_year(src, start=start, end=end)
    reference = fchecks.duckdb_returns(src.crypto.collect(), src.stocks.collect()).filter(
        pl.col("date") >= start)
    why = fchecks.no_bars_between(src.crypto, src.stocks, start, end, what="the bars")
    assert why is not None and why.startswith("the bars run 2020-01-01..2021-")
    assert why.endswith(", outside 2025-01-01..2026-12-31")
    assert all(r.passed for r in fchecks.market_daily_checks(market, reference,
                                                             symbols=SYMBOLS,
                                                             none_expected=why))
    assert not any(r.passed for r in fchecks.market_daily_checks(market, reference,
                                                                 symbols=SYMBOLS))
    # an empty window never excuses a wrong row: a planted bar fails both checks
    planted = market_of_one_bar(start)
    assert not any(r.passed for r in fchecks.market_daily_checks(
        planted, reference, symbols=SYMBOLS, none_expected=why))


def market_of_one_bar(day: date) -> pl.DataFrame:
    """One ETH bar with a negative volatility, the market view's columns otherwise null."""
    stamp = datetime.combine(day, datetime.min.time(), UTC)
    return pl.concat([markets.empty(), pl.DataFrame(
        {"symbol": ["ETH"], "asset_class": [markets.CRYPTO], "date": [day],
         "event_time": [stamp], "available_at": [stamp], "vol_20d": [-1.0]})],
        how="diagonal_relaxed")


def test_a_year_before_eth_gives_no_feature_row_with_every_column_and_passing_checks() -> None:
    from cryptodudez.assets import eth  # noqa: PLC0415 - the asset's own builder

    src = inputs()
    built = build.build_all(src, with_text=False)
    start, end = date(2012, 1, 1), date(2013, 1, 1)
    days = built.spine.filter((pl.col("date") >= start) & (pl.col("date") < end))
    frame = eth._features(days, pl.DataFrame(), pl.DataFrame())
    assert frame.height == 0
    assert frame.columns == features_of(src).columns
    first, last = fchecks.eth_close_range(src.crypto)
    why = fchecks.outside_window(first, last, start, end, what="ETH's closes")
    assert why is not None and why.startswith("ETH's closes run 2020-01-01..")
    assert fchecks.spine_check(frame, first, last, start, end).passed
    assert fchecks.schema_check("f", frame, fchecks.EthFeatures, none_expected=why).passed
    assert fchecks.lookahead_check({}, [], none_expected=why).passed
    asof = store.market_asof(days, markets.empty())
    assert fchecks.schema_check("a", asof, fchecks.EthMarketAsof, none_expected=why).passed
    # no ETH close at all: the spine check has nothing to compare, and says so
    no_eth = fchecks.spine_check(frame, None, None, start, end)
    assert not no_eth.passed and "no ETH close" in (no_eth.description or "")
    # a leak or a wrong column still fails inside an empty window
    assert not fchecks.lookahead_check({"x": ["2012-06-01"]}, [], none_expected=why).passed
    assert not fchecks.schema_check("f", frame.drop("close"), fchecks.EthFeatures,
                                    none_expected=why).passed


def test_outside_window_is_none_when_the_days_reach_the_window_or_there_are_none() -> None:
    start, end = date(2021, 1, 1), date(2022, 1, 1)
    assert fchecks.outside_window(None, None, start, end, what="x") is None
    assert fchecks.outside_window(date(2020, 1, 1), date(2021, 1, 1), start, end,
                                  what="x") is None
    assert fchecks.outside_window(date(2021, 12, 31), date(2023, 1, 1), start, end,
                                  what="x") is None
    assert fchecks.outside_window(date(2020, 1, 1), date(2020, 12, 31), start, end,
                                  what="x") == "x run 2020-01-01..2020-12-31, outside " \
                                               "2021-01-01..2021-12-31"
    assert fchecks.outside_window(date(2022, 1, 1), date(2022, 5, 1), start, end,
                                  what="x") is not None


def test_spine_gaps_counts_the_missing_days_by_year() -> None:
    first, last = date(2017, 12, 30), date(2019, 1, 2)
    every = pl.date_range(first, last, eager=True)
    assert fchecks.spine_gaps(every, first, last) == {}
    assert fchecks.spine_gaps(every.head(0), None, None) == {}
    holes = every.filter((every.dt.year() != 2018) & (every != date(2019, 1, 2)))
    assert fchecks.spine_gaps(holes, first, last) == {"2018": 365, "2019": 1}
    assert fchecks.spine_gaps(every.filter(every != first), first, last) == {"2017": 1}


def test_no_bars_between_names_a_gap_and_only_a_gap() -> None:
    """A window between the bars' days has none expected; inside them, or with no bars at
    all, it is not said (nothing to check is no pass)."""
    crypto = pl.LazyFrame({"Date": ["1966-03-01", "2013-05-01"], "Close": [1.0, 2.0]})
    stocks = pl.LazyFrame({"Date": ["1967-01-02"], "Adj Close": [0.0]}, schema={
        "Date": pl.String, "Adj Close": pl.Float64})  # not a positive price: not a bar
    gap = fchecks.no_bars_between(crypto, stocks, date(2012, 1, 1), date(2013, 1, 1),
                                  what="the bars")
    assert gap == "the bars have none in 2012-01-01..2012-12-31"
    assert fchecks.no_bars_between(crypto, stocks, date(2013, 1, 1), date(2014, 1, 1),
                                   what="the bars") is None
    assert fchecks.no_bars_between(crypto, stocks, date(1967, 1, 1), date(1968, 1, 1),
                                   what="the bars") == (
        "the bars have none in 1967-01-01..1967-12-31")
    assert fchecks.no_bars_between(crypto, stocks, date(2020, 1, 1), date(2021, 1, 1),
                                   what="the bars") == (
        "the bars run 1966-03-01..2013-05-01, outside 2020-01-01..2020-12-31")  # after them
    assert fchecks.no_bars_between(crypto.clear(), stocks.clear(), date(2012, 1, 1),
                                   date(2013, 1, 1), what="the bars") is None
