"""Security Name comes from the symbol directory whichever was ingested first.

An unzipped delivery lands every CSV as its own file, in any order: price files ingested
before ``symbols_valid_meta.csv`` must get their names when the directory is published, and
the tables must be the same as when the directory came first.
"""

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from cryptodudez.archives import iter_unpacked
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.definitions import build_definitions
from cryptodudez.ingest import ingest_members
from cryptodudez.lake.tables import PartitionWriter, refresh_security_names, symbol_directory
from cryptodudez.resources.lake import QUARANTINE, RAW, VALIDATED, Lake, partition_key_for
from cryptodudez.resources.metastore import Metastore
from cryptodudez.settings import Settings
from tests.helpers import QUIET, WriteNow

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
META_HEADER = ("Nasdaq Traded,Symbol,Security Name,Listing Exchange,Market Category,ETF,"
               "Round Lot Size,Test Issue,Financial Status,CQS Symbol,NASDAQ Symbol,NextShares")
META = "market/symbols_valid_meta.csv"
PRICES = {  # ZZZ is not in the directory: its name stays null
    "market/stocks/AAA.csv": f"{HEADER}\n2020-01-02,1,2,1,1,1,5\n2020-01-03,1,2,1,1,1,6\n",
    "market/etfs/BBB.csv": f"{HEADER}\n2020-01-02,3,4,3,3,3,7\n",
    "market/stocks/ZZZ.csv": f"{HEADER}\n2020-01-02,5,6,5,5,5,8\n",
}
DIRECTORY = {"AAA": "Alpha Inc", "BBB": "Beta ETF"}
NAMES = {"AAA": "Alpha Inc", "BBB": "Beta ETF", "ZZZ": None}


def _meta(names: dict[str, str]) -> str:
    return f"{META_HEADER}\n" + "".join(
        f"Y,{symbol},{name},Q,Q,N,100,N,N,{symbol},{symbol},N\n"
        for symbol, name in names.items())


def _write(folder: Path, files: dict[str, str]) -> dict[str, Path]:
    paths = {}
    for key, text in files.items():
        paths[key] = folder / key
        paths[key].parent.mkdir(parents=True, exist_ok=True)
        paths[key].write_text(text)
    return paths


def _lake(tmp_path: Path, name: str) -> dg.Definitions:
    return build_definitions(Settings(lake=str(tmp_path / name),
                                      dagster_home=str(tmp_path / f"{name}-home")))


def _land(defs: dg.Definitions, files: dict[str, Path], first: datetime) -> None:
    """Land ``files`` one second apart from ``first`` (the same instants in every lake)."""
    lake: Lake = defs.resources["lake"]
    for n, (key, path) in enumerate(sorted(files.items())):
        lake.land(path, key)
        stamp = first.timestamp() + n
        os.utime(lake.path(RAW, key), (stamp, stamp))


def _ingest(defs: dg.Definitions, instance: dg.DagsterInstance,
            keys: list[str]) -> dict[str, dg.ExecuteInProcessResult]:
    results = {}
    for key in keys:
        partition = partition_key_for(key)
        instance.add_dynamic_partitions("landed_files", [partition])
        results[key] = defs.resolve_job_def("ingest_landed_file").execute_in_process(
            partition_key=partition, instance=instance, run_config=QUIET, raise_on_error=False)
        assert results[key].success, key
    return results


def _tables(defs: dg.Definitions) -> dict[str, pl.DataFrame]:
    """Every table the delivery feeds, sorted, with lineage relative to the lake's root."""
    lake: Lake = defs.resources["lake"]
    out = {}
    for layer in (VALIDATED, QUARANTINE):
        for name in ("stock_prices", "symbols_meta"):
            frame = lake.read_table(layer, name)
            if frame.width:
                out[f"{layer}/{name}"] = frame.with_columns(
                    pl.col(c).str.replace(lake.url(), "<lake>", literal=True)
                    for c in ("_source", "source") if c in frame.columns).sort(pl.all())
    return out


def _names(defs: dg.Definitions) -> dict[str, str | None]:
    lake: Lake = defs.resources["lake"]
    rows = lake.read_table(VALIDATED, "stock_prices").select("Symbol", "Security Name")
    return dict(rows.unique().sort("Symbol").iter_rows())


def _stock_bytes(lake: Lake) -> dict[str, str]:
    return {path: hashlib.sha256(Path(path).read_bytes()).hexdigest()
            for path in lake.fragments(VALIDATED, "stock_prices")}


