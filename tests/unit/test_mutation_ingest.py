"""Ingest rules and CSV framing: behaviour the mutation run found untested (docs/mutation.md).

Members go through ``ingest_members`` as a landed archive would; the catalogue row of each
member (status, reason, rows read, valid and quarantined) is what the checks and an operator
read.
"""

import io
import zipfile
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from cryptodudez.datasets import csv as csvframe
from cryptodudez.datasets.specs import DATASETS, STOCK_HEADER
from cryptodudez.ingest import IngestResult, ingest_members, unpack

HEADER = ",".join(STOCK_HEADER)
GOOD = "2020-01-02,10.0,11.0,9.5,10.5,10.4,1000"


def _ingest(members: dict[str, bytes]) -> IngestResult:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return ingest_members(unpack("file:///lake/raw/x.zip", buf.getvalue()), DATASETS)


def _member(result: IngestResult, name: str) -> dict[str, Any]:
    return result.members.filter(pl.col("member") == name).row(0, named=True)


@pytest.mark.parametrize(("payload", "reason"), [
    (b"\xff\xfeD\x00a\x00t\x00e\x00", "UTF-16 text (byte-order mark): only UTF-8 is read"),
    (b"\xfe\xff\x00D\x00a\x00t\x00e", "UTF-16 text (byte-order mark): only UTF-8 is read"),
    (f"{HEADER}\n{GOOD}\n".encode() + b"\x00", "binary content (NUL bytes), not text"),
    (b" " * 5000 + b"\n", "empty file"),
])
def test_whole_file_problems_reject_the_member_with_its_reason(payload: bytes,
                                                               reason: str) -> None:
    result = _ingest({"stocks/BAD.csv": payload,
                      "stocks/AAA.csv": f"{HEADER}\n{GOOD}\n".encode()})
    bad = _member(result, "stocks/BAD.csv")
    assert (bad["status"], bad["reason"]) == ("rejected", reason)
    assert _member(result, "stocks/AAA.csv")["status"] == "validated"


def test_text_with_a_non_blank_tail_after_4_kib_of_blanks_is_not_empty() -> None:
    payload = b" " * 5000 + f"\n{HEADER}\n{GOOD}\n".encode()
    bad = _member(_ingest({"stocks/BAD.csv": payload}), "stocks/BAD.csv")
    assert bad["reason"] != "empty file"


def test_a_nul_byte_after_the_first_8_kib_is_not_called_binary() -> None:
    """Only the start is sniffed for NULs; a later NUL is the bad line's problem alone."""
    lines = "".join(f"2020-01-{1 + i % 28:02d},1,2,1,1,1,{i}\n" for i in range(400))
    data = f"{HEADER}\n".encode() + lines.encode()
    assert len(data) > 8192
    result = _ingest({"stocks/AAA.csv": data + b"2021-01-01,1,2,1,1,\x00,5\n"})
    member = _member(result, "stocks/AAA.csv")
    assert member["status"] != "rejected"
    assert member["rows_read"] == member["rows_valid"] + member["rows_quarantined"]


@pytest.mark.parametrize(("line", "reason"), [
    ('2020-01-03,"10,11,9,10,10,1000', "unterminated quoted field at end of file"),
    ('2020-01-03,1""0,11,9,10,10,1000', "malformed quoting: a quote inside an unquoted field, "
                                       "or text after a closing quote"),
    ('2020-01-03,"10"x,11,9,10,10,1000', "malformed quoting: a quote inside an unquoted field, "
                                         "or text after a closing quote"),
    ("", "blank line"),
    ("2020-01-03,10,11", "wrong field count: expected 7, found 3"),
])
def test_framing_problems_are_the_exact_quarantine_reason(line: str, reason: str) -> None:
    data = f"{HEADER}\n{GOOD}\n{line}\n".encode()
    q = _ingest({"stocks/AAA.csv": data}).quarantine["stock_prices"]
    assert q["reason"].to_list() == [reason]
    assert q["line"].to_list() == [3]


def _drop(split_records: Callable[[pl.DataFrame], pl.DataFrame],
          n: int) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """A framing that loses the last ``n`` records of every file."""
    return lambda texts: split_records(texts).group_by("source", maintain_order=True).map_groups(
        lambda g: g.head(g.height - n))


def test_lost_records_make_the_member_unaccounted_with_exact_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csvframe, "split_records", _drop(csvframe.split_records, 2))
    data = f'{HEADER}\n{GOOD}\n2020-01-03,"1",2,1,1,1,5\n2020-01-06,"1",2,1,1,1,5\n'.encode()
    member = _member(_ingest({"stocks/AAA.csv": data}), "stocks/AAA.csv")
    assert (member["rows_read"], member["rows_valid"], member["rows_quarantined"]) == (3, 1, 0)
    assert member["status"] == "rows_unaccounted"
    assert member["reason"] == "3 records read, but 1 valid and 0 quarantined: 2 unaccounted for"


def test_a_header_only_member_reads_no_rows() -> None:
    result = _ingest({"stocks/HDR.csv": f"{HEADER}\n".encode(),
                      "stocks/AAA.csv": f"{HEADER}\n{GOOD}".encode()})  # no final newline
    assert _member(result, "stocks/HDR.csv")["rows_read"] == 0
    good = _member(result, "stocks/AAA.csv")
    assert (good["rows_read"], good["rows_valid"], good["status"]) == (1, 1, "validated")


def test_a_multiline_record_counts_once() -> None:
    data = (f'{HEADER}\n{GOOD}\n2020-01-03,"1\n\n0",2,1,1,1,5\n2020-01-06,1,2,1,1,1,5\n'
            .encode())
    member = _member(_ingest({"stocks/AAA.csv": data}), "stocks/AAA.csv")
    assert member["rows_read"] == 3
    assert member["rows_read"] == member["rows_valid"] + member["rows_quarantined"]


def test_unaccounted_count_subtracts_quarantined_rows_too() -> None:
    """A member that lost a record while another was quarantined names the exact gap."""
    from cryptodudez.ingest import _member_status  # noqa: PLC0415 - the rule under test

    status = _member_status(10, 6, 3)
    assert status["status"] == "rows_unaccounted"
    assert status["reason"] == "10 records read, but 6 valid and 3 quarantined: 1 unaccounted for"
    assert _member_status(9, 6, 3) == {"status": "validated_with_quarantine", "reason": None}
