"""``cryptodudez coingecko --coin bitcoin --from 2022-01-01 --to 2022-03-31``.

Runs the CoinGecko price job for a range of UTC days in this process, as one recorded
Dagster run on the configured instance (``DAGSTER_HOME``), so it shows in the UI like a
backfill of that range: one run, one request to CoinGecko. A bad argument or setting raises
``ValueError`` with a one-line message (the CLI prints it and exits with status 2), before
any run: with the offline twin, a recording that cannot be read, or a range it does not
cover. The live API's coverage is not known up front: a range beyond the plan fails the run.
"""

import base64
import re
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from cryptodudez.assets.coingecko import (
    COIN_ASSETS,
    COINGECKO_JOB,
    FIRST_DAY,
    coingecko_days,
)
from cryptodudez.cli import CHART_FOLDER, CliError, echo, ensure_dagster_home
from cryptodudez.days import parse_day
from cryptodudez.definitions import build_definitions
from cryptodudez.resources.coingecko import OfflineCoinGecko
from cryptodudez.run_outcome import QUIET, outcome, step_errors
from cryptodudez.settings import Settings

_SUMMARY = ("prices_served", "prices_changed", "request_window", "warmup_days_absent",
            "first_trailing_mean", "tables")


def parse_range(coin: str, start: str, end: str) -> tuple[date, date]:
    """The first and last day of a run, checked against the coins and days that exist.

    Raises:
        ValueError: a coin without a price asset, a date that is not ``YYYY-MM-DD``, an
            empty range, or a day before the partitions start or not yet complete.
    """
    if coin not in COIN_ASSETS:
        known = ", ".join(sorted(COIN_ASSETS))
        msg = (f"--coin {coin!r}: no price asset for it (known CoinGecko ids: {known}; "
               "give an id, not a symbol)")
        raise ValueError(msg)
    days = []
    for flag, text in (("--from", start), ("--to", end)):
        try:
            days.append(parse_day(text))
        except ValueError:
            msg = f"{flag} {text!r}: not a date (YYYY-MM-DD)"
            raise ValueError(msg) from None
    first, last = days
    if last < first:
        msg = f"--to {last} is before --from {first}"
        raise ValueError(msg)
    if first < date.fromisoformat(FIRST_DAY):
        msg = f"--from {first}: the daily partitions start on {FIRST_DAY}"
        raise ValueError(msg)
    newest = coingecko_days.get_last_partition_key()
    if newest is None or last > date.fromisoformat(newest):
        msg = (f"--to {last}: the last complete UTC day is {newest} (a day's price is "
               "fetched once it has ended)")
        raise ValueError(msg)
    return first, last


def check_recording(coingecko: object, first: date, last: date) -> None:
    """With the offline twin, refuse an unreadable recording or days it does not cover.

    Any other source (the live API) is left to the run.

    Raises:
        ValueError: the recording is missing, not a daily-price CSV or holds a price that
            is not positive and finite, or ``first..last`` reaches outside the days it covers.
    """
    if not isinstance(coingecko, OfflineCoinGecko):
        return
    try:
        covered_first, covered_last = coingecko.recorded_days()
    except OSError as exc:  # missing, a folder, unreadable: a bad setting like the others
        raise ValueError(str(exc)) from None
    if first < covered_first or last > covered_last:
        msg = (f"--from {first} --to {last}: the offline CoinGecko recording "
               f"{coingecko.prices_csv} covers {covered_first}..{covered_last} only (set "
               "COINGECKO_RECORDING to another, or COINGECKO_API_KEY for the live API)")
        raise ValueError(msg)


def run_coingecko_cli(settings: Settings, coin: str, start: str, end: str, *,
                      instance: dg.DagsterInstance | None = None,
                      definitions: dg.Definitions | None = None) -> int:
    """Run the price job for ``coin`` from ``start`` to ``end`` and print a short summary.

    Args:
        settings: the platform's settings (resources, ``DAGSTER_HOME``).
        coin: the CoinGecko id (``bitcoin``).
        start: the first UTC day, ``YYYY-MM-DD``.
        end: the last UTC day, ``YYYY-MM-DD``.
        instance: the Dagster instance (default: the one in ``DAGSTER_HOME``).
        definitions: the definitions holding the job (default: the platform's).

    Returns:
        0 when the run and its checks succeeded, else 1.

    Raises:
        ValueError: a bad argument or CoinGecko setting (see ``check_recording``), in one
            line.
    """
    first, last = parse_range(coin, start, end)
    defs = build_definitions(settings) if definitions is None else definitions
    check_recording((defs.resources or {}).get("coingecko"), first, last)
    if instance is None:
        ensure_dagster_home(settings)
        instance = dg.DagsterInstance.get()
    job = defs.resolve_job_def(COINGECKO_JOB)
    started = time.perf_counter()
    echo(f"coingecko: {coin}/usd daily prices {first}..{last} ({(last - first).days + 1} "
         "days, one run) ...")
    result = job.execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET,
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": last.isoformat(),
              "cryptodudez/trigger": "cli"})
    echo(f"  {outcome(result, started).splitlines()[0]}")
    mats = [m for m in result.asset_materializations_for_node(COIN_ASSETS[coin])
            if "run_days" in m.metadata]
    if mats:
        metadata = mats[-1].metadata
        for key in _SUMMARY:
            echo(f"  {key.replace('_', ' ')}: {metadata[key].value}")
    for check in result.get_asset_check_evaluations():
        echo(f"  check {check.check_name}: {'passed' if check.passed else 'FAILED'}"
             + ("" if check.passed else f" ({check.metadata['failing_rows'].value} rows)"))
    for line in step_errors(result):
        echo(f"  error: {line}")
    if mats and "chart" in mats[-1].metadata:
        echo(f"  chart: {write_chart(settings, coin, mats[-1].metadata)}")
    return 0 if result.success else 1


def chart_path(settings: Settings, coin: str, days: str) -> Path:
    """Where the chart of ``coin`` over ``days`` (``first..last``) is written.

    In the ``charts/`` folder beside the warehouse (``<lake>/charts/`` by default): the
    warehouse is a local file even for an S3 lake, and the chart is drawn from its rows.
    """
    first, _, last = days.partition("..")
    return Path(settings.warehouse_path).parent / CHART_FOLDER / f"{coin}_usd_{first}_{last}.png"


_PNG_DATA = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


def write_chart(settings: Settings, coin: str, metadata: Mapping[str, Any]) -> Path:
    """Write the run's chart (the PNG its ``chart`` metadata shows in the UI) to a file."""
    path = chart_path(settings, coin, str(metadata["run_days"].value))
    png = _PNG_DATA.search(str(metadata["chart"].value))
    if png is None:
        msg = f"the run's chart metadata holds no PNG to write to {path}"
        raise CliError(msg)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(png[1]))
    except OSError as exc:
        msg = f"{path}: cannot write the chart there ({exc.strerror or exc})"
        raise CliError(msg) from None
    return path

