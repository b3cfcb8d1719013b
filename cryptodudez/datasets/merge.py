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
    ranked = rows.with_row_index("_pos").sort([*ORDER])
    winners = ranked.unique(list(key), keep="last", maintain_order=False).select("_pos")
    return rows.with_row_index("_pos").with_columns(
        _wins=pl.col("_pos").is_in(winners["_pos"].implode())
    ).drop("_pos")
