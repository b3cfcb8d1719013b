"""Buy / sell / HODL labels from a configuration, on the ETH spine.

``r`` is ETH's log return from the decision close to the close ``horizon`` days later. With
a dead band ``b``: buy when ``r > b``, sell when ``r < -b``, hodl otherwise. The band is fixed
(``band``) or scaled by volatility (``band * vol_20d * sqrt(horizon)``, with ``vol_20d`` the
standard deviation of the 20 daily log returns up to the decision day: data up to the
decision time only). The triple-barrier option labels by the first barrier the path of daily
closes touches within the horizon (upper: buy, lower: sell, neither: hodl).

A label needs every close it looks at: the decision close and the horizon's close (for the
triple barrier, every close on the path up to the barrier it touches). A day whose horizon
runs past the data, or meets a missing close it needs, has no label (null), never a guess.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import polars as pl

CLASSES = ("buy", "hodl", "sell")
VOL_WINDOW = 20
TARGET_COLUMNS = ("next_return", "forward_return", "label")
"""What :func:`label` adds that looks ahead of the decision day: never a feature."""


@dataclass(frozen=True)
class LabelConfig:
    """How a label is defined.

    Attributes:
        horizon: days from the decision close to the close that decides the label.
        band: the dead band: a log return (fixed) or a multiple of the horizon's volatility.
        band_kind: ``fixed`` or ``volatility``.
        method: ``horizon`` (the return at the horizon) or ``triple_barrier``.
    """

    horizon: int = 1
    band: float = 0.01
    band_kind: Literal["fixed", "volatility"] = "fixed"
    method: Literal["horizon", "triple_barrier"] = "horizon"

    def __post_init__(self) -> None:
        if not 1 <= self.horizon <= 365:
            msg = f"horizon must be 1..365 days, got {self.horizon}"
            raise ValueError(msg)
        if not self.band >= 0:
            msg = f"band must be >= 0, got {self.band}"
            raise ValueError(msg)
        if self.band_kind not in ("fixed", "volatility"):
            msg = f"band_kind must be 'fixed' or 'volatility', got {self.band_kind!r}"
            raise ValueError(msg)
        if self.method not in ("horizon", "triple_barrier"):
            msg = f"method must be 'horizon' or 'triple_barrier', got {self.method!r}"
            raise ValueError(msg)

    @property
    def key(self) -> str:
        """A short stable key of the configuration (part of a training set's identity)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def label(spine: pl.DataFrame, config: LabelConfig) -> pl.DataFrame:
    """``spine`` (``date``, ``close``; one row per calendar day, sorted) plus the label.

    Adds ``next_return`` (the next day's log return, what a position held over the next day
    earns), ``forward_return`` (to the horizon), ``band`` and ``label``.
    """
    h = config.horizon
    logc = pl.col("close").log()
    vol = logc.diff().rolling_std(VOL_WINDOW)
    band = (pl.lit(config.band) * vol * np.sqrt(h) if config.band_kind == "volatility"
            else pl.lit(config.band))
    frame = spine.sort("date").with_columns(
        next_return=logc.shift(-1) - logc,
        forward_return=logc.shift(-h) - logc,
        band=band,
    )
    if config.method == "horizon":
        r, b = pl.col("forward_return"), pl.col("band")
        decided = (pl.when(r.is_null() | b.is_null()).then(None)
                   .when(r > b).then(pl.lit("buy"))
                   .when(r < -b).then(pl.lit("sell"))
                   .otherwise(pl.lit("hodl")))
        return frame.with_columns(label=decided)
    return frame.with_columns(label=_triple_barrier(frame, h))


def _triple_barrier(frame: pl.DataFrame, horizon: int) -> pl.Series:
    """First barrier touched by the daily closes within the horizon (vectorised over days)."""
    logc = np.log(frame["close"].to_numpy(allow_copy=True).astype(float))
    bands = frame["band"].to_numpy(allow_copy=True).astype(float)
    n = len(logc)
    out = np.full(n, "", dtype="<U4")  # "": no label (an object array of None would not cast)
    decided = np.zeros(n, dtype=bool)
    complete = np.isfinite(logc) & np.isfinite(bands)
    for step in range(1, horizon + 1):  # horizon steps, each over all days at once
        ahead = np.full(n, np.nan)
        ahead[: max(n - step, 0)] = logc[step:]  # nothing ahead once step >= n
        complete &= np.isfinite(ahead)
        move = ahead - logc
        up = complete & ~decided & (move > bands)
        down = complete & ~decided & (move < -bands)
        out[up], out[down] = "buy", "sell"
        decided |= up | down
    out[complete & ~decided] = "hodl"
    labelled = pl.Series("label", out)
    return labelled.set(labelled == "", None)  # null where no label, as the horizon method


def class_balance(labels: pl.Series) -> dict[str, float]:
    """Share of each class among the labelled days (and how many days have a label)."""
    known = labels.drop_nulls()
    n = known.len()
    shares = {c: float((known == c).sum()) / n if n else 0.0 for c in CLASSES}
    return {**shares, "labelled_days": n}
