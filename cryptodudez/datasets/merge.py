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
