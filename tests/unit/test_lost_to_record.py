"""The metastore's record of which partitions' rows lost to which: the same in both catalogues.

It is what lets a delivery replaced by a new version give back the rows its previous version
had superseded (``Metastore.beaten_by``, used by the ``lake_ingest`` asset). The Glue
catalogue keeps it as Parquet in the lake, so a local lake exercises it without AWS.
"""

from pathlib import Path

import polars as pl
import pytest

from cryptodudez.resources.lake import Lake
from cryptodudez.resources.metastore import (
    LOST_TO_SCHEMA,
    DuckDBMetastore,
    GlueMetastore,
    Metastore,
)


def _pairs(*pairs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(list(pairs), schema=LOST_TO_SCHEMA, orient="row")


@pytest.fixture(params=["duckdb", "glue"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Metastore:
    if request.param == "duckdb":
        return DuckDBMetastore(path=str(tmp_path / "catalog.duckdb"))
    return GlueMetastore(database="unused", lake=Lake(uri=str(tmp_path / "lake")))


def test_a_new_version_forgets_what_it_lost_to_and_others_are_added(store: Metastore) -> None:
    def record(key: str, lost_to: pl.DataFrame, *, new_version: bool = True) -> None:
        store.record_ingested(key, version="v", sha256="s", run_id="r",
                              own_superseded={} if new_version else None, lost_to=lost_to)

    assert store.beaten_by("b") == []
    record("a", _pairs())
    record("b", _pairs(("a", "b")))          # b superseded rows of a
    record("c", _pairs(("c", "b"), ("a", "c")))  # c lost rows to b, superseded rows of a
    assert store.beaten_by("b") == ["a", "c"]
    assert store.beaten_by("c") == ["a"]
    assert store.beaten_by("a") == []
    record("a", _pairs(("a", "c")))          # a ingested again: it now lost to c alone
    assert store.beaten_by("b") == ["c"]
    assert store.beaten_by("c") == ["a"]
    record("c", _pairs(), new_version=False)  # an unchanged file keeps its record
    assert store.beaten_by("b") == ["c"]
    record("c", _pairs())                    # a new version of c lost nothing
    assert store.beaten_by("b") == []
    assert store.beaten_by("c") == ["a"]     # what c beat stays until a is ingested again
