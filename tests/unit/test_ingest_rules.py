"""Every validation rule, on hostile files generated here: nothing is silently lost."""

import dataclasses
import gzip
import io
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from cryptodudez.checks import tables as table_checks
from cryptodudez.datasets import csv as csvframe
from cryptodudez.datasets.specs import DATASETS, STOCK_HEADER, SYMBOLS_HEADER
from cryptodudez.ingest import IngestResult, _ingest_typed, ingest_members, unpack

HEADER = ",".join(STOCK_HEADER)
GOOD = "2020-01-02,10.0,11.0,9.5,10.5,10.4,1000"


# Members dated once, not by the clock: a zip built while pytest collects is part of a
# test's id, and xdist refuses workers that collected different ids (two workers built the
# nested-zip case a second apart: "Different tests were collected between gw1 and gw0").
_DATED = (2026, 1, 1, 0, 0, 0)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, _DATED), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _ingest(members: dict[str, bytes]) -> IngestResult:
    return ingest_members(unpack("file:///lake/raw/x.zip", _zip(members)), DATASETS)


def _reasons(result: IngestResult, table: str = "stock_prices") -> dict[int | None, str]:
    q = result.quarantine[table]
    return dict(zip(q["line"].to_list(), q["reason"].to_list(), strict=True))


def _accounting_holds(result: IngestResult) -> None:
    m = result.members
    assert (m["rows_read"] == m["rows_valid"] + m["rows_quarantined"]).all()


ROW_RULES = [
        ("2020-01-03,,,,,,", "null in required field Open"),
        ("2020-01-03,10,11,9,10,10,1000,extra", "wrong field count: expected 7, found 8"),
        ("2020-01-03,10,11", "wrong field count: expected 7, found 3"),
        ("banana", "wrong field count: expected 7, found 1"),
        ("", "blank line"),
        ("2020-01-03,ten,11,9,10,10,1000", "unparseable Open: 'ten'"),
        ("03/01/2020,10,11,9,10,10,1000", "unparseable Date: '03/01/2020'"),
        ("2020-01-03,10,11,9,10,10,12.5", "unparseable Volume: '12.5'"),
        ("2020-01-03,-1,11,9,10,10,1000", "Open failed greater_than_or_equal_to(0)"),
        ("2020-01-03,10,11,9,10,10,-5", "Volume failed greater_than_or_equal_to(0)"),
        ("2020-01-03,10,8,9,10,10,1000", "failed high_ge_low"),
        ("2020-01-02,10,11,9,10,10,1000", "duplicate key (Symbol, Date) in the same file, "
                                          "first at line 2"),
        # numbers polars' cast reads as infinite or NaN (a reviewer's inf price was published)
        ("2020-01-03,10,inf,9,10,10,1000", "unparseable High: 'inf'"),
        ("2020-01-03,10,11,9,10,Infinity,1000", "unparseable Adj Close: 'Infinity'"),
        ("2020-01-03,10,1e400,9,10,10,1000", "unparseable High: '1e400'"),
        ("2020-01-03,NaN,11,9,10,10,1000", "unparseable Open: 'NaN'"),
        ("2020-01-03,10,11,-INF,10,10,1000", "unparseable Low: '-INF'"),
        ("2020-01-03,10,11,9,10,10,inf", "unparseable Volume: 'inf'"),
        # a date no partition holds (a reviewer's 1600-01-01 broke a blocking check later)
        ("1600-01-01,10,11,9,10,10,1000", "failed date_not_before_1960-01-01"),
        ("1959-12-31,10,11,9,10,10,1000", "failed date_not_before_1960-01-01"),
]


@pytest.mark.parametrize(("line", "reason"), ROW_RULES)
def test_row_rules_quarantine_with_line_raw_and_reason(line: str, reason: str) -> None:
    data = f"{HEADER}\n{GOOD}\n{line}\n2020-01-06,1,2,1,1,1,5\n".encode()
    result = _ingest({"stocks/AAA.csv": data})
    q = result.quarantine["stock_prices"]
    assert q["line"].to_list() == [3]
    assert q["raw"].to_list() == [line]
    assert reason in q["reason"][0]
    assert result.tables["stock_prices"].height == 2
    assert result.tables["stock_prices"]["_line"].to_list() == [2, 4]
    _accounting_holds(result)


def test_future_dates_are_impossible() -> None:
    tomorrow = (datetime.now(tz=UTC) + timedelta(days=2)).date().isoformat()
    result = _ingest({"stocks/AAA.csv": f"{HEADER}\n{GOOD}\n{tomorrow},1,2,1,1,1,5\n".encode()})
    assert _reasons(result) == {3: "failed date_not_in_future"}


