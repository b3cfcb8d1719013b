"""The feature store and the Ethereum buy / sell / HODL signal, as Dagster assets.

Thin: the transforms are :mod:`cryptodudez.features` (Dagster-free). The feature views
(``tweet_daily``, ``market_daily``) and the spine tables (``eth_features``,
``eth_market_asof``) are computed by UTC day and partitioned by year, so a run recomputes
only the years holding the days a landing touched; one Parquet file per year under
``features/<table>/``. The
training set, the online row and the signal model are built from the whole store.
"""

import base64
import json
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import dagster as dg
import polars as pl

from cryptodudez.assets.windows import run_window
from cryptodudez.checks import features as fchecks
from cryptodudez.checks.tables import markdown_table, partitioned
from cryptodudez.features import build, charts, guard, markets, store, tweets
from cryptodudez.features import evaluation as ev
from cryptodudez.features.labels import LabelConfig, class_balance
from cryptodudez.features.views import MARKET_DAILY, TWEET_ACTIVITY
from cryptodudez.resources.compute import Compute
from cryptodudez.resources.lake import FEATURES, MODELS, VALIDATED, Lake
from serving.signal_store import SignalRow, publish_signals, read_signals, write_signals

FIRST_YEAR = "2010"  # the year of the first tweet; coins start in 2013, ETH on 2015-08-08
FIRST_DAY = f"{FIRST_YEAR}-01-01"
# Partitioned by year, computed by day. Dagster records one materialisation per partition,
# about 60 ms each on the SQLite instance (measured: a 31-day run of the four tables with
# daily partitions took 15.4 s, a 90-day run 29.7 s); extrapolated at that rate, daily
# partitions would spend 24 minutes of a full rebuild on bookkeeping, monthly ones about 40 s,
# yearly ones (as for the stock features) about 4 s. A landing recomputes the years holding
# the days it touched.
feature_years = dg.TimeWindowPartitionsDefinition(start=FIRST_YEAR, cron_schedule="0 0 1 1 *",
                                                  fmt="%Y", end_offset=1)
TWEET_DAILY = "tweet_daily"
MARKET_DAILY_TABLE = "market_daily"
ETH_FEATURES = "eth_features"
ETH_MARKET_ASOF = "eth_market_asof"
OFFLINE = "offline"
ONLINE = "online"
SAMPLE_SYMBOLS = ("ETH", "BTC", "DIA", "AAPL", "LTC")

_CRYPTO_COLS = {"Symbol": pl.String, "Date": pl.String, "Close": pl.Float64,
                "Volume": pl.Float64, "_landed_at": pl.Datetime("us", "UTC")}
_STOCK_COLS = {"Symbol": pl.String, "Date": pl.String, "Adj Close": pl.Float64,
               "Volume": pl.Int64, "asset_class": pl.String,
               "_landed_at": pl.Datetime("us", "UTC")}
_TWEET_COLS = {"tweet_id": pl.Int64, "created_at": pl.Datetime("us", "UTC"),
               "text": pl.String, "likes": pl.Int64, "retweets": pl.Int64,
               "replies": pl.Int64, "_landed_at": pl.Datetime("us", "UTC"),
               "_source": pl.String, "_line": pl.Int64}


def _table(lake: Lake, layer: str, name: str, schema: dict[str, Any]) -> pl.LazyFrame:
    paths = lake.fragments(layer, name)
    if not paths:
        return pl.LazyFrame(schema=schema)
    return lake.scan_parquet(paths, list(schema))


def inputs(lake: Lake) -> build.Inputs:
    """The validated tables the store reads (empty frames for tables not landed yet)."""
    return build.Inputs(crypto=_table(lake, VALIDATED, "crypto_prices", _CRYPTO_COLS),
                        stocks=_table(lake, VALIDATED, "stock_prices", _STOCK_COLS),
                        tweets=_table(lake, VALIDATED, "tweets", _TWEET_COLS))


# Without ETH's prices there is no label, and without tweets no tweet features: the feature
# store then has nothing to compute, and its runs would only fail their empty-table checks.
REQUIRED_INPUTS = ("crypto_prices", "tweets")
ETH_PRICES = "ETH prices in crypto_prices"


