"""Markets tied to ETH: the spine, per-symbol daily features, and their as-of view of ETH.

Every coin, stock and ETF stays its own series (long format: one row per series and bar);
nothing is ever inner-joined across tickers, because US markets have no bar on 673 of the
2,160 ETH days and most coins start years after ETH. A symbol reaches the ETH spine only
through the point-in-time join, with the age of its last bar.

A series is keyed by ``(asset_class, symbol)`` (:data:`KEY`), never by the ticker alone: the
stock dataset lists tickers that are also coins (``ETH`` is Ethan Allen Interiors; ``ATOM``,
``EOS``, ``LTC``, ``SOL``, ``TRX``), and a coin and a stock with the same ticker are two
series that never mix. "ETH" in every ETH-relative statistic is the coin (:func:`is_eth`).

All windows are per series over its own bars, computed set-at-a-time with polars
(``rolling_*().over(KEY)``); a window's value at a bar uses that bar and earlier ones only.
"""

from datetime import date, timedelta

import polars as pl

ETH = "ETH"
CRYPTO = "crypto"  # the asset class of coins (stocks: "stock", ETFs: "etf")
INDEX = "index"  # the asset class of the equal-weight indices
KEY = ("asset_class", "symbol")  # a series: a ticker within its asset class
WINDOW = 20  # bars: volatility, momentum and the volume z-score
CORR_WINDOW = 60  # bars: rolling correlation and beta to ETH
CRYPTO_INDEX = "CRYPTO_EW"  # equal-weight index of every coin except ETH
STOCK_INDEX = "STOCK_EW"
ETF_INDEX = "ETF_EW"
# The US close is 16:00 New York time; converted per date, so DST is exact.
US_CLOSE = timedelta(hours=16)
# Crypto venues close each day at 23:59:59 UTC (the vendor's stamp).
CRYPTO_CLOSE = timedelta(hours=23, minutes=59, seconds=59)
MARKET_FEATURES = ("log_return", "vol_20d", "momentum_20d", "volume_z_20d",
                   "corr_eth_60d", "beta_eth_60d")


