"""Spark twins of the heavy transforms (issue 11): same columns, types and values as polars."""

RESULT_KEY = "cryptodudez_result"
"""The key of the custom Dagster Pipes message in which a job entry point reports what it
wrote (``cryptodudez.resources.spark_jobs`` reads it). This package's ``__init__`` imports
nothing, so the Dagster side can read this without pyspark."""
