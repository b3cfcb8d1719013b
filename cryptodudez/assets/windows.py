"""The time window of a partitioned run, as every time-partitioned asset reads it."""

from datetime import datetime

import dagster as dg


def run_window(context: dg.AssetExecutionContext, *, unit: str) -> tuple[datetime, datetime]:
    """The run's partition window (start, end); a reversed range is refused naming it.

    Dagster accepts ``--partition-range 2023...2020`` and gives a window that ends before
    it starts: the stock features raised an ``IndexError``, CoinGecko's request builder a
    ``ValueError`` with a stack trace (QA walkthroughs), and the feature store's years
    found no year to build.
    """
    window = context.partition_time_window
    if window.end <= window.start:
        keys = context.partition_key_range
        msg = (f"the {unit} range {keys.start}...{keys.end} is reversed: ask for "
               f"{keys.end}...{keys.start}")
        raise dg.Failure(description=msg, allow_retries=False)
    return window.start, window.end
