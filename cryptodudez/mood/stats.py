"""Correlation statistics for price returns against tweet sentiment, per coin, bucket and lag.

Every statistic (:class:`Stat`) carries the number of complete pairs ``n``, Pearson r and
Spearman rho with their two-sided p-values, a 95 % Fisher-z confidence interval for r, a 95 %
seeded moving-block bootstrap interval for r, and (in :func:`correlation_table`) a
Benjamini-Hochberg q-value across everything asked. Too few points, or a constant series, give
a ``Stat`` whose numbers are all ``None`` and whose ``null_reason`` says why: never a number.
A series whose bootstrap cannot give an interval keeps its other numbers; its bootstrap bounds
are ``None`` and ``null_reason`` says why. A number is never missing without a reason.

r, rho and the p-values are computed here (centred sums; average ranks; the exact t test,
written as a regularized incomplete beta function), so that ``scipy.stats`` can serve as the
independent reference in the tests. The p-values and the Fisher interval assume independent
pairs; time buckets are autocorrelated, which makes them too optimistic. The block bootstrap
resamples runs of consecutive pairs (``x`` and ``y`` together), keeping the short-range
dependence, and is the interval to read. All values are plain ``float``/``int``/``str``/``None``
(no NaN), so results serialise to JSON as they are.
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from statistics import NormalDist

import numpy as np
import polars as pl
from scipy import special

from cryptodudez.mood.series import bucketed, join_buckets, parse_bucket

Values = Sequence[float | None] | pl.Series | np.ndarray

Z_975 = NormalDist().inv_cdf(0.975)
MIN_POINTS = 4  # the Fisher interval needs n - 3 > 0
# A side is constant when its sum of squared deviations is at most this share of the sum of
# squares it was computed from: what is left is rounding (means of different tweets that are
# equal on paper differ in the last bits), not variation. See :func:`varies`.
FLAT = 1e-10
METHODS = ("pearson", "spearman")  # whose p-values the q-values adjust

TABLE_SCHEMA = {
    "coin": pl.String, "bucket": pl.String, "lag": pl.Int64, "tolerance_buckets": pl.Int64,
    "n": pl.Int64, "pearson_r": pl.Float64, "pearson_p": pl.Float64,
    "spearman_rho": pl.Float64, "spearman_p": pl.Float64, "fisher_lo": pl.Float64,
    "fisher_hi": pl.Float64, "bootstrap_lo": pl.Float64, "bootstrap_hi": pl.Float64,
    "block": pl.Int64, "q_value": pl.Float64, "null_reason": pl.String,
}


@dataclass(frozen=True)
class Stat:
    """One correlation between ``x`` (returns) and ``y`` (sentiment).

    Attributes:
        n: complete pairs used (pairs with a null or NaN on either side are dropped).
        pearson_r: Pearson correlation.
        pearson_p: two-sided p-value of r = 0 (t test, n - 2 degrees of freedom).
        spearman_rho: Spearman rank correlation (average ranks for ties).
        spearman_p: two-sided p-value of rho = 0 (the same t approximation as scipy).
        fisher_ci: 95 % interval for r, ``tanh(atanh(r) -/+ 1.96 / sqrt(n - 3))``.
        bootstrap_ci: 95 % percentile interval of r over moving-block bootstrap resamples.
        block: the bootstrap block length used.
        q_value: Benjamini-Hochberg q-value of ``pearson_p`` among the tests asked together.
        null_reason: why numbers are ``None``: all of them (too few pairs, a constant side), or
            only ``bootstrap_ci`` (the bootstrap gave up); ``None`` when every number is filled.
    """

    n: int
    pearson_r: float | None = None
    pearson_p: float | None = None
    spearman_rho: float | None = None
    spearman_p: float | None = None
    fisher_ci: tuple[float, float] | None = None
    bootstrap_ci: tuple[float, float] | None = None
    block: int | None = None
    q_value: float | None = None
    null_reason: str | None = None

    def as_dict(self) -> dict[str, int | float | str | None]:
        """The flat, JSON-ready form (intervals as ``*_lo``/``*_hi``)."""
        flat = asdict(self)
        for name, key in (("fisher", "fisher_ci"), ("bootstrap", "bootstrap_ci")):
            bounds = flat.pop(key)
            flat[f"{name}_lo"], flat[f"{name}_hi"] = bounds if bounds else (None, None)
        return flat


def _floats(values: Values) -> np.ndarray:
    series = values if isinstance(values, pl.Series) else pl.Series(values=values)
    return series.cast(pl.Float64, strict=False).to_numpy().astype(float)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    r = float((xc * yc).sum() / np.sqrt((xc * xc).sum() * (yc * yc).sum()))
    return min(1.0, max(-1.0, r))


def _p_value(r: float, n: int) -> float:
    """Two-sided p of the t test ``t = r sqrt((n-2)/(1-r^2))``, via I_{1-r^2}((n-2)/2, 1/2)."""
    return float(min(1.0, special.betainc((n - 2) / 2, 0.5, 1.0 - r * r)))


def _ranks(x: np.ndarray) -> np.ndarray:
    return pl.Series(values=x).rank("average").to_numpy().astype(float)


def fisher_ci(r: float, n: int) -> tuple[float, float]:
    """The 95 % Fisher-z interval ``tanh(atanh(r) -/+ z_0.975 / sqrt(n - 3))`` (n >= 4)."""
    if abs(r) >= 1.0:
        return (r, r)
    z, half = float(np.arctanh(r)), Z_975 / float(np.sqrt(n - 3))
    return (float(np.tanh(z - half)), float(np.tanh(z + half)))


def varies(squares_about_mean: np.ndarray | float, squares: np.ndarray | float) -> np.ndarray:
    """Whether a side varies: its sum of squared deviations exceeds ``FLAT`` of ``squares``.

    ``squares`` is the sum of squares of the numbers the deviations were computed from, so
    the rule is relative: it sees through rounding at any scale. The one rule for the whole
    series (:func:`correlate`) and for each bootstrap resample (:func:`block_bootstrap_ci`).
    """
    return np.asarray(squares_about_mean > FLAT * squares)


def default_block(n: int) -> int:
    """The smallest whole block length ``b`` with ``b**3 >= n`` (n**(1/3), rounded up)."""
    block = 1
    while block**3 < n:
        block += 1
    return block


def block_bootstrap_ci(x: np.ndarray, y: np.ndarray, *, block: int, n_boot: int,
                       seed: int) -> tuple[float, float] | None:
    """95 % percentile interval of Pearson r over moving-block bootstrap resamples.

    Each resample concatenates ``ceil(n / block)`` runs of ``block`` consecutive pairs, the
    runs starting at uniformly drawn positions ``0 .. n - block`` (``numpy`` Generator seeded
    with ``seed``), cut to ``n`` pairs. Resamples in which either side is constant
    (:func:`varies`: what is left of its variance is rounding of the prefix sums, far below
    the series' own) have no r and are left out; ``None`` when more than half of them are.

    A resample's r needs only its sums of x, y, x², y² and xy, and those are sums of its
    runs' sums: each run's is a difference of prefix sums (of the centred series), so a
    resample costs ``ceil(n / block)`` lookups, not ``n`` (``block`` times less work).
    """
    n = len(x)
    rng = np.random.default_rng(seed)
    runs = -(-n // block)
    starts = rng.integers(0, n - block + 1, size=(n_boot, runs))
    lengths = np.full(runs, block)
    lengths[-1] = n - block * (runs - 1)  # the last run is cut so the resample has n pairs
    xc, yc = x - x.mean(), y - y.mean()
    columns = np.stack([xc, yc, xc * xc, yc * yc, xc * yc], axis=1)  # (n, 5)
    prefix = np.concatenate([np.zeros((1, 5)), np.cumsum(columns, axis=0)])
    whole = prefix[block:] - prefix[:-block]  # sums of the run starting at each position
    last = prefix[starts[:, -1] + lengths[-1]] - prefix[starts[:, -1]]
    sums = whole[starts[:, :-1]].sum(axis=1) + last  # (n_boot, 5)
    sx, sy, sxx, syy, sxy = sums.T
    vx, vy = sxx - sx * sx / n, syy - sy * sy / n
    # The sums are differences of prefix sums, whose rounding scales with the series' own
    # sums of squares: a constant side leaves only that in its variance.
    usable = varies(vx, columns[:, 2].sum()) & varies(vy, columns[:, 3].sum())
    if usable.sum() * 2 < n_boot:
        return None
    r = np.clip((sxy - sx * sy / n)[usable] / np.sqrt(vx[usable] * vy[usable]), -1.0, 1.0)
    lo, hi = np.quantile(r, [0.025, 0.975])
    return (float(lo), float(hi))


def correlate(x: Values, y: Values, *, min_n: int = 8, seed: int = 0, block: int | None = None,
              n_boot: int = 2000, labels: tuple[str, str] = ("x", "y")) -> Stat:
    """The :class:`Stat` of ``x`` against ``y`` (equal lengths, aligned by position).

    Pairs with a null or NaN on either side are dropped first. With fewer than ``min_n``
    complete pairs, or either side constant (:func:`varies`: equal up to rounding), every
    number is ``None`` and ``null_reason`` says which (``labels`` name the two sides in it).
    When the bootstrap gives up (more than half its resamples have a constant side: the
    variation rests on a few pairs), the other numbers stay, ``bootstrap_ci`` is ``None`` and
    ``null_reason`` says why.

    Args:
        x: first series (returns).
        y: second series (sentiment).
        min_n: fewest complete pairs that give numbers (at least 4).
        seed: bootstrap seed; the same inputs and seed give the same interval.
        block: bootstrap block length (default :func:`default_block`; capped at ``n``).
        n_boot: bootstrap resamples.
        labels: names of ``x`` and ``y`` for ``null_reason``.
    """
    if min_n < MIN_POINTS:
        msg = f"min_n must be at least {MIN_POINTS}, not {min_n}"
        raise ValueError(msg)
    if n_boot < 1 or (block is not None and block < 1):
        msg = f"n_boot and block must be >= 1 (n_boot={n_boot}, block={block})"
        raise ValueError(msg)
    xs, ys = _floats(x), _floats(y)
    if len(xs) != len(ys):
        msg = f"{labels[0]} has {len(xs)} values and {labels[1]} {len(ys)}; they must be aligned"
        raise ValueError(msg)
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    n = int(keep.sum())
    if n < min_n:
        return Stat(n=n, null_reason=f"{n} complete pairs, fewer than min_n={min_n}")
    for label, side in zip(labels, (xs, ys), strict=True):
        if not varies(((side - side.mean()) ** 2).sum(), (side * side).sum()):
            return Stat(n=n, null_reason=f"{label} is constant over the {n} complete pairs")
    r = _pearson(xs, ys)
    rho = _pearson(_ranks(xs), _ranks(ys))
    used_block = min(block or default_block(n), n)
    interval = block_bootstrap_ci(xs, ys, block=used_block, n_boot=n_boot, seed=seed)
    return Stat(n=n, pearson_r=r, pearson_p=_p_value(r, n), spearman_rho=rho,
                spearman_p=_p_value(rho, n), fisher_ci=fisher_ci(r, n), bootstrap_ci=interval,
                block=used_block,
                null_reason=None if interval else (
                    f"no bootstrap interval: more than half of the {n_boot} resamples (block "
                    f"{used_block}) have {labels[0]} or {labels[1]} constant"))


def benjamini_hochberg(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg q-values, in the input order; ``None`` passes through.

    With the ``m`` non-null p-values ranked ``1..m`` ascending,
    ``q_(i) = min over j >= i of (m * p_(j) / j)``, capped at 1: monotone in p, equal p
    give equal q.

    Raises:
        ValueError: a p-value outside [0, 1] (or NaN).
    """
    present = [(i, p) for i, p in enumerate(pvalues) if p is not None]
    bad = [p for _, p in present if not 0.0 <= p <= 1.0]
    if bad:
        msg = f"p-values must lie in [0, 1]; got {bad[:5]}"
        raise ValueError(msg)
    ordered = sorted(present, key=lambda item: item[1])
    m = len(ordered)
    q: list[float | None] = [None] * len(pvalues)
    running = 1.0
    for rank in range(m, 0, -1):
        index, p = ordered[rank - 1]
        running = min(running, m * p / rank)
        q[index] = running
    return q


# The bucketed series of one coin on one grid: (price buckets, sentiment buckets).
SeriesOf = Callable[[str, str], tuple[pl.DataFrame, pl.DataFrame]]


def lagged_series(prices: pl.DataFrame, moods: pl.DataFrame, bucket: str, *,
                  tolerance_buckets: int, max_lag: int, min_n: int = 8, seed: int = 0,
                  block: int | None = None, n_boot: int = 2000) -> dict[int, Stat]:
    """:func:`lagged` from one coin's series already bucketed on ``bucket``'s grid."""
    if max_lag < 0 or tolerance_buckets < 0:
        msg = f"max_lag and tolerance_buckets must be >= 0 ({max_lag}, {tolerance_buckets})"
        raise ValueError(msg)
    tolerance = parse_bucket(bucket) * tolerance_buckets
    stats = {}
    for lag in range(-max_lag, max_lag + 1):
        frame = join_buckets(prices, moods, bucket, tolerance=tolerance, lag=lag)
        stats[lag] = correlate(frame["log_return"], frame["sentiment"], min_n=min_n, seed=seed,
                               block=block, n_boot=n_boot, labels=("log_return", "sentiment"))
    return stats


def lagged(trades: pl.DataFrame, sentiments: pl.DataFrame, coin: str, bucket: str, *,
           tolerance_buckets: int, max_lag: int, start: datetime | None = None,
           end: datetime | None = None, min_n: int = 8, seed: int = 0,
           block: int | None = None, n_boot: int = 2000) -> dict[int, Stat]:
    """Cross-correlation of ``coin``'s log returns with its sentiment for lags ``-k..k``.

    Lag ``L > 0`` means sentiment leads price: the sentiment as-of ``L`` buckets before the
    end of the bucket whose return it is paired with (``t - L`` against ``t``); ``L < 0``
    means price leads sentiment. Each lag is its own backward as-of join
    (:func:`cryptodudez.mood.series.merged` with ``lag=L``), not a row shift, so gaps in
    trading never turn a row offset into a different time offset. The tolerance is
    ``tolerance_buckets`` whole buckets. The buckets are computed once and joined per lag.

    Returns:
        ``{lag: Stat}`` for ``lag`` in ``-max_lag .. max_lag``, without q-values.
    """
    prices, moods = bucketed(trades, sentiments, coin, bucket, start=start, end=end)
    return lagged_series(prices, moods, bucket, tolerance_buckets=tolerance_buckets,
                         max_lag=max_lag, min_n=min_n, seed=seed, block=block, n_boot=n_boot)


def correlation_table(trades: pl.DataFrame, sentiments: pl.DataFrame, *, coins: Sequence[str],
                      buckets: Sequence[str], max_lag: int, tolerance_buckets: int,
                      start: datetime | None = None, end: datetime | None = None,
                      min_n: int = 8, seed: int = 0, block: int | None = None,
                      n_boot: int = 2000, method: str = "pearson") -> pl.DataFrame:
    """Every coin x bucket x lag, with q-values across all of them.

    One row per ``(coin, bucket, lag)`` in the order asked (see :func:`lagged` for the lag
    convention), with :class:`Stat`'s flat fields (:data:`TABLE_SCHEMA`). ``q_value`` is the
    Benjamini-Hochberg adjustment of the ``method``'s p-value (``pearson_p`` or
    ``spearman_p``) over all rows that have one, so asking more questions raises every q.
    Each series is one coin's: nothing is pooled.

    Raises:
        ValueError: empty or repeated coins or buckets (repeats would count a test twice),
            or an unknown method.
    """
    def series_of(coin: str, bucket: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        return bucketed(trades, sentiments, coin, bucket, start=start, end=end)

    return table_of(series_of, coins=coins, buckets=buckets, max_lag=max_lag,
                    tolerance_buckets=tolerance_buckets, min_n=min_n, seed=seed, block=block,
                    n_boot=n_boot, method=method)


def table_of(series_of: SeriesOf, *, coins: Sequence[str], buckets: Sequence[str],
             max_lag: int, tolerance_buckets: int, min_n: int = 8, seed: int = 0,
             block: int | None = None, n_boot: int = 2000,
             method: str = "pearson") -> pl.DataFrame:
    """:func:`correlation_table` from bucketed series, wherever they come from.

    ``series_of(coin, bucket)`` gives a coin's price and sentiment buckets on a grid: from
    raw events (:func:`correlation_table`) or from a stream's incremental aggregates.
    """
    if method not in METHODS:
        msg = f"method must be one of {list(METHODS)}, not {method!r}"
        raise ValueError(msg)
    for name, items in (("coins", coins), ("buckets", buckets)):
        if not items or len(set(items)) != len(items):
            msg = f"{name} must be non-empty and without repeats, not {list(items)}"
            raise ValueError(msg)
    keys: list[tuple[str, str, int]] = []
    stats: list[Stat] = []
    for coin in coins:
        for bucket in buckets:
            prices, moods = series_of(coin, bucket)
            for lag, stat in lagged_series(prices, moods, bucket,
                                           tolerance_buckets=tolerance_buckets,
                                           max_lag=max_lag, min_n=min_n, seed=seed,
                                           block=block, n_boot=n_boot).items():
                keys.append((coin, bucket, lag))
                stats.append(stat)
    qs = benjamini_hochberg([s.spearman_p if method == "spearman" else s.pearson_p
                             for s in stats])
    rows = [{"coin": coin, "bucket": bucket, "lag": lag, "tolerance_buckets": tolerance_buckets,
             **replace(stat, q_value=q).as_dict()}
            for (coin, bucket, lag), stat, q in zip(keys, stats, qs, strict=True)]
    return pl.DataFrame(rows, schema=TABLE_SCHEMA)
