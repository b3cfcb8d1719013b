"""``events_compacted_rows_kept`` on a day left alone fails when rows or ids do not add up.

The day's rows come from the Delta log (``numRecords``), the rows and distinct ids from the
files read back: a lost row or an id held twice must fail the check.
"""

import pytest

from cryptodudez.checks.events import compaction_checks
from cryptodudez.lake.compaction import Compacted


def _kept(rows_in_log: int, read_back: int, distinct: int) -> bool:
    done = Compacted(None, rows_in_log, read_back, distinct, already_compacted=True,
                     tag="compact_2026-11-01_v3_ab", table_version=4, files=24)
    (kept,) = [c for c in compaction_checks(done) if c.check_name == "events_compacted_rows_kept"]
    return kept.passed


def test_a_day_left_alone_that_adds_up_passes() -> None:
    assert _kept(400, 400, 400)


@pytest.mark.parametrize(("read_back", "distinct"), [
    (399, 399),  # a row lost from the files
    (400, 399),  # an id held twice
    (401, 401),  # a row the log does not count
])
def test_a_day_left_alone_fails_when_rows_or_ids_do_not_add_up(read_back: int,
                                                                distinct: int) -> None:
    assert not _kept(400, read_back, distinct)