def _named(result: dg.ExecuteInProcessResult) -> int:
    mat = next(m for m in result.asset_materializations_for_node("lake_ingest")
               if m.asset_key.to_user_string() == "stock_prices")
    return int(mat.metadata["security_names_set"].value)  # type: ignore[arg-type]


def test_prices_ingested_before_the_directory_get_the_names_it_would_have_given(
        tmp_path, instance) -> None:
    files = _write(tmp_path / "delivery", {**PRICES, META: _meta(DIRECTORY)})
    landed = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    meta_first, meta_last = _lake(tmp_path, "meta-first"), _lake(tmp_path, "meta-last")
    for defs in (meta_first, meta_last):
        _land(defs, files, landed)

    first = _ingest(meta_first, instance, [META, *PRICES])
    last = _ingest(meta_last, instance, [*PRICES, META])

    assert _names(meta_first) == NAMES
    assert _names(meta_last) == NAMES
    first_tables, last_tables = _tables(meta_first), _tables(meta_last)
    assert first_tables.keys() == last_tables.keys()
    for name, frame in first_tables.items():
        assert frame.equals(last_tables[name]), name
    # The directory's run reports the rows it named (AAA's two, BBB's one); no price file's
    # run had anything to name in the first order.
    assert _named(last[META]) == 3
    assert [_named(r) for r in first.values()] == [0, 0, 0, 0]

    # Naming again finds nothing stale and rewrites nothing.
    lake: Lake = meta_last.resources["lake"]
    before = _stock_bytes(lake)
    with lake.publish_lock():
        named = refresh_security_names(lake, lake.fragments(VALIDATED, "stock_prices"),
                                       symbol_directory(lake))
    assert named.height == 0
    assert _stock_bytes(lake) == before
    # The rewritten fragments hold the rows the catalogue counted for each file.
    metastore: Metastore = meta_last.resources["metastore"]
    recorded = metastore.files().filter(pl.col("table_name") == "stock_prices")
    for key in PRICES:
        partition = partition_key_for(key)
        rows_valid = recorded.filter(pl.col("partition_key") == partition)["rows_valid"].sum()
        on_disk = lake.count_rows(lake.partition_fragments(VALIDATED, "stock_prices", partition))
        assert on_disk == rows_valid, key


def test_a_changed_directory_renames_and_forgets_names_in_published_prices(
        tmp_path, instance) -> None:
    files = _write(tmp_path / "delivery", {**PRICES, META: _meta(DIRECTORY)})
    defs = _lake(tmp_path, "lake")
    _land(defs, files, datetime(2026, 2, 2, 9, 0, tzinfo=UTC))
    _ingest(defs, instance, [META, *PRICES])
    changed = _write(tmp_path / "v2", {META: _meta({"AAA": "Alpha Holdings", "ZZZ": "Zed"})})
    _land(defs, changed, datetime(2026, 2, 3, 9, 0, tzinfo=UTC))

    result = _ingest(defs, instance, [META])[META]

    assert _names(defs) == {"AAA": "Alpha Holdings", "BBB": None, "ZZZ": "Zed"}
    assert _named(result) == 4


def _staged(lake: Lake, key: str, path: Path) -> PartitionWriter:
    """A run of the landed file ``key``, staged and not yet published."""
    writer = PartitionWriter(lake, WriteNow(lake), partition_key_for(key),
                             datetime.now(UTC), run=f"run-{key}")
    with path.open("rb") as fh:
        for batch in iter_unpacked(f"file://{path}", fh, DATASETS):
            writer.add(ingest_members(batch, DATASETS))
    return writer


def test_prices_staged_before_the_directory_was_published_are_named_when_they_publish(
        tmp_path) -> None:
    """Staging reads the directory outside the publish lock: the directory may be published
    between that read and the prices' own publish, after it named every published row."""
    files = _write(tmp_path / "delivery", {**PRICES, META: _meta(DIRECTORY)})
    lake = Lake(uri=str(tmp_path / "lake"))
    prices = _staged(lake, "market/stocks/AAA.csv", files["market/stocks/AAA.csv"])
    directory = _staged(lake, META, files[META])
    with lake.publish_lock():
        assert directory.publish().named.height == 0  # no price published yet
    with lake.publish_lock():
        published = prices.publish()

    names = lake.read_table(VALIDATED, "stock_prices")["Security Name"].to_list()
    assert names == ["Alpha Inc", "Alpha Inc"]
    assert published.named.rows() == [(partition_key_for("market/stocks/AAA.csv"), 2)]