def test_invalid_utf8_line_is_quarantined_and_the_rest_kept() -> None:
    data = f"{HEADER}\n{GOOD}\n".encode() + b"2020-01-03,1\xff,2,1,1,1,5\n2020-01-06,1,2,1,1,1,5\n"
    result = _ingest({"stocks/AAA.csv": data})
    assert "invalid UTF-8" in _reasons(result)[3]
    assert result.tables["stock_prices"].height == 2
    _accounting_holds(result)


def _zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, text in members.items():
            z.writestr(zipfile.ZipInfo(name, _DATED), text)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty file"),
        (b"\n\n  \n", "empty file"),
        (f"{HEADER}\n".encode(), "header only: no data rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary content"),
        (gzip.compress(f"{HEADER}\n{GOOD}\n".encode(), mtime=0),  # one id on every worker
         "gzip-compressed data: deliver CSV files plain or in a zip archive"),
        # a zip in the zip was "binary content (NUL bytes)" (a QA walkthrough)
        (_zipped({"stocks/CVX.csv": f"{HEADER}\n{GOOD}\n"}),
         "a zip archive inside the delivery: nested archives are not unpacked"),
        (b"foo,bar\n1,2\n", "columns match no known dataset"),
        # event lines in a file the event lake does not read (a reviewer: the reason was
        # "JSON-lines fields match no known dataset: ['data', 'meta']")
        (b'{"data": {"id": "a", "type": "t", "attributes": {}}, "meta": {"created_at": 1}}\n',
         "event lines (fields data, meta) in a file the event lake does not read: it reads "
         "files named .jsonl, .ndjson, .jsonl.gz, .ndjson.gz, or any file under events/"),
        (b"Date,Open,High,Low,Close,Adj Close,Vol\n2020-01-02,1,1,1,1,1,1\n",
         "schema drift from dataset stock_market_daily: missing ['Volume'], "
         "unexpected ['Vol']"),
        # the same columns in another order said "missing [], unexpected []" (a reviewer)
        (b"Open,Date,High,Low,Close,Adj Close,Volume\n1,2020-01-02,1,1,1,1,1\n",
         "schema drift from dataset stock_market_daily: the columns are ['Open', 'Date', "
         "'High', 'Low', 'Close', 'Adj Close', 'Volume'], expected ['Date', 'Open', 'High', "
         "'Low', 'Close', 'Adj Close', 'Volume'] in that order"),
    ],
)
def test_whole_file_rejections(payload: bytes, reason: str) -> None:
    result = _ingest({"stocks/BAD.csv": payload, "stocks/AAA.csv": f"{HEADER}\n{GOOD}\n".encode()})
    bad = result.members.filter(pl.col("member") == "stocks/BAD.csv").row(0, named=True)
    assert bad["status"] == "rejected"
    assert reason in bad["reason"]
    table = "stock_prices" if "drift" in reason or "header" in reason else "unrecognised"
    q = result.quarantine[table].filter(pl.col("source").str.contains("BAD"))
    assert q.height == 1
    assert q["line"][0] is None
    assert result.tables["stock_prices"].height == 1
    _accounting_holds(result)


