"""Write docs/images/bitcoin_moving_average.png: Q1 2022 Bitcoin and its trailing 5-day mean.

Rendered by the job itself from the offline CoinGecko recording shipped in ``samples/``
(an in-memory DuckDB, no network, no Dagster), so the figure in docs/coingecko.md is the
asset's chart of the same days. ``--check`` exits 1 when the file differs from a fresh
render (Agg draws the same bytes for the same rows with the same matplotlib and FreeType).
"""

from datetime import UTC, date, datetime

import duckdb

from cryptodudez.coingecko import job
from cryptodudez.coingecko.chart import moving_average_chart
from cryptodudez.generated import write_or_check
from cryptodudez.resources.coingecko import OfflineCoinGecko
from cryptodudez.settings import PROJECT_DIR

OUT = PROJECT_DIR / "docs" / "images" / "bitcoin_moving_average.png"
FIRST, LAST = date(2022, 1, 1), date(2022, 3, 31)


def render() -> bytes:
    """The chart the ``bitcoin_prices`` asset draws for 2022-01-01..2022-03-31, offline."""
    with duckdb.connect() as con:
        run = job.run_prices(OfflineCoinGecko(), con, coin="bitcoin", currency="usd",
                             first_day=FIRST, last_day=LAST,
                             fetched_at=datetime.now(tz=UTC))
        rows = job.read_chart_rows(con, coin="bitcoin", currency="usd", first_day=FIRST,
                                   last_day=LAST)
    return moving_average_chart(rows, first_day=FIRST, warmup_absent=run.warmup_absent)


def main() -> int:
    """Write (or with ``--check`` verify) the chart."""
    return write_or_check(OUT, render, description=__doc__ or "",
                          command="python scripts/render_coingecko_chart.py")


if __name__ == "__main__":
    raise SystemExit(main())
