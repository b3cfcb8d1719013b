"""Bitcoin's daily USD price from CoinGecko and its 5-day moving average, as a Dagster asset.

Thin: the job is :mod:`cryptodudez.coingecko.job` (Dagster-free). ``bitcoin_prices`` is
partitioned by UTC day from 2022-01-01; a backfill of a range is one run
(``BackfillPolicy.single_run``) and so one request to CoinGecko for the whole range. The
rows go to the warehouse (``coingecko_prices_daily``, ``coingecko_price_ma_daily``), not
to the lake's catalogue.
"""

import warnings
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from cryptodudez.assets.eth import png_markdown
from cryptodudez.assets.windows import run_window
from cryptodudez.checks.tables import markdown_table, partitioned
from cryptodudez.coingecko import job
from cryptodudez.coingecko.chart import moving_average_chart
from cryptodudez.coingecko.prices import (
    MOVING_AVERAGE_TABLE,
    PRICES_TABLE,
    TABLES_DDL,
    WARMUP_DAYS,
)
from cryptodudez.resources.coingecko import CoinGecko
from cryptodudez.resources.warehouse import Warehouse

FIRST_DAY = "2022-01-01"  # the brief's first quarter of 2022 starts the partitions
BITCOIN_PRICES = "bitcoin_prices"
COINGECKO_JOB = "coingecko_prices"
COIN, CURRENCY = "bitcoin", "usd"
# The coins with a price asset: CoinGecko API id -> asset key. An id, never a symbol
# (symbols are shared: find_coin refuses an ambiguous one).
COIN_ASSETS = {COIN: BITCOIN_PRICES}

coingecko_days = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, timezone="UTC")

BITCOIN_PRICE_CHECKS = partitioned([
    dg.AssetCheckSpec(
        "bitcoin_prices_rows_accounted", asset=BITCOIN_PRICES, blocking=True,
        description="Every day of the run has a stored price, and the moving-average table "
                    "has exactly one row per calendar day from the first to the last stored "
                    "price, carrying that day's stored price (null on a day without one)."),
    dg.AssetCheckSpec(
        "bitcoin_prices_moving_average_matches_sql", asset=BITCOIN_PRICES, blocking=True,
        description="The stored trailing and centred 5-day means and window counts equal "
                    "DuckDB window functions (RANGE frames over calendar days) recomputed "
                    "from the stored prices."),
    dg.AssetCheckSpec(
        "bitcoin_prices_within_request_window", asset=BITCOIN_PRICES, blocking=True,
        description="Each stored price of the run lies inside the window of the request "
                    "that stored it, that window runs from 00:00:00 to 23:59:59 UTC, and "
                    "the price is positive and finite."),
], coingecko_days)


def _days(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The run's first and last day (a reversed range is refused, :func:`run_window`)."""
    start, end = run_window(context, unit="day")
    return start.date(), end.date() - timedelta(days=1)


def _check(name: str, audit: job.Audit) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name, passed=audit.passed,
        metadata={"failing_rows": audit.failing, "rows_checked": audit.checked,
                  "sample": dg.MetadataValue.md(markdown_table(audit.sample))})


def _daily_asset(**kwargs: Any) -> Any:
    """``dg.asset`` partitioned by UTC day, one run per backfill range.

    BackfillPolicy is beta in Dagster 1.13; one run (and one CoinGecko request) for a
    range is what a backfill needs, so the warning would only be noise on every start.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy")
        return dg.asset(partitions_def=coingecko_days,
                        backfill_policy=dg.BackfillPolicy.single_run(),
                        group_name="coingecko", kinds={"duckdb", "polars"}, **kwargs)


@_daily_asset(check_specs=BITCOIN_PRICE_CHECKS)
def bitcoin_prices(context: dg.AssetExecutionContext, coingecko: dg.ResourceParam[CoinGecko],
                   warehouse: Warehouse) -> dg.MaterializeResult:
    """Bitcoin's daily USD price (CoinGecko, 00:00 UTC points) and its 5-day moving average.

    Stored in the warehouse: ``coingecko_prices_daily`` (one price per coin, currency and
    day, with the request window and fetch time) and ``coingecko_price_ma_daily`` (per
    calendar day: the trailing 5-day mean, its window count and, in its own column, the
    centred mean). Warm-up days the source cannot serve are recorded absent, never filled:
    the mean stays null until 5 days are priced.
    """
    first, last = _days(context)
    with warehouse.writing(TABLES_DDL) as con:
        run = job.run_prices(coingecko, con, coin=COIN, currency=CURRENCY, first_day=first,
                             last_day=last, fetched_at=datetime.now(tz=UTC))
    if run.warmup_absent:
        context.log.warning(
            f"warm-up days {run.warmup_absent[0]}..{run.warmup_absent[-1]} not served by the "
            "source: the trailing mean stays null until 5 days are priced")
    # What readers of the warehouse now see, judged apart from the code that wrote it.
    with warehouse.reading(TABLES_DDL) as con:
        checks = [
            _check("bitcoin_prices_rows_accounted", job.audit_rows_accounted(
                con, coin=run.coin, currency=CURRENCY, first_day=first, last_day=last)),
            _check("bitcoin_prices_moving_average_matches_sql", job.audit_moving_average(
                con, coin=run.coin, currency=CURRENCY)),
            _check("bitcoin_prices_within_request_window", job.audit_request_windows(
                con, coin=run.coin, currency=CURRENCY, first_day=first, last_day=last)),
        ]
        rows = job.read_chart_rows(con, coin=run.coin, currency=CURRENCY, first_day=first,
                                   last_day=last)
    png = moving_average_chart(rows, first_day=first, warmup_absent=run.warmup_absent,
                               warmup_days=WARMUP_DAYS)
    # The run's summary and chart go on the range's last day only: Dagster would otherwise
    # copy them (the chart is about 80 kB) onto every day's materialisation.
    for key in context.partition_keys:
        context.add_asset_metadata({"dagster/row_count": 1}, partition_key=key)
    context.add_asset_metadata({
        "run_days": f"{first}..{last}",
        "request_window": f"{run.window_start.isoformat()}..{run.window_end.isoformat()}",
        "prices_served": run.served,
        "prices_changed": run.changed,
        "warmup_days_absent": ", ".join(str(d) for d in run.warmup_absent) or "none",
        "first_trailing_mean": (f"{run.first_full_window}: {run.first_full_mean:.2f}"
                                if run.first_full_mean is not None else "none"),
        "average_rows": run.average_rows,
        "tables": f"{PRICES_TABLE}, {MOVING_AVERAGE_TABLE} in {warehouse.path}",
        "preview": dg.MetadataValue.md(markdown_table(rows.tail(5))),
        "chart": png_markdown("Bitcoin price and trailing 5-day mean", png),
    }, partition_key=context.partition_keys[-1])
    return dg.MaterializeResult(check_results=checks)


coingecko_job = dg.define_asset_job(
    COINGECKO_JOB,
    selection=dg.AssetSelection.assets(bitcoin_prices),
    partitions_def=coingecko_days,
    description="Fetch, validate and store Bitcoin's daily USD prices for a range of days, "
                "then recompute the 5-day moving averages.",
)

# Stopped by default: the offline twin serves only its recording (Q1 2022), so a daily
# schedule is only useful with a live key (COINGECKO_API_KEY). At 01:00 UTC, the day before
# has its 00:00 point.
coingecko_schedule = dg.build_schedule_from_partitioned_job(
    coingecko_job, hour_of_day=1, minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