def missing_inputs(lake: Lake) -> list[str]:
    """What the feature store needs that the lake does not hold yet.

    The validated tables it reads, and ETH's closes among the coins: a lake of other coins
    has no spine (``ETH_PRICES`` is then missing).
    """
    missing = [table for table in REQUIRED_INPUTS if not lake.fragments(VALIDATED, table)]
    if "crypto_prices" not in missing and fchecks.eth_close_range(
            inputs(lake).crypto)[0] is None:
        missing.insert(0, ETH_PRICES)
    return missing


def data_end(lake: Lake) -> date | None:
    """The last day any feature can change: the latest bar or tweet, plus the windows."""
    src = inputs(lake)
    days = [src.crypto.select(pl.col("Date").cast(pl.String).str.slice(0, 10).max()),
            src.stocks.select(pl.col("Date").cast(pl.String).str.slice(0, 10).max()),
            src.tweets.select(pl.col("created_at").max().dt.date().cast(pl.String))]
    known = [v for v in (f.collect().item() for f in days) if v is not None]
    return date.fromisoformat(max(known)) + build.LOOKBACK if known else None


def _window(context: dg.AssetExecutionContext) -> tuple[date, date]:
    start, end = run_window(context, unit="year")
    return start.date(), end.date()


def _years(start: date, end: date) -> Iterator[str]:
    year = start.year
    while date(year, 1, 1) < end:
        yield str(year)
        year += 1


def year_path(lake: Lake, table: str, year: str) -> str:
    """The Parquet file of one year of a feature table."""
    return lake.path(FEATURES, table, f"year-{year}.parquet")


def write_days(lake: Lake, table: str, frame: pl.DataFrame, *, start: date, end: date,
               day: str = "date") -> int:
    """Replace the days ``start <= day < end`` of a feature table with ``frame``'s rows.

    Each year file touched is rewritten whole (its other days kept); returns rows written.
    """
    written = 0
    for year in _years(start, end):
        path = year_path(lake, table, year)
        kept = pl.DataFrame()
        if lake.exists(path):
            kept = lake.read_parquet([path]).filter(
                ~((pl.col(day) >= start) & (pl.col(day) < end)))
        rows = frame.filter(pl.col(day).dt.year() == int(year)) if frame.height else frame
        merged = pl.concat([kept, rows], how="diagonal_relaxed") if kept.height else rows
        if merged.height:
            lake.write_parquet(path, merged.sort(*_sort_keys(merged, day)))
        else:
            lake.delete(path)
        written += rows.height
    return written


def _sort_keys(frame: pl.DataFrame, day: str) -> list[str]:
    return [day, *(c for c in ("symbol", "asset_class") if c in frame.columns)]


def read_days(lake: Lake, table: str, *, start: date | None = None,
              end: date | None = None, day: str = "date") -> pl.DataFrame:
    """The rows of a feature table for ``start <= day < end`` (all when unbounded)."""
    paths = lake.fragments(FEATURES, table)
    if start is not None:
        first = f"year-{start:%Y}.parquet"
        paths = [p for p in paths if p.rsplit("/", 1)[-1] >= first]
    if end is not None:
        last = f"year-{end - timedelta(days=1):%Y}.parquet"
        paths = [p for p in paths if p.rsplit("/", 1)[-1] <= last]
    if not paths:
        return pl.DataFrame()
    scan = lake.scan_parquet(paths)
    if start is not None:
        scan = scan.filter(pl.col(day) >= start)
    if end is not None:
        scan = scan.filter(pl.col(day) < end)
    return scan.collect()


def stored_features(lake: Lake) -> pl.DataFrame:
    """Every stored ``eth_features`` row; fails naming the years missing days of ETH's spine.

    The days expected are every calendar day from ETH's first to its last close in the
    validated coin table: a year file moved away or a partition never materialised is
    named, with its file, instead of building a training set from a store with a hole.
    """
    features = read_days(lake, ETH_FEATURES)
    if features.height == 0:
        raise dg.Failure("no eth_features rows: materialise the feature store first")
    first, last = fchecks.eth_close_range(inputs(lake).crypto)
    gaps = fchecks.spine_gaps(features["date"], first, last)
    if gaps:
        years = [f"{year} ({days} days; {year_path(lake, ETH_FEATURES, year)}"
                 f"{'' if lake.exists(year_path(lake, ETH_FEATURES, year)) else ' is absent'})"
                 for year, days in gaps.items()]
        raise dg.Failure(
            f"eth_features misses days of ETH's closes {first}..{last} in "
            f"{'; '.join(years)}: materialise eth_features for partition(s) "
            f"{', '.join(gaps)} first",
            metadata={"missing_days_by_year": dg.MetadataValue.json(gaps)})
    return features


