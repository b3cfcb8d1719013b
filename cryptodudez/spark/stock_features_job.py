"""``spark-submit`` entry point: the stock features of a date range, Parquet in and out.

Reads the validated bars (a Parquet dataset: a folder or an ``s3://`` prefix), computes the
features of the rows dated in ``[--start, --end)`` with each symbol's 29 earlier rows as
lookback, and writes them (all input columns, the two features and ``_row_in_symbol``, as
the polars asset) as Parquet partitioned by ``year`` (``year=YYYY/part-*.parquet``),
replacing only the years written. The same code runs locally (``--local``) and on EMR
Serverless (see docs/spark.md).
"""

import argparse
from collections.abc import Sequence

from pyspark.sql import functions as F  # noqa: N812  # the usual Spark spelling

from cryptodudez.spark.session import cluster_session, local_session
from cryptodudez.spark.stock_features import features_for_range


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; returns the number of feature rows written."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True, help="Parquet dataset of validated bars")
    parser.add_argument("--output", required=True, help="Parquet dataset of the features")
    parser.add_argument("--start", required=True, help="first date, YYYY-MM-DD (inclusive)")
    parser.add_argument("--end", required=True, help="last date, YYYY-MM-DD (exclusive)")
    parser.add_argument("--local", action="store_true", help="a local[2] session")
    args = parser.parse_args(argv)
    spark = local_session(app="stock-features") if args.local else cluster_session(
        app="stock-features")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    bars = spark.read.parquet(args.input)
    features = (features_for_range(bars, start=args.start, end=args.end)
                .withColumn("year", F.substring("Date", 1, 4))
                .cache())
    rows = features.count()
    features.write.mode("overwrite").partitionBy("year").parquet(args.output)
    features.unpersist()
    return rows


if __name__ == "__main__":
    main()