def test_broken_zip_is_a_whole_file_reject() -> None:
    data = _zip({"stocks/AAA.csv": f"{HEADER}\n{GOOD}\n".encode()})
    result = ingest_members(unpack("file:///lake/raw/x.zip", data[: len(data) // 2]), DATASETS)
    assert result.members["status"].to_list() == ["rejected"]
    assert "corrupt zip archive" in result.members["reason"][0]
    assert result.quarantine["unrecognised"].height == 1


def test_junk_members_are_recorded_as_skipped_not_dropped() -> None:
    result = _ingest({"__MACOSX/._AAA.csv": b"\x00\x05junk", "x/.DS_Store": b"\x00\x00",
                      "stocks/AAA.csv": f"{HEADER}\n{GOOD}\n".encode()})
    statuses = dict(zip(result.members["member"], result.members["status"], strict=True))
    assert statuses == {"__MACOSX/._AAA.csv": "skipped", "x/.DS_Store": "skipped",
                        "stocks/AAA.csv": "validated"}


def test_quoted_and_unquoted_members_of_one_dataset_are_both_parsed() -> None:
    quoted = f'{HEADER}\n"2020-01-02","1","2","1","1","1","5"\n'.encode()
    result = _ingest({"stocks/AAA.csv": quoted, "stocks/BBB.csv": f"{HEADER}\n{GOOD}\n".encode()})
    assert sorted(result.tables["stock_prices"]["Symbol"].to_list()) == ["AAA", "BBB"]


def test_inferred_column_types_recorded_per_member() -> None:
    result = _ingest({"stocks/AAA.csv": f"{HEADER}\n{GOOD}\n".encode()})
    types = dict(zip(result.columns["name"], result.columns["type"], strict=True))
    assert types == {"Date": "DATE", "Open": "DOUBLE", "High": "DOUBLE", "Low": "DOUBLE",
                     "Close": "DOUBLE", "Adj Close": "DOUBLE", "Volume": "BIGINT"}


EXACT_ONLY = tuple(dataclasses.replace(spec, typed=None) for spec in DATASETS)
CLEAN_VARIANTS = [
    "2020-01-03,10,11,9,10,10,1000.0",  # integral float volume
    "2020-01-03,1e1,11,9,10,10,1e3",  # exponents
    "2020-01-03,10,11,9,10,10,9007199254740993",  # needs all 64 bits: not via a float
    "2020-01-03,10,11,9,10,10,1000,",  # one trailing comma: 8 fields
]


def _same(a: IngestResult, b: IngestResult) -> None:
    """Equal outputs, up to row order (the paths emit members in different orders)."""
    for name, order in (("tables", ["_source", "_line"]), ("quarantine", ["source", "line"])):
        x, y = getattr(a, name), getattr(b, name)
        assert x.keys() == y.keys()
        for table in x:
            assert x[table].sort(order).equals(y[table].sort(order)), (name, table)
    assert a.members.sort("uri").equals(b.members.sort("uri"))
    assert a.columns.sort("uri", "position").equals(b.columns.sort("uri", "position"))


@pytest.mark.parametrize("line", [line for line, _ in ROW_RULES] + CLEAN_VARIANTS)
def test_typed_path_gives_exactly_what_exact_framing_gives(line: str) -> None:
    """The typed read takes only members it can prove clean; the rest get exact framing."""
    members = {
        "stocks/AAA.csv": f"{HEADER}\n{GOOD}\n{line}\n2020-01-06,1,2,1,1,1,5\n".encode(),
        "stocks/BBB.csv": f"{HEADER}\n{GOOD}\n2020-01-03,1,2,1,1,1,7".encode(),  # no final \n
        "etfs/CCC.csv": f"{HEADER}\n{GOOD}\n".encode(),
    }
    unpacked = unpack("file:///lake/raw/x.zip", _zip(members))
    _same(ingest_members(unpacked, DATASETS), ingest_members(unpacked, EXACT_ONLY))


def test_typed_path_takes_clean_members_and_leaves_the_others() -> None:
    hostile = "2020-01-03,10,11,9,10,10,1000,"
    unpacked = unpack("file:///lake/raw/x.zip", _zip({
        "stocks/AAA.csv": f"{HEADER}\n{GOOD}\n".encode(),
        "stocks/BBB.csv": f"{HEADER}\n{GOOD}\n{hostile}\n".encode(),
        "stocks/CCC.csv": f'{HEADER}\n"2020-01-02",1,2,1,1,1,5\n'.encode(),
    }))
    stock = next(spec for spec in DATASETS if spec.table == "stock_prices")
    taken, rest = _ingest_typed(unpacked.members, stock, list(STOCK_HEADER))
    assert taken is not None
    assert taken.valid["Symbol"].to_list() == ["AAA"]
    assert [m.name for m in rest] == ["stocks/BBB.csv", "stocks/CCC.csv"]


def independent_records(data: bytes) -> int:
    """Records after the header, counted here in plain Python from the raw bytes.

    A record is a line, or several while a quoted field is open (an odd number of quotes so
    far); the empty text after the final line terminator is not a line.
    """
    lines = data.partition(b"\n")[2].split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    records, open_quote = 0, False
    for line in lines:
        records += not open_quote
        open_quote ^= line.count(b'"') % 2 == 1
    return records


UNTERMINATED = f'{HEADER}\n{GOOD}\n2020-01-03,"10,11,9,10,10,1000\n'.encode()
ACCOUNTING_CASES = {
    "unterminated quote": (UNTERMINATED, 1, 1),
    "quoted field over two lines": (f'{HEADER}\n{GOOD}\n2020-01-03,"1\n0",11,9,10,10,1000\n'
                                    f"2020-01-06,1,2,1,1,1,5\n".encode(), 2, 1),
    "trailing blank lines": (f"{HEADER}\n{GOOD}\n\n\r\n".encode(), 1, 2),
    "last line only a carriage return": (f"{HEADER}\n{GOOD}\n\r".encode(), 1, 1),
    "crlf, no final newline": (f"{HEADER}\r\n{GOOD}\r\n2020-01-03,1,2,1,1,1,5".encode(), 2, 0),
    "plain (typed read)": (f"{HEADER}\n{GOOD}\n2020-01-03,1,2,1,1,1,5\n".encode(), 2, 0),
}


@pytest.mark.parametrize(("data", "valid", "quarantined"), ACCOUNTING_CASES.values(),
                         ids=ACCOUNTING_CASES.keys())
def test_rows_read_counts_records_apart_from_their_outcome(data: bytes, valid: int,
                                                           quarantined: int) -> None:
    result = _ingest({"stocks/AAA.csv": data})
    member = result.members.row(0, named=True)
    assert member["rows_read"] == independent_records(data)
    assert (member["rows_valid"], member["rows_quarantined"]) == (valid, quarantined)
    assert member["rows_read"] == valid + quarantined
    assert member["status"] == ("validated" if quarantined == 0
                                else "validated_with_quarantine")


def _drop_unterminated(
    split_records: Callable[[pl.DataFrame], pl.DataFrame],
) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """The bug once planted: unterminated-quote records dropped instead of quarantined."""
    return lambda texts: split_records(texts).filter(pl.col("closed"))


def test_a_record_lost_between_framing_and_tables_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the planted bug the file says 2 data lines, 1 valid, 0 quarantined: not validated.

    Before rows_read was counted apart from the outcome, this file was catalogued with
    ``rows_read=1`` and status ``validated``, and ``rows_accounted`` passed.
    """
    monkeypatch.setattr(csvframe, "split_records", _drop_unterminated(csvframe.split_records))
    result = _ingest({"stocks/AAA.csv": UNTERMINATED})
    member = result.members.row(0, named=True)
    assert (member["rows_read"], member["rows_valid"], member["rows_quarantined"]) == (2, 1, 0)
    assert member["status"] == "rows_unaccounted"
    assert "1 unaccounted for" in member["reason"]
    check = table_checks.rows_accounted(
        "stock_prices", result.members, rows_on_disk=result.tables["stock_prices"].height,
        quarantine_on_disk=pl.DataFrame(schema={"source": pl.String, "len": pl.UInt32}),
        superseded=0)
    assert not check.passed


def test_invalid_utf8_inside_a_multiline_quoted_field_quarantines_its_record() -> None:
    header = ",".join(SYMBOLS_HEADER)
    data = (f"{header}\nY,AAA,Apple,Q,G,N,100,N,N,AAA,AAA,N\n".encode()
            + b'Y,BBB,"Bad\n\xff name",Q,G,N,100,N,N,BBB,BBB,N\n'
            + b"Y,CCC,Fine,Q,G,N,100,N,N,CCC,CCC,N\n")
    result = _ingest({"symbols_valid_meta.csv": data})
    assert result.tables["symbols_meta"]["Symbol"].to_list() == ["AAA", "CCC"]
    assert "invalid UTF-8" in _reasons(result, "symbols_meta")[3]
    _accounting_holds(result)


def test_one_member_the_typed_read_refuses_leaves_the_others_on_the_typed_path() -> None:
    unpacked = unpack("file:///lake/raw/x.zip", _zip({
        "stocks/AAA.csv": f"{HEADER}\n{GOOD}\n".encode(),
        "stocks/BAD.csv": f"{HEADER}\n{GOOD}\n".encode() + b"2020-01-0\xff,1,2,1,1,1,5\n",
        "stocks/CCC.csv": f"{HEADER}\n{GOOD}\n".encode(),
    }))
    stock = next(spec for spec in DATASETS if spec.table == "stock_prices")
    taken, rest = _ingest_typed(unpacked.members, stock, list(STOCK_HEADER))
    assert taken is not None
    assert sorted(taken.valid["Symbol"].to_list()) == ["AAA", "CCC"]
    assert [m.name for m in rest] == ["stocks/BAD.csv"]
    result = ingest_members(unpacked, DATASETS)
    assert "invalid UTF-8" in _reasons(result)[3]


@pytest.mark.parametrize("name", ["../../../../tmp/evil/stocks/..\\..\\WWW.csv",
                                  "stocks/CVX a+b%20c#1?.csv", "stocks/CVX,2.csv",
                                  "stocks/aapl.csv"])
def test_a_symbol_that_is_no_ticker_is_quarantined_naming_the_column(name: str) -> None:
    """The symbol is the file's name: path leftovers were published as symbols (QA)."""
    result = _ingest({name: f"{HEADER}\n{GOOD}\n".encode(),
                      "stocks/BRK.B.csv": f"{HEADER}\n{GOOD}\n".encode()})
    assert result.tables["stock_prices"]["Symbol"].to_list() == ["BRK.B"]
    (reason,) = result.quarantine["stock_prices"]["reason"].to_list()
    assert "Symbol" in reason and "str_matches" in reason
    _accounting_holds(result)