def _partition_metadata(context: dg.AssetExecutionContext, frame: pl.DataFrame) -> None:
    """Each year partition's own row count."""
    counts = (dict(frame.group_by(pl.col("date").dt.year().cast(pl.String)).len().iter_rows())
              if frame.height else {})
    for key in context.partition_keys:
        context.add_asset_metadata({"dagster/row_count": int(counts.get(key, 0))},
                                   partition_key=key)


def _yearly_asset(**kwargs: Any) -> Any:
    """``dg.asset`` for a feature table partitioned by year, one run per backfill range.

    BackfillPolicy is beta in Dagster 1.13; a single run over a range of days is what
    windowed features need (one read of the history, one write per year), so the warning
    would only be noise on every start.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy")
        return dg.asset(partitions_def=feature_years,
                        backfill_policy=dg.BackfillPolicy.single_run(),
                        group_name="feature_store", kinds={"polars", "parquet"}, **kwargs)


@_yearly_asset(
    deps=[dg.AssetDep("tweets", partition_mapping=dg.AllPartitionMapping())],
    check_specs=partitioned([
        dg.AssetCheckSpec("tweet_daily_schema", asset=TWEET_DAILY, blocking=True,
                          description="Pandera: one row per day, non-negative counts, terms "
                                      "at most tweets, nothing known before its day ends."),
        dg.AssetCheckSpec("tweet_daily_every_day_present", asset=TWEET_DAILY, blocking=True,
                          description="Every calendar day up to the latest tweet's UTC day "
                                      "(DuckDB SQL over the validated tweets) has a row, and "
                                      "no later day has one (a day without tweets is a "
                                      "zero, not a gap; after the latest tweet: unknown)."),
        dg.AssetCheckSpec("tweet_daily_matches_sql_recount", asset=TWEET_DAILY, blocking=True,
                          description="Tweets per UTC day equal DuckDB's count of distinct "
                                      "tweet ids per UTC day (session time zone UTC)."),
    ], feature_years),
)
def tweet_daily(context: dg.AssetExecutionContext, lake: Lake,
                compute: Compute) -> dg.MaterializeResult:
    """Elon Musk's tweets per UTC day: activity, terms, engagement, sentiment and words."""
    start, end = _window(context)
    src = inputs(lake)
    watermark = build.tweet_watermark(src)
    frame = build.tweet_daily(src, start=start, end=end, watermark=watermark,
                              activity_of=compute.chosen(TWEET_DAILY).daily_tweet_features).rename(
        {"day": "date"})
    rows = write_days(lake, TWEET_DAILY, frame, start=start, end=end)
    _partition_metadata(context, frame)
    # the expected days and counts come from the validated tweets by SQL, not the watermark
    checks = fchecks.tweet_daily_checks(frame.rename({"date": "day"}), src.tweets,
                                        start=start, end=end)
    return dg.MaterializeResult(
        metadata={"run_rows": rows, "days": f"{start}..{end - timedelta(days=1)}",
                  "watermark": str(watermark),
                  "zero_tweet_days": frame.filter(pl.col("tweets") == 0).height,
                  "preview": dg.MetadataValue.md(markdown_table(
                      frame.select("date", *TWEET_ACTIVITY.columns[:4]).tail(5)))},
        check_results=checks)


