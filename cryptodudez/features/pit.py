"""The feature store's one point-in-time join.

A feature row has an ``event_time`` (the instant its value describes, for example the end of
the day it aggregates) and an ``available_at`` (the instant the platform could first know it:
never earlier than ``event_time``; later for late or corrected rows). At a decision time
``T`` the join gives, per entity, the row with the latest ``event_time`` among the rows whose
``available_at <= T`` (ties: the latest ``available_at``, so a correction wins once it is
known), and null when that row's ``event_time`` is older than ``T - ttl``.

That is not one ``join_asof``: an as-of join on ``available_at`` returns the row that became
known last, which for a late row is an *older* event. So the view is first turned into its
knowledge timeline (for each availability instant, the best row known so far: a running
maximum of ``event_time`` per entity), and the spine is as-of joined to that timeline,
backward on ``available_at`` (equal instants match). Both sides are sorted explicitly; the
TTL is applied to ``event_time`` after the join. ``tests/unit/test_pit.py`` compares it with a
brute-force reference on generated data (equal timestamps, expiry, late rows, unsorted input).
"""

from collections.abc import Sequence
from datetime import timedelta

import polars as pl

_IDX = "__pit_row"
_BEST = "__pit_best"
_KNOWN = "__pit_known_at"


class PointInTimeError(ValueError):
    """A view that cannot be joined point in time (a row known before it happened)."""


def knowledge_timeline(view: pl.DataFrame, *, by: Sequence[str], event_time: str,
                       available_at: str) -> pl.DataFrame:
    """Per entity and availability instant, the index of the best row known by then.

    Returns ``by`` columns, ``__pit_known_at`` and ``__pit_best`` (a row index into
    ``view``), sorted by ``__pit_known_at`` (the order ``join_asof`` needs).
    """
    early = view.filter(pl.col(available_at) < pl.col(event_time)).height
    if early:
        msg = (f"{early} feature rows are available before their event time "
               f"({available_at} < {event_time}): a row cannot be known before it happens")
        raise PointInTimeError(msg)
    keys = [*by]
    ordered = view.select(*keys, event_time, available_at).with_row_index(_IDX).sort(
        [*keys, available_at, event_time, _IDX])
    over = keys or None
    best_event = pl.col(event_time).cum_max()
    is_best = pl.col(event_time) == (best_event.over(over) if over else best_event)
    best = pl.when(is_best).then(pl.col(_IDX)).forward_fill()
    timeline = ordered.with_columns((best.over(over) if over else best).alias(_BEST))
    # Several rows known at the same instant: the last one (after the sort) is the state.
    return (timeline.unique([*keys, available_at], keep="last", maintain_order=True)
            .select(*keys, pl.col(available_at).alias(_KNOWN), _BEST)
            .sort(_KNOWN))


def point_in_time_join(spine: pl.DataFrame, view: pl.DataFrame, *, at: str,
                       event_time: str, available_at: str, ttl: timedelta,
                       by: Sequence[str] = (), columns: Sequence[str] | None = None,
                       prefix: str = "") -> pl.DataFrame:
    """``spine`` (any order, rows kept as given) with ``view``'s values as of ``spine[at]``.

    Args:
        spine: decision rows; ``at`` is the decision instant (UTC), ``by`` the entity keys.
        view: feature rows with ``by``, ``event_time``, ``available_at`` and the values.
        at: the spine's decision-time column.
        event_time: the view's event-time column.
        available_at: the view's availability-time column.
        ttl: how old (by event time) a row may be at the decision time and still be used.
        by: entity key columns present in both frames (empty: one entity).
        columns: the view's value columns to attach (default: all others).
        prefix: prefix for the attached value columns.

    Returns:
        The spine, its row count and order unchanged (the spine never shrinks), plus the
        value columns and ``<prefix><event_time>`` (null where nothing valid was known).
    """
    keys = list(by)
    values = list(columns) if columns is not None else [
        c for c in view.columns if c not in {*keys, event_time, available_at}]
    timeline = knowledge_timeline(view, by=keys, event_time=event_time,
                                  available_at=available_at)
    left = spine.select(*keys, at).with_row_index(_IDX).sort(at)
    joined = left.join_asof(timeline, left_on=at, right_on=_KNOWN, by=keys or None,
                            strategy="backward", check_sortedness=False)
    gathered = view.select(event_time, *values).with_row_index("__pit_src")
    picked = joined.join(gathered, left_on=_BEST, right_on="__pit_src", how="left")
    fresh = pl.col(event_time) >= pl.col(at) - pl.lit(ttl)
    attached = picked.sort(_IDX).select(
        *[pl.when(fresh).then(pl.col(c)).alias(f"{prefix}{c}") for c in [*values, event_time]])
    return pl.concat([spine, attached], how="horizontal")
