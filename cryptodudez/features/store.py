"""The feature store: point-in-time feature rows on the ETH spine, offline and online.

* :func:`eth_features` attaches every view to the spine with the one point-in-time join.
* :func:`market_asof` attaches *every* series to the spine (long: spine day x series, a
  series being a symbol within its asset class) with the age of its last bar.
* The offline store keeps immutable training-set snapshots keyed by (feature code version,
  data watermark, label configuration); writing the same key twice must give the same bytes.
* The online store is the latest feature row, with each view's freshness.
"""

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from cryptodudez.features import markets
from cryptodudez.features.labels import TARGET_COLUMNS, LabelConfig, class_balance, label
from cryptodudez.features.pit import point_in_time_join
from cryptodudez.features.views import (
    MARKET_DAILY,
    TWEET_ACTIVITY,
    TWEET_ENGAGEMENT,
    TWEET_TEXT,
    FeatureView,
)

# The series (asset class, symbol) whose features enter the model's row, as mkt_<SYMBOL>_
# (every series is in market_asof). ETH and BTC are the coins, not stocks of that ticker.
MODEL_SYMBOLS = ((markets.CRYPTO, markets.ETH), (markets.CRYPTO, "BTC"),
                 *((markets.INDEX, index) for index in (markets.CRYPTO_INDEX, markets.STOCK_INDEX,
                                                  markets.ETF_INDEX)))
SPINE_COLUMNS = ("date", "at", "close")
# Parquet written the same way every time: the same frame gives the same bytes.
ROW_GROUP = 1 << 20


def _join(spine: pl.DataFrame, view: FeatureView, frame: pl.DataFrame,
          columns: Sequence[str], prefix: str, *, by: Sequence[str] | None = None,
          ) -> pl.DataFrame:
    return point_in_time_join(spine, frame, at="at", event_time=view.event_time,
                              available_at=view.available_at, ttl=view.ttl,
                              by=view.keys if by is None else by, columns=list(columns),
                              prefix=prefix)


TEXT_PREFIXES = ("sent_", "share_", "bow_", "clean_tokens")


def eth_features(spine: pl.DataFrame, tweet_daily: pl.DataFrame, market_daily: pl.DataFrame,
                 symbols: Sequence[tuple[str, str]] = MODEL_SYMBOLS) -> pl.DataFrame:
    """The model's feature row for every spine day (the spine's rows, never fewer).

    ``symbols`` are (asset class, symbol) series: a stock never stands in for the coin of
    the same ticker. Tweet views are prefixed ``tw_`` (text ``txt_``), market views
    ``mkt_<SYMBOL>_``; each
    view also brings the event time of the row it used (``..._event_time``) and each symbol
    the age in hours of its last bar at the decision.
    """
    out = spine.select(SPINE_COLUMNS)
    out = _join(out, TWEET_ACTIVITY, tweet_daily, TWEET_ACTIVITY.columns, "tw_")
    eng = _join(out.select("at"), TWEET_ENGAGEMENT, tweet_daily, TWEET_ENGAGEMENT.columns,
                "tw_").drop("at").rename({"tw_event_time": "tw_engagement_event_time"})
    out = pl.concat([out, eng], how="horizontal")
    cols = [c for c in tweet_daily.columns if c.startswith(TEXT_PREFIXES)]
    if cols:  # the text view lives in the same daily table, with its own columns
        text = _join(out.select("at"), TWEET_TEXT, tweet_daily, cols, "txt_").drop(
            "at", "txt_event_time")
        out = pl.concat([out, text], how="horizontal")
    for asset_class, symbol in symbols:
        rows = market_daily.filter((pl.col("asset_class") == asset_class)
                                   & (pl.col("symbol") == symbol))
        prefix = f"mkt_{symbol}_"
        joined = _join(out.select("at"), MARKET_DAILY, rows, MARKET_DAILY.columns, prefix,
                       by=())  # one series' rows: no key
        joined = joined.with_columns(
            ((pl.col("at") - pl.col(f"{prefix}event_time")).dt.total_seconds() / 3600)
            .alias(f"{prefix}age_hours")).drop("at")
        out = pl.concat([out, joined], how="horizontal")
    return out


def market_asof(spine: pl.DataFrame, market_daily: pl.DataFrame) -> pl.DataFrame:
    """Every series attached to every spine day as of its close (long format).

    One row per spine day and series (``MARKET_DAILY.keys``: asset class and symbol) that
    has had any bar by then; a row whose last bar is older than the view's TTL keeps the
    series with null features and its age.
    """
    keys = list(MARKET_DAILY.keys)
    series = market_daily.select("symbol", "asset_class",
                                 first=pl.col("available_at").min().over(keys))
    series = series.unique(keys).sort("symbol", "asset_class")
    grid = spine.select("date", "at").join(series, how="cross").filter(
        pl.col("first") <= pl.col("at")).drop("first")
    joined = point_in_time_join(grid, market_daily, at="at", event_time="event_time",
                                available_at="available_at", ttl=MARKET_DAILY.ttl,
                                by=keys, columns=list(MARKET_DAILY.columns), prefix="")
    return joined.with_columns(
        age_hours=(pl.col("at") - pl.col("event_time")).dt.total_seconds() / 3600,
    ).sort("date", "symbol", "asset_class")


