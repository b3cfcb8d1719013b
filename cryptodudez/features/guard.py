"""The leakage guard: a feature row must not change when the future is removed.

For a cutoff day ``d``, the store is rebuilt from inputs truncated at ``d``'s decision time
(bars up to ``d``, tweets up to ``d`` 23:59:59 UTC) and its rows for the last days up to
``d`` are compared with the full build. A feature computed from tomorrow's price (or any
later data) differs at the cutoff (it is null or another number there), so it is named here.
This tests what the features *are*, not what their metadata claims.

The truncated rebuild starts ``WINDOW_DAYS`` before the cutoff (every window the store uses
is far shorter), so each cutoff costs a small build, not a full one.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from cryptodudez.features.build import Inputs

WINDOW_DAYS = 400
COMPARED_DAYS = 30


class LeakageError(AssertionError):
    """A feature uses data from after its decision time."""


def leaking_columns(build: Callable[[Inputs], pl.DataFrame], inputs: Inputs,
                    full: pl.DataFrame, cutoffs: Sequence[date]) -> dict[str, list[str]]:
    """Columns whose values at or before a cutoff change when later data is removed.

    Args:
        build: the feature build (inputs -> one row per spine ``date``).
        inputs: the whole inputs.
        full: ``build(inputs)``, computed once by the caller.
        cutoffs: decision days to test.

    Returns:
        For each leaking column, the cutoffs where it changed (empty: no leak found).
    """
    leaks: dict[str, list[str]] = {}
    for cutoff in cutoffs:
        at = datetime.combine(cutoff, time(23, 59, 59), UTC)
        start = cutoff - timedelta(days=WINDOW_DAYS)
        truncated = build(inputs.until(at).since(start))
        window = (pl.col("date") > cutoff - timedelta(days=COMPARED_DAYS)) & (
            pl.col("date") <= cutoff)
        ref = full.filter(window).sort("date")
        past = ref.select("date").join(truncated, on="date", how="left",
                                       maintain_order="left")
        for column in ref.columns:
            if column not in past.columns or not _same(ref[column], past[column]):
                leaks.setdefault(column, []).append(cutoff.isoformat())
    return leaks


def _same(a: pl.Series, b: pl.Series) -> bool:
    if a.len() != b.len() or not a.is_null().equals(b.is_null()):
        return False
    if a.dtype.is_float():
        x, y = a.drop_nulls(), b.drop_nulls()
        both_nan = x.is_nan() & y.is_nan()
        close = ((x - y).abs() <= 1e-9 * (x.abs() + 1)) | both_nan
        return bool(close.all())
    return a.equals(b)
