"""A PNG of a coin's daily price, its trailing 5-day mean and the warm-up days (headless).

Drawn like the platform's other charts (:mod:`cryptodudez.features.charts`): a
:class:`matplotlib.figure.Figure` on the Agg canvas, no pyplot state, no version tag in the
PNG, so the same rows give the same bytes.
"""

from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from cryptodudez.features.charts import _finished, new_figure

PRICE_COLOUR = "tab:blue"
AVERAGE_COLOUR = "tab:orange"
WARMUP_COLOUR = "tab:grey"


def moving_average_chart(rows: pl.DataFrame, *, first_day: date,
                         warmup_absent: Sequence[date] = (), warmup_days: int = 4,
                         title: str = "Bitcoin daily price (USD) and trailing 5-day mean",
                         ) -> bytes:
    """Price as a line, the trailing mean as a thicker line, warm-up days shaded.

    The warm-up span is the ``warmup_days`` before ``first_day``: fetched only to fill the
    first windows, never reported. When the source did not serve them (``warmup_absent``),
    the span is shaded all the same, labelled so, and stays empty: the mean starts where
    five priced days first exist.

    Args:
        rows: ``day``, ``price``, ``ma_5d_trailing`` (nulls are gaps), in any order.
        first_day: the first reported day.
        warmup_absent: warm-up days the source did not serve.
        warmup_days: how many days before ``first_day`` are warm-up.
        title: the chart title.

    Returns:
        The chart as PNG bytes.

    Raises:
        ValueError: if ``rows`` lacks a column or has no price.
    """
    missing = {"day", "price", "ma_5d_trailing"} - set(rows.columns)
    if missing:
        raise ValueError(f"moving_average_chart: columns {sorted(missing)} missing")
    if rows["price"].is_null().all():
        raise ValueError("moving_average_chart: no price to draw")
    rows = rows.sort("day")
    days = rows["day"].to_list()
    figure = new_figure()
    ax = figure.add_subplot()
    if warmup_days > 0:
        start = first_day - timedelta(days=warmup_days)
        served = "not served by the source" if warmup_absent else "fetched, not reported"
        # Daily points are stamped 00:00 UTC: the span covers the warm-up days' points and
        # ends at the first reported one.
        ax.axvspan(start, first_day, color=WARMUP_COLOUR, alpha=0.2,  # type: ignore[arg-type]
                   label=f"warm-up {start}..{first_day - timedelta(days=1)} ({served})")
        ax.set_xlim(min(start, days[0]), max(days[-1], first_day))
    ax.plot(days, rows["price"].to_list(), color=PRICE_COLOUR, linewidth=1.0,
            label="daily price (00:00 UTC)")
    ax.plot(days, rows["ma_5d_trailing"].to_list(), color=AVERAGE_COLOUR, linewidth=2.0,
            label="trailing 5-day mean (null until 5 priced days)")
    low, high = rows["price"].min(), rows["price"].max()
    assert isinstance(low, float) and isinstance(high, float)
    span = max(high - low, abs(high) * 0.01)
    ax.set_ylim(low - 0.05 * span, high + 0.35 * span)  # room for the legend, top left
    return _finished(figure, ax, title=title, ylabel="USD", log_scale=False)
