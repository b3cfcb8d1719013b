"""The table checks fail when what the lake holds disagrees with the catalogue."""

import polars as pl
import pytest

from cryptodudez.checks.tables import rows_accounted

MEMBERS = pl.DataFrame({
    "uri": ["zip://a.csv::x", "zip://b.csv::x"],
    "table": ["stock_prices", "stock_prices"],
    "status": ["validated", "validated_with_quarantine"],
    "rows_read": [10, 5],
    "rows_valid": [10, 4],
    "rows_quarantined": [0, 1],
})
QUARANTINE = pl.DataFrame({"source": ["zip://b.csv::x"], "len": [1]},
                          schema={"source": pl.String, "len": pl.UInt32})


def _check(rows_on_disk: int, quarantine: pl.DataFrame, superseded: int = 0) -> bool:
    return bool(rows_accounted("stock_prices", MEMBERS, rows_on_disk=rows_on_disk,
                               quarantine_on_disk=quarantine, superseded=superseded).passed)


def test_rows_accounted_passes_when_the_lake_holds_every_row() -> None:
    assert _check(14, QUARANTINE)
    assert _check(12, QUARANTINE, superseded=2)


@pytest.mark.parametrize(("rows_on_disk", "quarantine"), [
    (13, QUARANTINE),  # a valid row missing from the published fragments
    (15, QUARANTINE),  # a row too many
    (14, QUARANTINE.clear()),  # the quarantined row never reached quarantine/
])
def test_rows_accounted_fails_when_the_lake_disagrees(rows_on_disk: int,
                                                      quarantine: pl.DataFrame) -> None:
    assert not _check(rows_on_disk, quarantine)
