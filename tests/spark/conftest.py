"""One local SparkSession for the whole test run (per xdist worker: the tests share a group)."""

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from cryptodudez.spark.session import local_session


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """A ``local[2]`` session; the tests skip, with the reason, when Java cannot start."""
    try:
        session = local_session(app="cryptodudez-tests", cores=2)
    except Exception as exc:  # any launch failure means: no Spark here
        pytest.skip(f"Spark cannot start here: {exc!r}")
    yield session
    session.stop()