def feature_columns(frame: pl.DataFrame) -> list[str]:
    """The model's inputs: numeric feature columns, never times, prices or labels."""
    skip = {"date", "at", "close", "band", *TARGET_COLUMNS}
    return [c for c, t in frame.schema.items()
            if c not in skip and not c.endswith("event_time") and t.is_numeric()]


def code_version(package: Path | None = None) -> str:
    """A hash of the feature code (every module of this package): new code, new version."""
    folder = package or Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class SnapshotKey:
    """What identifies a training set: the code, the data and the label definition."""

    code_version: str
    watermark: str
    labels: LabelConfig

    @property
    def id(self) -> str:
        """Folder name of the snapshot."""
        stamp = self.watermark.replace(":", "").replace("-", "")
        return f"{self.code_version}-{stamp}-{self.labels.key}"


def training_set(features: pl.DataFrame, config: LabelConfig) -> pl.DataFrame:
    """The features with the label (and the returns the evaluation scores strategies with)."""
    labelled = label(features.select("date", "close"), config).drop("close")
    return features.join(labelled, on="date", how="left").sort("date")


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """``frame`` as Parquet, written the same way every time."""
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", compression_level=3, statistics=True,
                        row_group_size=ROW_GROUP)
    return buf.getvalue()


class SnapshotMismatchError(RuntimeError):
    """A rebuild of an existing snapshot key gave different bytes: not reproducible."""


def snapshot_manifest(key: SnapshotKey, frame: pl.DataFrame, data: bytes) -> dict[str, Any]:
    """What a snapshot holds: its key, rows, columns, class balance and content hash."""
    return {
        "id": key.id, "code_version": key.code_version, "watermark": key.watermark,
        "labels": asdict(key.labels), "rows": frame.height,
        "columns": frame.columns, "class_balance": class_balance(frame["label"]),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def write_snapshot(key: SnapshotKey, frame: pl.DataFrame, *, exists: Callable[[str], bool],
                   read: Callable[[str], bytes], write: Callable[[str, bytes], None],
                   folder: Callable[..., str]) -> dict[str, Any]:
    """Store a training set under its key, once; a rebuild must reproduce it byte for byte.

    Returns the manifest, with ``"reused": True`` when the key existed (and matched).
    """
    data = parquet_bytes(frame)
    manifest = snapshot_manifest(key, frame, data)
    path, meta = folder(key.id, "training.parquet"), folder(key.id, "manifest.json")
    if exists(meta):
        stored = json.loads(read(meta))
        if stored["sha256"] != manifest["sha256"]:
            msg = (f"training set {key.id} rebuilt with different bytes (sha256 "
                   f"{manifest['sha256'][:12]} != stored {stored['sha256'][:12]}): the "
                   "feature build is not reproducible")
            raise SnapshotMismatchError(msg)
        return {**stored, "reused": True}
    write(path, data)
    write(meta, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return {**manifest, "reused": False}


def online_row(features: pl.DataFrame, now: datetime) -> dict[str, Any]:
    """The latest feature row and each view's freshness at ``now``.

    A view is fresh when the event time of the value the row used is within its TTL of the
    row's decision time; the row itself is as old as its decision time.
    """
    last = features.sort("date").tail(1)
    if last.height == 0:
        return {"date": None, "features": {}, "views": {}, "fresh": False}
    row = last.row(0, named=True)
    at: datetime = row["at"]
    groups = {"tweet_activity": ("tw_event_time", TWEET_ACTIVITY),
              "tweet_engagement": ("tw_engagement_event_time", TWEET_ENGAGEMENT)}
    groups |= {f"market_{c.removeprefix('mkt_').removesuffix('_event_time')}":
               (c, MARKET_DAILY) for c in features.columns
               if c.startswith("mkt_") and c.endswith("_event_time")}
    views = {}
    for name, (col, view) in groups.items():
        seen = row.get(col)
        views[name] = {"event_time": seen.isoformat() if seen else None,
                       "ttl_hours": view.ttl / timedelta(hours=1),
                       "required": view.online_required,
                       "fresh": bool(seen and at - seen <= view.ttl)}
    values = {c: row[c] for c in feature_columns(last)}
    return {"date": row["date"].isoformat(), "at": at.isoformat(),
            "age_hours": (now - at) / timedelta(hours=1), "features": values,
            "views": views,
            "fresh": all(v["fresh"] for v in views.values() if v["required"])}