@_yearly_asset(
    deps=[dg.AssetDep("crypto_prices", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("stock_prices", partition_mapping=dg.AllPartitionMapping())],
    check_specs=partitioned([
        dg.AssetCheckSpec("market_daily_schema", asset=MARKET_DAILY_TABLE, blocking=True,
                          description="Pandera: one row per asset class, symbol and date, "
                                      "volatility >= 0, "
                                      "correlation in [-1, 1], nothing known before its "
                                      "bar's close."),
        dg.AssetCheckSpec("market_daily_matches_sql_recomputation", asset=MARKET_DAILY_TABLE,
                          blocking=True,
                          description="Sample symbols have exactly the bars DuckDB finds "
                                      "in the validated rows (none dropped, none invented), "
                                      "with log returns and 20-bar volatility equal to its "
                                      "window functions."),
    ], feature_years),
)
def market_daily(context: dg.AssetExecutionContext, lake: Lake) -> dg.MaterializeResult:
    """Every coin, stock, ETF and equal-weight index: returns, volatility, momentum, beta."""
    start, end = _window(context)
    src = inputs(lake)
    frame = build.market_daily_by_year(src, start=start, end=end)
    rows = write_days(lake, MARKET_DAILY_TABLE, frame, start=start, end=end)
    _partition_metadata(context, frame)
    sample = list(SAMPLE_SYMBOLS)
    reference = fchecks.duckdb_returns(
        src.crypto.filter(pl.col("Symbol").is_in(sample)).collect(),
        src.stocks.filter(pl.col("Symbol").is_in(sample)).collect(),
    ).filter((pl.col("date") >= start) & (pl.col("date") < end))
    none_expected = None
    if not (frame.height and reference.height):  # the bars' range is read only when needed
        none_expected = fchecks.no_bars_between(src.crypto, src.stocks, start, end,
                                                what="the coin and stock bars")
    return dg.MaterializeResult(
        metadata={"run_rows": rows, "days": f"{start}..{end - timedelta(days=1)}",
                  "symbols": frame["symbol"].n_unique() if frame.height else 0},
        check_results=fchecks.market_daily_checks(
            frame, reference, symbols=sample, none_expected=none_expected))


def spine(lake: Lake, start: date | None = None, end: date | None = None) -> pl.DataFrame:
    """The ETH spine (``date``, ``at``, ``close``), optionally cut to a window."""
    frame = markets.eth_spine(inputs(lake).crypto)
    if start is not None:
        frame = frame.filter(pl.col("date") >= start)
    if end is not None:
        frame = frame.filter(pl.col("date") < end)
    return frame


@_yearly_asset(
    deps=[TWEET_DAILY, MARKET_DAILY_TABLE],
    check_specs=partitioned([
        dg.AssetCheckSpec("eth_features_spine_complete", asset=ETH_FEATURES, blocking=True,
                          description="One row per calendar day between ETH's first and last "
                                      "close (the spine never shrinks; a quarantined close "
                                      "is a null, not a missing day)."),
        dg.AssetCheckSpec("eth_features_schema", asset=ETH_FEATURES, blocking=True,
                          description="Pandera: one row per date, positive closes, every "
                                      "attached row's event time at or before the decision."),
        dg.AssetCheckSpec("eth_features_no_lookahead", asset=ETH_FEATURES, blocking=True,
                          description="Rebuilt from inputs truncated at a cutoff day, the "
                                      "rows up to the cutoff are unchanged (a feature built "
                                      "from tomorrow's price would change)."),
    ], feature_years),
)
def eth_features(context: dg.AssetExecutionContext, lake: Lake) -> dg.MaterializeResult:
    """The model's feature row for every ETH daily close, joined point in time."""
    start, end = _window(context)
    days = spine(lake, start, end)
    reach = start - MARKET_DAILY.ttl - timedelta(days=1)
    tweets_ = read_days(lake, TWEET_DAILY, start=reach, end=end)
    market = read_days(lake, MARKET_DAILY_TABLE, start=reach, end=end)
    frame = _features(days, tweets_, market)
    rows = write_days(lake, ETH_FEATURES, frame, start=start, end=end)
    _partition_metadata(context, frame)
    src = inputs(lake)
    # ETH's first and last close straight from the validated table, not from the spine
    # builder the check judges: a spine that lost its first or last day must fail.
    first, last = fchecks.eth_close_range(src.crypto)
    quiet = fchecks.outside_window(first, last, start, end, what="ETH's closes")
    cutoffs = _cutoffs(frame)
    leaks = (guard.leaking_columns(lambda i: build.build_all(i).features, src, frame,
                                   cutoffs) if cutoffs else {})
    return dg.MaterializeResult(
        metadata={"run_rows": rows, "days": f"{start}..{end - timedelta(days=1)}",
                  "features": len(store.feature_columns(frame)) if frame.height else 0},
        check_results=[
            fchecks.spine_check(frame, first, last, start, end),
            fchecks.schema_check("eth_features_schema", frame, fchecks.EthFeatures,
                                 none_expected=quiet),
            fchecks.lookahead_check(leaks, [c.isoformat() for c in cutoffs],
                                    none_expected=quiet),
        ])


def _features(days: pl.DataFrame, tweets_: pl.DataFrame, market: pl.DataFrame) -> pl.DataFrame:
    """The feature rows of ``days``.

    No day (a year before ETH's first close) gives no row, with the table's columns.
    """
    tweet_view = tweets_.rename({"date": "day"}) if tweets_.height else tweets.empty()
    return store.eth_features(days, tweet_view, market if market.height else markets.empty())


def _cutoffs(frame: pl.DataFrame) -> list[date]:
    """Days the look-ahead guard tests: the window's last day and its middle day."""
    if frame.height == 0:
        return []
    dates = frame["date"].sort()
    return sorted({dates[dates.len() // 2], dates[-1]})


@_yearly_asset(
    deps=[MARKET_DAILY_TABLE],
    check_specs=partitioned([
        dg.AssetCheckSpec("eth_market_asof_schema", asset=ETH_MARKET_ASOF, blocking=True,
                          description="Pandera: one row per spine day and symbol, ages of "
                                      "the last bar never negative (no bar from after the "
                                      "decision)."),
    ], feature_years),
)
def eth_market_asof(context: dg.AssetExecutionContext, lake: Lake) -> dg.MaterializeResult:
    """Every coin, stock, ETF and index as of each ETH close, with the age of its last bar.

    Long format (day x symbol): never an inner join across tickers.
    """
    start, end = _window(context)
    days = spine(lake, start, end)
    market = read_days(lake, MARKET_DAILY_TABLE, start=start - MARKET_DAILY.ttl
                       - timedelta(days=1), end=end)
    # no spine day or no bar: no row, the table's columns all the same
    frame = store.market_asof(days, market if market.height else markets.empty())
    rows = write_days(lake, ETH_MARKET_ASOF, frame, start=start, end=end)
    _partition_metadata(context, frame)
    none_expected = None
    if not frame.height:  # ETH's range is read only when nothing was written
        first, last = fchecks.eth_close_range(inputs(lake).crypto)
        none_expected = fchecks.outside_window(first, last, start, end, what="ETH's closes")
    return dg.MaterializeResult(
        metadata={"run_rows": rows, "symbols": frame["symbol"].n_unique() if rows else 0},
        check_results=[fchecks.schema_check(
            "eth_market_asof_schema", frame, fchecks.EthMarketAsof,
            none_expected=none_expected)])


class LabelSettings(dg.Config):
    """The label definition of a training set (:class:`LabelConfig`), and whether it serves.

    ``serve``: None (the default) serves a run with the production label definition (the
    defaults: next-day return, fixed 1 % band) and keeps any other as an experiment; True
    serves it too; False keeps even the production definition as an experiment. An
    experiment's training set and signal version are written, checked and reported, but
    neither ``LATEST`` pointer moves. A served run moves them once its checks pass.
    """

    horizon: int = 1
    band: float = 0.01
    band_kind: Literal["fixed", "volatility"] = "fixed"
    method: Literal["horizon", "triple_barrier"] = "horizon"
    serve: bool | None = None

    def label_config(self) -> LabelConfig:
        """As the Dagster-free configuration, checked against what the evaluation can use.

        Raises:
            dg.Failure: naming the field, its value and the bound, before anything is built.
        """
        try:
            # the evaluation's bound first: it is the narrower, so a horizon refused is told
            # the one range that is accepted (LabelConfig's own 1..365 said 365 would do)
            ev.check_horizon(self.horizon)
            labels = LabelConfig(horizon=self.horizon, band=self.band,
                                 band_kind=self.band_kind, method=self.method)
        except ValueError as exc:
            raise dg.Failure(f"{ETH_TRAINING_SET} config: {exc}") from exc
        return labels

    def serves(self) -> bool:
        """Whether a run with this configuration may move the served pointers."""
        return self.label_config() == LabelConfig() if self.serve is None else self.serve


ETH_TRAINING_SET = "eth_training_set"


def snapshot_folder(lake: Lake, *parts: str) -> str:
    """A path in the offline store of training sets."""
    return lake.path(FEATURES, OFFLINE, ETH_TRAINING_SET, *parts)


def watermark(lake: Lake) -> str:
    """The data watermark: the latest delivery among the tables the store reads."""
    src = inputs(lake)
    stamps = [frame.select(pl.col("_landed_at").max()).collect().item()
              for frame in (src.crypto, src.stocks, src.tweets)]
    known = [s for s in stamps if s is not None]
    return max(known).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if known else "none"


@dg.asset(
    group_name="feature_store", kinds={"polars", "parquet"},
    deps=[dg.AssetDep(ETH_FEATURES, partition_mapping=dg.AllPartitionMapping())],
    check_specs=[
        dg.AssetCheckSpec("eth_training_set_reproducible", asset=ETH_TRAINING_SET,
                          blocking=True,
                          description="A rebuild under an existing key (feature code version, "
                                      "data watermark, label configuration) gives the stored "
                                      "snapshot's bytes."),
        dg.AssetCheckSpec("eth_training_set_labels_match_sql", asset=ETH_TRAINING_SET,
                          blocking=True,
                          description="Fixed-band horizon labels equal DuckDB's LEAD over the "
                                      "ETH closes of the validated table."),
    ],
)
def eth_training_set(context: dg.AssetExecutionContext, config: LabelSettings,
                     lake: Lake) -> dg.MaterializeResult:
    """A point-in-time-correct training set for a label definition, stored immutably.

    It becomes the :data:`CANDIDATE` only when the run is served (see :class:`LabelSettings`)
    and the snapshot passes its blocking checks; ``eth_signal`` of the same run evaluates it
    either way, and moves ``LATEST`` to it once its signal is published.
    """
    labels, serve = config.label_config(), config.serves()
    features = stored_features(lake)
    frame = store.training_set(features, labels)
    key = store.SnapshotKey(store.code_version(), watermark(lake), labels)
    reproducible, manifest = True, {}
    try:
        manifest = store.write_snapshot(
            key, frame, exists=lake.exists, read=lake.read_bytes, write=lake.write_bytes,
            folder=lambda *p: snapshot_folder(lake, *p))
    except store.SnapshotMismatchError as exc:
        reproducible = False
        context.log.error(str(exc))
    # A second build from the stored feature rows must give the same bytes, so a first
    # snapshot is checked too (not only a rebuild under an existing key).
    again = store.parquet_bytes(store.training_set(read_days(lake, ETH_FEATURES), labels))
    same_twice = again == store.parquet_bytes(frame)
    reproducible = reproducible and same_twice
    wrong = fchecks.labels_against_sql(frame, inputs(lake).crypto, labels)
    balance = class_balance(frame["label"])
    checks = [dg.AssetCheckResult(check_name="eth_training_set_reproducible",
                                  passed=reproducible,
                                  metadata={"snapshot": key.id,
                                            "sha256": manifest.get("sha256", "mismatch"),
                                            "same_bytes_built_twice": same_twice}),
              fchecks.labels_check(wrong, labels)]
    # both checks block: a snapshot that fails one never becomes a candidate
    candidate = serve and all(c.passed for c in checks)
    if candidate:
        lake.write_bytes(snapshot_folder(lake, CANDIDATE), key.id.encode())
    elif serve:
        context.log.warning(f"{ETH_TRAINING_SET} {key.id} fails a blocking check: kept for "
                            f"inspection, {CANDIDATE} still names the last that passed")
    else:
        context.log.info(f"{ETH_TRAINING_SET} {key.id} is an experiment (labels "
                         f"{labels.__dict__}, serve={config.serve}): no pointer moves")
    return dg.MaterializeResult(
        metadata={"snapshot": key.id, "path": lake.url(FEATURES, OFFLINE, ETH_TRAINING_SET,
                                                        key.id),
                  "rows": frame.height, "features": len(store.feature_columns(frame)),
                  "reused": bool(manifest.get("reused")),
                  "class_balance": dg.MetadataValue.json(balance),
                  "labels": dg.MetadataValue.json(labels.__dict__),
                  "serve": serve, "candidate": candidate},
        check_results=checks)


def training_set(lake: Lake, key: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """A stored training set's rows and manifest."""
    manifest = json.loads(lake.read_bytes(snapshot_folder(lake, key, "manifest.json")))
    frame = lake.read_parquet([snapshot_folder(lake, key, "training.parquet")])
    return frame, manifest


CANDIDATE = "CANDIDATE"
"""The pointer to the newest served training set that passed its blocking checks: what
``eth_signal`` evaluates when it runs on its own. ``LATEST`` names the training set of the
published signal, and moves only when ``eth_signal`` publishes one (it moved with the
training set, so a signal that then failed left ``LATEST`` naming a set no signal came from)."""


def servable_snapshot(lake: Lake) -> str:
    """The id of the training set ``eth_signal`` serves next: the candidate, else ``LATEST``."""
    for name in (CANDIDATE, "LATEST"):
        pointer = snapshot_folder(lake, name)
        if lake.exists(pointer):
            return lake.read_bytes(pointer).decode().strip()
    raise dg.Failure("no training set yet: materialise eth_training_set first")


def servable_training_set(lake: Lake) -> tuple[str, pl.DataFrame, dict[str, Any]]:
    """The training set ``eth_signal`` serves next: its id, rows and manifest."""
    key = servable_snapshot(lake)
    return key, *training_set(lake, key)


def run_training_set(context: dg.AssetExecutionContext, lake: Lake) -> tuple[str, bool]:
    """The training set this run built and whether the run is served; else the servable one.

    The ``eth_training_set`` materialisation of the run, or of the run it re-executes,
    names its snapshot (an experiment's moves no pointer). Without one (``eth_signal`` run
    alone), the candidate (else the served training set) is evaluated, and served.
    """
    # A re-execution (from failure, or of eth_signal alone) runs only the steps it re-runs:
    # the training set is then its parent's. Looking at its own run alone, a re-executed
    # experiment evaluated the CANDIDATE as a served run instead (a reviewer).
    run_id: str | None = context.run_id
    while run_id is not None:
        records = context.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        for record in records:
            event = record.asset_materialization
            if event is not None and event.asset_key == dg.AssetKey(ETH_TRAINING_SET):
                return (str(event.metadata["snapshot"].value),
                        bool(event.metadata["serve"].value))
        run = context.instance.get_run_by_id(run_id)
        run_id = run.parent_run_id if run is not None else None
    return servable_snapshot(lake), True


ETH_ONLINE = "eth_online_features"


@dg.asset(
    group_name="feature_store", kinds={"json"},
    deps=[dg.AssetDep(ETH_FEATURES, partition_mapping=dg.AllPartitionMapping())],
    check_specs=[dg.AssetCheckSpec(
        "eth_online_features_fresh", asset=ETH_ONLINE,
        description="The online row is the latest ETH close's, and every view it uses is "
                    "within its TTL at that decision time.")],
)
def eth_online_features(lake: Lake) -> dg.MaterializeResult:
    """The latest feature row, for serving, with each view's freshness."""
    features = read_days(lake, ETH_FEATURES)
    row = store.online_row(features, datetime.now(tz=UTC)) if features.height else {
        "date": None, "features": {}, "views": {}, "fresh": False}
    lake.write_bytes(lake.path(FEATURES, ONLINE, "eth", "latest.json"),
                     json.dumps(row, default=str, indent=2).encode())
    whole = spine(lake)
    newest = whole["date"].max() if whole.height else None
    latest = row["date"] == (newest.isoformat() if newest else None)  # type: ignore[union-attr]
    stale = sorted(n for n, v in row["views"].items() if not v["fresh"])
    return dg.MaterializeResult(
        metadata={"date": str(row["date"]), "age_hours": row.get("age_hours"),
                  "views": dg.MetadataValue.json(row["views"])},
        check_results=[dg.AssetCheckResult(
            check_name="eth_online_features_fresh", passed=bool(latest and row["fresh"]),
            metadata={"row_date": str(row["date"]), "newest_close": str(newest),
                      "stale_views": ", ".join(stale) or "none"})])


def png_markdown(title: str, png: bytes) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI."""
    encoded = base64.b64encode(png).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


ETH_SIGNAL = "eth_signal"


def signal_rows(signals: pl.DataFrame, features: pl.DataFrame) -> list[SignalRow]:
    """The served rows: the action, its probabilities and when its features were known."""
    as_of = features.select("date", pl.col("at").alias("features_as_of"))
    joined = signals.join(as_of, on="date", how="left", maintain_order="left")
    return [SignalRow(date=r["date"], action=r["action"],
                      probabilities={c: float(r[f"p_{c}"]) for c in ev.CLASSES},
                      features_as_of=r["features_as_of"], in_sample=bool(r["in_sample"]))
            for r in joined.iter_rows(named=True)]


@dg.asset(
    group_name="models", kinds={"scikitlearn"}, deps=[ETH_TRAINING_SET],
    check_specs=[
        dg.AssetCheckSpec("eth_signal_beats_baselines", asset=ETH_SIGNAL,
                          description="On the purged walk-forward folds and the final "
                                      "held-out year, the model beats every baseline on "
                                      "macro-F1 and Sharpe after fees (WARN: 'no edge' is "
                                      "a valid result; a baseline is then served)."),
        dg.AssetCheckSpec("eth_signal_serves_the_verdict", asset=ETH_SIGNAL, blocking=True,
                          description="The published signal is the model only when it has "
                                      "an edge, else the best baseline, named as such; every "
                                      "row's action is its most probable class and what that "
                                      "source says for the day (a baseline's rule by DuckDB "
                                      "SQL over the training set, or the model refitted)."),
    ],
)
def eth_signal(context: dg.AssetExecutionContext, lake: Lake) -> dg.MaterializeResult:
    """Buy / sell / HODL for ETH: evaluated walk-forward against baselines, then published.

    The report, both charts and the served signals are written under
    ``models/eth_signal/<version>/``; ``LATEST`` (and the training set's ``LATEST``, to the
    set it came from) moves last, and only when the version passes
    its blocking check and the run is served (not an experiment, see :class:`LabelSettings`),
    so ``GET /signal/eth`` swaps to the new version without a restart and never to a
    rejected or experimental one. It evaluates the training set its run built, or, run on
    its own, the :data:`CANDIDATE` (else the served one).
    """
    snapshot, serve = run_training_set(context, lake)
    frame, manifest = training_set(lake, snapshot)
    horizon = int(manifest["labels"]["horizon"])
    columns = ev.usable_features(frame, store.feature_columns(frame))
    report = ev.evaluate(frame, columns, horizon=horizon)
    signals = ev.final_signals(frame, columns, report, horizon=horizon)
    served = str(report["verdict"]["served"])
    version = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S") + f"-{context.run_id[:8]}"
    folder = [MODELS, ETH_SIGNAL, version]
    # The model's own out-of-sample decisions (walk-forward folds, then the hold-out year),
    # whatever is served: the served signal may be a baseline (buy every day).
    tested = pl.DataFrame([{"date": date.fromisoformat(r["date"]), "action": r["action"]}
                           for r in report["predictions"]])
    shown = frame.select("date", "close").join(tested, on="date", how="inner").drop_nulls()
    price_png = charts.price_with_signals(
        shown["date"], shown["close"], shown["action"], log_scale=True,
        title=f"ETH close with the model's out-of-sample signals (served: {served})")
    equity_png = charts.equity_curves(ev.report_equity(report))
    lake.write_bytes(lake.path(*folder, "report.json"), json.dumps(
        {**report, "training_set": snapshot, "version": version,
         "labels": manifest["labels"], "serve": serve}, indent=1).encode())
    lake.write_bytes(lake.path(*folder, "price_signals.png"), price_png)
    lake.write_bytes(lake.path(*folder, "equity_curves.png"), equity_png)
    write_signals(lake, version, signal_rows(signals, frame), served=served, publish=False,
                  label_definition=manifest["labels"])
    verdict = report["verdict"]
    hold = report["holdout"]["scores"]
    # what the API will read back, not what this run meant to write
    serves_verdict = fchecks.served_verdict_check(
        verdict, read_signals(lake.storage, version),
        fchecks.verdict_actions(frame, verdict, feature_columns=columns,
                                seed=int(report["seed"])))
    published = serve and serves_verdict.passed
    if published:  # a version that fails its blocking check is never served
        publish_signals(lake, version)
        lake.write_bytes(snapshot_folder(lake, "LATEST"), snapshot.encode())
    elif serve:
        context.log.warning(f"eth_signal {version} fails eth_signal_serves_the_verdict: kept "
                            "for inspection, LATEST still names the served version")
    else:
        context.log.info(f"eth_signal {version} is an experiment ({manifest['labels']}): "
                         "kept under its version, LATEST still names the served version")
    return dg.MaterializeResult(
        metadata={"version": version, "published": published, "experiment": not serve,
                  "labels": dg.MetadataValue.json(manifest["labels"]),
                  "training_set": snapshot, "served": served,
                  "verdict": str(verdict.get("summary", verdict)),
                  "features": len(columns),
                  "holdout_accuracy": hold["model"]["accuracy"],
                  "holdout_majority_prior": hold["model"].get("majority_prior"),
                  "holdout_sharpe": dg.MetadataValue.json(
                      {k: v.get("sharpe") for k, v in hold.items()}),
                  "price_with_signals": png_markdown("ETH price with signals", price_png),
                  "equity_curves": png_markdown("Equity curves", equity_png)},
        check_results=[
            dg.AssetCheckResult(check_name="eth_signal_beats_baselines",
                                passed=bool(verdict["edge"]),
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"served": served}),
            serves_verdict,
        ])
