"""Spark twins of the heavy transforms (issue 11): same columns, types and values as polars."""