def eth_spine(crypto: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """One row per calendar day from ETH's first to its last daily close.

    Columns ``date`` (pl.Date), ``at`` (the decision time: the day's close, 23:59:59 UTC)
    and ``close`` (null on a day whose row was quarantined: the spine never shrinks).
    """
    eth = (crypto.lazy().filter(pl.col("Symbol") == ETH)
           .select(pl.col("Date").cast(pl.String).str.to_date().alias("date"),
                   pl.col("Close").alias("close"))
           .unique("date", keep="last").collect())
    if eth.height == 0:
        return pl.DataFrame(schema={"date": pl.Date, "at": pl.Datetime("us", "UTC"),
                                    "close": pl.Float64})
    first: date = eth["date"].min()  # type: ignore[assignment]
    last: date = eth["date"].max()  # type: ignore[assignment]
    days = pl.date_range(first, last, "1d", eager=True).alias("date")
    return (days.to_frame().join(eth, on="date", how="left", maintain_order="left")
            .with_columns(at=_at(pl.col("date"), CRYPTO_CLOSE))
            .select("date", "at", "close"))


def is_eth() -> pl.Expr:
    """The rows of the ETH coin (not a stock that trades under the ticker ``ETH``)."""
    return (pl.col("symbol") == ETH) & (pl.col("asset_class") == CRYPTO)


def _at(date: pl.Expr, close: timedelta, zone: str = "UTC") -> pl.Expr:
    """The close instant of ``date`` in ``zone``, as a UTC timestamp."""
    local = (date.cast(pl.Datetime("us")) + pl.lit(close)).dt.replace_time_zone(
        zone, ambiguous="earliest", non_existent="null")
    return local.dt.convert_time_zone("UTC")


def bars(crypto: pl.LazyFrame, stocks: pl.LazyFrame) -> pl.LazyFrame:
    """Every symbol's daily bars in one long frame.

    Columns ``symbol``, ``asset_class`` (crypto, stock, etf), ``date``, ``event_time`` (the
    bar's close in UTC), ``close`` (Adj Close for stocks and ETFs: splits and dividends
    adjusted) and ``volume``. Rows without a price are dropped here (a bar that never
    traded is not a bar); one row per series (:data:`KEY`) and date (the last delivered
    wins): a stock never replaces the bar of a coin with the same ticker.
    """
    coins = crypto.select(
        pl.col("Symbol").alias("symbol"), pl.lit(CRYPTO).alias("asset_class"),
        pl.col("Date").cast(pl.String).str.to_date().alias("date"),
        pl.col("Close").alias("close"), pl.col("Volume").cast(pl.Float64).alias("volume"),
    ).with_columns(event_time=_at(pl.col("date"), CRYPTO_CLOSE))
    listed = stocks.select(
        pl.col("Symbol").alias("symbol"),
        pl.col("asset_class").fill_null("stock"),
        pl.col("Date").cast(pl.String).str.to_date().alias("date"),
        pl.col("Adj Close").alias("close"), pl.col("Volume").cast(pl.Float64).alias("volume"),
    ).with_columns(event_time=_at(pl.col("date"), US_CLOSE, "America/New_York"))
    cols = ["symbol", "asset_class", "date", "event_time", "close", "volume"]
    return (pl.concat([coins.select(cols), listed.select(cols)])
            .filter(pl.col("close").is_not_null() & (pl.col("close") > 0)
                    & pl.col("event_time").is_not_null())
            .unique([*KEY, "date"], keep="last"))


def symbol_features(bars_: pl.LazyFrame) -> pl.LazyFrame:
    """Per-series daily features over its own bars, plus correlation and beta to ETH.

    ``log_return`` since the symbol's previous bar; ``vol_20d`` the standard deviation of
    the last 20 returns; ``momentum_20d`` the log change over 20 bars; ``volume_z_20d`` the
    bar's volume against the previous 20 bars' mean and deviation. ``corr_eth_60d`` and
    ``beta_eth_60d`` compare the last 60 returns with ETH's log return over the same
    calendar span (the ETH coin's close to close on the bars' dates). A feature row is
    available at the later of its bar's close and that day's ETH close (the correlation
    needs both). Every window runs over one series (:data:`KEY`).
    """
    sym = list(KEY)
    ordered = bars_.sort("symbol", "asset_class", "date")
    ret = pl.col("close").log().diff().over(sym)
    logv = pl.col("volume").log1p()
    prev_mean = logv.shift(1).rolling_mean(WINDOW).over(sym)
    prev_std = logv.shift(1).rolling_std(WINDOW).over(sym)
    features = ordered.with_columns(
        log_return=ret,
        momentum_20d=(pl.col("close").log() - pl.col("close").log().shift(WINDOW)).over(sym),
        volume_z_20d=pl.when(prev_std > 0).then((logv - prev_mean) / prev_std),
    ).with_columns(vol_20d=pl.col("log_return").rolling_std(WINDOW).over(sym))
    eth_close = (ordered.filter(is_eth())
                 .select("date", eth_log=pl.col("close").log(),
                         eth_at=pl.col("event_time")))
    # maintain_order: the windows below run over each series' bars in date order.
    joined = features.join(eth_close, on="date", how="left", maintain_order="left").with_columns(
        eth_return=(pl.col("eth_log") - pl.col("eth_log").shift(1)).over(sym))
    x, y = pl.col("eth_return"), pl.col("log_return")
    both = x.is_not_null() & y.is_not_null()
    xs, ys = pl.when(both).then(x), pl.when(both).then(y)
    half = CORR_WINDOW // 2
    cov = pl.rolling_cov(xs, ys, window_size=CORR_WINDOW, min_samples=half).over(sym)
    var_x = xs.rolling_var(CORR_WINDOW, min_samples=half).over(sym)
    var_y = ys.rolling_var(CORR_WINDOW, min_samples=half).over(sym)
    # A price that did not move over the window has no correlation (not +-inf); rounding
    # can push |r| a hair above 1, so it is clipped.
    moved = (var_x > 1e-18) & (var_y > 1e-18)
    return joined.with_columns(
        corr_eth_60d=pl.when(moved).then((cov / (var_x * var_y).sqrt()).clip(-1.0, 1.0)),
        beta_eth_60d=pl.when(var_x > 1e-18).then(cov / var_x),
        available_at=pl.max_horizontal("event_time", "eth_at"),
    ).select("symbol", "asset_class", "date", "event_time", "available_at", "close",
             "volume", *MARKET_FEATURES)


def equal_weight_indices(features: pl.LazyFrame) -> pl.LazyFrame:
    """Equal-weight indices per calendar date: coins except ETH, stocks, ETFs.

    Only the ETH coin is left out: a stock trading under the ticker ``ETH`` is a stock member.

    The index return of a date is the mean log return of the members that have a bar that
    date (members join and leave as they list and delist); its ``close`` is the compounded
    level from 1.0, and its 20-bar features are computed like any symbol's.
    """
    member = (pl.when(pl.col("asset_class") == CRYPTO).then(pl.lit(CRYPTO_INDEX))
              .when(pl.col("asset_class") == "etf").then(pl.lit(ETF_INDEX))
              .otherwise(pl.lit(STOCK_INDEX)))
    daily = (features.filter(~is_eth() & pl.col("log_return").is_not_null())
             .group_by(member.alias("symbol"), "date")
             # a sequential sum of the sorted values: the same members give the same bits
             # (a parallel mean does not: its partial sums depend on the threads)
             .agg((pl.col("log_return").sort().cum_sum().last() / pl.len())
                  .alias("index_return"),
                  pl.len().alias("members"), pl.col("event_time").max(),
                  pl.col("available_at").max())
             .sort("symbol", "date"))
    sym = pl.col("symbol")
    return daily.with_columns(
        asset_class=pl.lit(INDEX),
        close=pl.col("index_return").cum_sum().exp().over(sym),
        log_return=pl.col("index_return"),
        momentum_20d=pl.col("index_return").rolling_sum(WINDOW).over(sym),
        vol_20d=pl.col("index_return").rolling_std(WINDOW).over(sym),
        volume=pl.col("members").cast(pl.Float64),
        volume_z_20d=pl.lit(None, dtype=pl.Float64),
        corr_eth_60d=pl.lit(None, dtype=pl.Float64),
        beta_eth_60d=pl.lit(None, dtype=pl.Float64),
    ).select("symbol", "asset_class", "date", "event_time", "available_at", "close",
             "volume", *MARKET_FEATURES)


def empty() -> pl.DataFrame:
    """The market view's columns without rows (no prices landed yet)."""
    stamp = pl.Datetime("us", "UTC")
    return pl.DataFrame(schema={
        "symbol": pl.String, "asset_class": pl.String, "date": pl.Date, "event_time": stamp,
        "available_at": stamp, "close": pl.Float64, "volume": pl.Float64,
        **dict.fromkeys(MARKET_FEATURES, pl.Float64)})
