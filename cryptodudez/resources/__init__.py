"""Resource sets: the one place that chooses local or production resources."""

from typing import Any

from cryptodudez.lake.layout import CATALOG_FILE
from cryptodudez.resources.coingecko import CoinGecko, build_coingecko
from cryptodudez.resources.compute import Compute
from cryptodudez.resources.lake import Lake
from cryptodudez.resources.metastore import DuckDBMetastore, GlueMetastore, Metastore
from cryptodudez.resources.spark_jobs import EmrServerlessJobs, LocalSparkJobs, SparkJobs
from cryptodudez.resources.warehouse import Warehouse
from cryptodudez.settings import Settings

__all__ = ["CoinGecko", "Compute", "Lake", "Metastore", "SparkJobs", "Warehouse",
           "build_resources"]


def build_resources(settings: Settings) -> dict[str, Any]:
    """The complete resource set for ``settings``: local (folder + DuckDB) or S3 + Glue.

    CoinGecko is chosen apart from the lake: the offline twin (recorded answers) unless
    ``COINGECKO_API_KEY`` or ``COINGECKO_MODE=live`` selects the HTTP client. The
    ``spark-job`` engine's jobs run on EMR Serverless when its application is set, else in a
    local Spark; entry points are uploaded to the lake's ``code/``.
    """
    lake = Lake(uri=settings.lake, endpoint_url=settings.endpoint_url,
                region_name=settings.region)
    metastore: Metastore
    if settings.is_production:
        metastore = GlueMetastore(database=settings.glue_database, lake=lake,
                                  region_name=settings.region,
                                  endpoint_url=settings.endpoint_url)
    else:
        metastore = DuckDBMetastore(path=lake.path(CATALOG_FILE))
    spark_jobs: SparkJobs = LocalSparkJobs()
    if settings.emr_application_id:
        spark_jobs = EmrServerlessJobs(
            application_id=settings.emr_application_id,
            execution_role_arn=settings.emr_execution_role_arn,
            lake=lake,
            spark_submit_parameters=settings.emr_spark_submit_parameters,
            log_group=settings.emr_log_group,
            region_name=settings.region, endpoint_url=settings.endpoint_url)
    return {"lake": lake, "metastore": metastore, "spark_jobs": spark_jobs,
            "coingecko": build_coingecko(settings.coingecko_env),
            "warehouse": Warehouse(path=settings.warehouse_path),
            "compute": Compute(engine=settings.engine, engines=dict(settings.engines))}
