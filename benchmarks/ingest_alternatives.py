"""Micro-benchmarks behind the optimisation suggestions in ``docs/benchmarks.md``.

Each line times one piece of ``cryptodudez.ingest`` / ``cryptodudez.datasets.specs`` on the
real stock archive's 2.09 M rows next to a candidate replacement (best of 3), so a
suggestion's saving can be checked before it is implemented. The candidates live here only;
nothing in the package is changed.

Usage::

    python benchmarks/ingest_alternatives.py [--archive PATH]
"""

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import polars as pl

from cryptodudez import ingest as ig
from cryptodudez.datasets import specs as sp
from cryptodudez.datasets.merge import resolve_latest
from cryptodudez.datasets.specs import DATASETS

REAL_ARCHIVE = (Path(__file__).resolve().parents[2] / "shared" / "data"
                / "stock-market-dataset" / "archive.zip")  # ../shared/data of the project
STOCK = DATASETS[0]
PRICES = ("Open", "High", "Low", "Close", "Adj Close")


def best_of(label: str, fn: Callable[[], Any], n: int = 3) -> Any:
    """Run ``fn`` ``n`` times, print the best wall time, return the last result."""
    best, result = float("inf"), None
    for _ in range(n):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    print(f"{label:70s} {best:7.3f} s")
    return result


def convert_parse_once(fields: pl.DataFrame) -> pl.DataFrame:
    """``convert_stock_prices`` with every field parsed once (errors from parsed columns)."""
    parsed = {"Date": sp._date("Date"), **{c: sp._float(c) for c in PRICES},
              "Volume": sp._int("Volume")}
    p = fields.with_columns(**{f"__p_{k}": v for k, v in parsed.items()})
    errors = pl.concat_str(
        [pl.when(pl.col(k).is_not_null() & pl.col(f"__p_{k}").is_null())
         .then(pl.format("unparseable {}: '{}'", pl.lit(k), pl.col(k).str.slice(0, 80)))
         for k in parsed],
        separator="; ", ignore_nulls=True,
    ).replace("", None)
    return p.select(
        sp.per_source(fields, sp.path_symbol).alias("Symbol"),
        pl.lit(None, dtype=pl.String).alias("Security Name"),
        pl.col("__p_Date").dt.to_string("%Y-%m-%d").alias("Date"),
        *[pl.col(f"__p_{c}").alias(c) for c in (*PRICES, "Volume")],
        sp.per_source(fields, sp.path_asset_class).alias("asset_class"),
        pl.col("__source").alias("_source"), pl.col("__line").alias("_line"),
        errors.alias("_parse_error"),
    )


def main(argv: list[str] | None = None) -> None:
    """Time the current pieces and their candidate replacements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--archive", type=Path, default=REAL_ARCHIVE)
    args = parser.parse_args(argv)
    unpacked = ig.unpack(f"file://{args.archive}", args.archive.read_bytes())
    members = [m for m in unpacked.members if m.name.count("/") == 1]
    ncols = len(STOCK.header)
    header, uris = list(STOCK.header), [m.uri for m in members]

    print("## framing")
    framed = best_of("_frame_fast (current: two read_csv of one joined buffer)",
                     lambda: ig._frame_fast(members, ncols))
    buf = b"".join(m.data for m in members)
    names = [f"f{i}" for i in range(ncols)]
    best_of("  b''.join of the member bytes", lambda: b"".join(m.data for m in members))
    lines = best_of("  read_csv of raw lines", lambda: pl.read_csv(
        io.BytesIO(buf), has_header=False, separator="\x1f", quote_char=None,
        schema={"raw": pl.String}))
    best_of("  read_csv of the fields", lambda: pl.read_csv(
        io.BytesIO(buf), has_header=False, quote_char=None, truncate_ragged_lines=True,
        schema=dict.fromkeys(names, pl.String)))
    best_of("  alternative: fields by str.split_exact on the lines",
            lambda: lines.select(pl.col("raw").str.split_exact(",", ncols - 1)).unnest("raw"))
    print(f"  sizes MB: buffer {len(buf) / 2**20:.0f}, lines {lines.estimated_size() / 2**20:.0f}, "
          f"records {framed.records.estimated_size() / 2**20:.0f}, "
          f"fields {framed.fields.estimated_size() / 2**20:.0f}")

    print("## infer_types")
    saved = ig._SAMPLE_ROWS
    for rows in sorted({1000, saved, 100}, reverse=True):
        ig._SAMPLE_ROWS = rows
        best_of(f"infer_types, {rows} rows per member"
                + (" (current)" if rows == saved else ""),
                lambda: ig.infer_types(framed.fields, header, uris))
    ig._SAMPLE_ROWS = saved

    print("## convert_stock_prices")
    rename = {f"f{i}": h for i, h in enumerate(STOCK.header)}
    fields = framed.fields.rename({**rename, "sid": "__sid", "line": "__line"}).with_columns(
        __source=pl.Series(uris).gather(framed.fields["sid"])
    )
    current = best_of("convert_stock_prices (current)", lambda: STOCK.convert(fields))
    once = best_of("  alternative: parse once, _parse_error from parsed columns",
                   lambda: convert_parse_once(fields))
    print(f"  identical output: {once.equals(current)}")
    best_of("  Volume with _int (current)", lambda: fields.select(sp._int("Volume")))
    best_of("  Volume with an exact Int64 cast only",
            lambda: fields.select(pl.col("Volume").cast(pl.Int64, strict=False)))
    best_of("  Date: strptime + to_string (current)",
            lambda: fields.select(sp._date("Date").dt.to_string("%Y-%m-%d")))
    best_of("  Date: strptime only", lambda: fields.select(sp._date("Date")))

    print("## duplicates and rejects")
    ok = current["_parse_error"].is_null()
    body = current.filter(ok).drop("_parse_error").with_columns(
        __sid=fields["__sid"].filter(ok))
    best_of("_duplicates_within_file (current)",
            lambda: ig._duplicates_within_file(body, STOCK.key))
    rejects = framed.records.select("sid", "line").gather_every(300_000)
    records = framed.records.select("sid", "line", "raw")
    best_of("rejects left-join all records (current, _ingest_spec:382)",
            lambda: rejects.join(records, on=["sid", "line"], how="left"))
    best_of("  alternative: records inner-join rejects",
            lambda: records.join(rejects, on=["sid", "line"], how="inner"))
    packed = (rejects["sid"] * (1 << 32) + rejects["line"]).implode()
    best_of("  alternative: is_in filter on a packed sid<<32|line key",
            lambda: records.filter((pl.col("sid") * (1 << 32) + pl.col("line")).is_in(packed)))

    print("## Dagster-side merge and write")
    table = ig.ingest_members(unpacked, DATASETS).tables["stock_prices"].with_columns(
        _landed_at=pl.lit(0).cast(pl.Datetime("us", "UTC")), _partition=pl.lit("p"))
    key = list(STOCK.key)
    candidates = table.select(*key, "_landed_at", "_partition", "_source", "_line")
    best_of("resolve_latest with no other fragment (current)",
            lambda: resolve_latest(candidates, key))
    best_of("  alternative: fast path is_duplicated().any()",
            lambda: candidates.select(key).is_duplicated().any())
    codecs: tuple[Literal["zstd", "lz4"], ...] = ("zstd", "lz4")
    for compression in codecs:
        def write(compression: Literal["zstd", "lz4"] = compression) -> int:
            out = io.BytesIO()
            table.write_parquet(out, compression=compression, statistics=True)
            return len(out.getvalue())

        size = best_of(f"write_parquet {compression}", write)
        print(f"  {size / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
