"""Latest-delivery-wins resolution of rows that share a key across landed files."""

from collections.abc import Sequence

import polars as pl

ORDER = ("_landed_at", "_partition", "_source", "_line")


def resolve_latest(rows: pl.DataFrame, key: Sequence[str]) -> pl.DataFrame:
    """Mark, for every key, the one row that wins: the latest landed, then the last read.

    Args:
        rows: key columns plus ``_landed_at``, ``_partition``, ``_source``, ``_line``.
        key: columns identifying a row.

    Returns:
        ``rows`` with a boolean ``_wins`` column (exactly one True per key).
    """
    shared = rows.select(pl.struct(list(key)).is_duplicated()).to_series()
    if not shared.any():  # the usual case: nothing to resolve, no sort
        return rows.with_columns(_wins=pl.lit(value=True))
    contested = rows.with_row_index("_pos").filter(shared)
    winners = (contested.sort([*ORDER]).unique(list(key), keep="last", maintain_order=False)
               .select("_pos"))
    losers = contested.filter(~pl.col("_pos").is_in(winners["_pos"].implode()))["_pos"]
    return rows.with_row_index("_pos").with_columns(
        _wins=~pl.col("_pos").is_in(losers.implode())
    ).drop("_pos")


def key_hash(key: Sequence[str]) -> pl.Expr:
    """A 64-bit hash of a row's key (equal keys, equal hashes; the converse almost always)."""
    return pl.struct(list(key)).hash(seed=0).alias("_key_hash")


def repeated_values(values: pl.Series) -> pl.Series:
    """The distinct values that occur more than once in ``values`` (nulls ignored).

    By sorting, not hashing: at 25 M 64-bit hashes ``is_duplicated`` (a hash table probed at
    random) took 6.5 s on the 2-core machine and a sort with a neighbour comparison 0.6 s
    (``benchmarks/results/bench_repeated_values.json``).
    """
    ordered = values.drop_nulls().sort()
    return ordered.filter(ordered == ordered.shift(1)).unique()


def rows_with_repeated_keys(rows: pl.LazyFrame, key: Sequence[str], *,
                            hashes: pl.Series | None = None) -> pl.DataFrame:
    """The rows of ``rows`` whose key also appears on another row, in bounded memory.

    A first streaming pass keeps only a 64-bit hash per row (or ``hashes``, the key hashes
    of exactly these rows when the caller already has them); only rows whose hash repeats are
    then collected with all their columns, and exact key comparison settles hash collisions.
    """
    if hashes is None:
        hashes = rows.select(key_hash(key)).collect(engine="streaming").to_series()
    repeated = repeated_values(hashes)
    if repeated.len() == 0:
        return rows.head(0).collect()
    candidates = rows.filter(key_hash(key).is_in(repeated.implode())).collect()
    return candidates.filter(pl.struct(list(key)).is_duplicated())


def repeated_keys(rows: pl.LazyFrame, key: Sequence[str]) -> pl.DataFrame:
    """Every key that appears more than once in ``rows``, with how often (``len``)."""
    repeated = rows_with_repeated_keys(rows.select(list(key)), key)
    return repeated.group_by(list(key)).len().sort(list(key))
