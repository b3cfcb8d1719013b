"""The CSV framing keeps every record's start line and original text."""

import csv
import io

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptodudez.datasets.csv import (
    count_fields,
    header_of,
    parse_header,
    read_records,
    split_records,
    well_quoted,
)


def _records(text: str) -> pl.DataFrame:
    return split_records(pl.DataFrame({"source": [0], "text": [text]},
                                      schema={"source": pl.Int64, "text": pl.String}))


def test_one_line_one_record_with_line_numbers() -> None:
    recs = _records("a,b\n1,2\n3,4\n")
    assert recs["line"].to_list() == [1, 2, 3]
    assert recs["raw"].to_list() == ["a,b", "1,2", "3,4"]
    assert recs["closed"].all()


def test_multiline_quoted_field_is_one_record_starting_at_its_first_line() -> None:
    recs = _records('id,text\n1,"hello\nworld"\n2,plain\n')
    assert recs["line"].to_list() == [1, 2, 4]
    assert recs["raw"][1] == '1,"hello\nworld"'


def test_unterminated_quote_is_reported_open() -> None:
    recs = _records('id,text\n1,"never closed\n2,x\n')
    assert recs["closed"].to_list() == [True, False]


def test_missing_final_newline_and_crlf() -> None:
    recs = _records("a,b\r\n1,2\r\n3,4")
    assert recs["raw"].to_list() == ["a,b", "1,2", "3,4"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a,b,c", 3), ('"x,y",b', 2), ('"say ""hi"", ok",2', 2), ("", 1), (",,,", 4),
     ("banana", 1)],
)
def test_count_fields_ignores_quoted_commas(raw: str, expected: int) -> None:
    assert pl.select(count_fields(pl.lit(raw))).item() == expected


def test_parse_header_and_read_records_align_rows() -> None:
    assert parse_header('"",id,"a, b"') == ["", "id", "a, b"]
    frame = read_records(["x", "y"], pl.Series(['1,"two\nlines"', ",4"]))
    assert frame.rows() == [("1", "two\nlines"), (None, "4")]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.text())
def test_header_of_never_raises(line: str) -> None:
    """Whatever a file's first line holds (bare carriage returns, NUL, quotes)."""
    assert isinstance(header_of(line), list)


def test_header_of_a_bare_carriage_return_and_a_byte_order_mark() -> None:
    assert header_of("a,b\rc") == ["a", "b\rc"]  # the csv module refuses this line
    assert header_of("\ufeffDate,Open") == ["Date", "Open"]
    # quoted names behind the mark (R's and pandas' utf-8-sig with QUOTE_ALL, session 23)
    assert header_of('\ufeff"Date","Open"') == ["Date", "Open"]


def test_a_quoted_header_behind_a_byte_order_mark_is_read() -> None:
    """It was refused whole as schema drift: missing ['Date'], unexpected ['"Date"']."""
    from cryptodudez.archives import unpack  # noqa: PLC0415
    from cryptodudez.datasets.specs import DATASETS  # noqa: PLC0415
    from cryptodudez.ingest import ingest_members  # noqa: PLC0415

    data = (b'\xef\xbb\xbf"Date","Open","High","Low","Close","Adj Close","Volume"\r\n'
            b'"2020-01-02","1","2","0.5","1.5","1.5","100"\r\n')
    result = ingest_members(unpack("file:///lake/raw/stocks/A.csv", data), DATASETS)
    assert result.members.select("status", "rows_valid").rows() == [("validated", 1)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a,b", True), ('"x,y",b', True), ('"say ""hi""",2', True), ('1,a"b', False),
     ('"a"b,c', False), (' "a",b', False), ('"multi\nline",x', True), ("", True)],
)
def test_well_quoted_follows_rfc_4180(raw: str, expected: bool) -> None:
    assert pl.select(well_quoted(pl.lit(raw))).item() is expected


def test_a_last_line_of_only_a_carriage_return_is_a_blank_record() -> None:
    assert _records("a,b\n1,2\n\r")["raw"].to_list() == ["a,b", "1,2", ""]
    assert _records("a,b\r\n1,2\r\n")["raw"].to_list() == ["a,b", "1,2"]


def test_a_stray_quote_in_an_unquoted_field_is_its_own_record_only() -> None:
    """A quote opens a field only at the field's start (RFC 4180). Counting quotes made the
    stray one open a field that swallowed every later line into one quarantined record."""
    recs = _records('id,name\n1,Sq"t\n2,ok\n3,"quoted, fine"\n4,"a\nb"\n5,x\n')
    assert recs["line"].to_list() == [1, 2, 3, 4, 5, 7]
    assert recs["raw"][1] == '1,Sq"t'
    assert recs["closed"].all()
    assert pl.select(well_quoted(pl.lit('1,Sq"t'))).item() is False  # quarantined, alone


def test_a_line_that_closes_one_quoted_field_and_opens_another() -> None:
    recs = _records('id,a,b\n1,"x\ny","z\nw"\n2,"""q"",\n""r""",s\n3,t\n')
    assert recs["line"].to_list() == [1, 2, 5, 7]
    assert recs["raw"].to_list()[1:] == ['1,"x\ny","z\nw"', '2,"""q"",\n""r""",s', "3,t"]
    assert recs["closed"].all()


_CELLS = st.text(alphabet='ab ,"\n', max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_CELLS, min_size=1, max_size=4), min_size=1, max_size=8))
def test_framing_of_rfc_4180_text_matches_the_csv_module(rows: list[list[str]]) -> None:
    """Any text Python's csv writer produces is framed into exactly its records."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    text = out.getvalue()
    recs = _records(text)
    assert recs["closed"].all()
    assert [next(csv.reader(io.StringIO(raw))) for raw in recs["raw"]] == rows
    starts, line = [], 1
    for raw in recs["raw"]:
        starts.append(line)
        line += raw.count("\n") + 1
    assert recs["line"].to_list() == starts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(alphabet="ab c", min_size=1, max_size=4), min_size=2,
                         max_size=4), min_size=2, max_size=8),
       st.data())
def test_a_stray_quote_changes_only_its_own_record(rows: list[list[str]], data) -> None:
    """A quote put inside one unquoted field (never first) leaves every other record whole."""
    at = data.draw(st.integers(0, len(rows) - 1))
    col = data.draw(st.integers(0, len(rows[at]) - 1))
    cell = rows[at][col]
    pos = data.draw(st.integers(1, len(cell)))
    rows[at][col] = cell[:pos] + '"' + cell[pos:]
    text = "".join(",".join(row) + "\n" for row in rows)
    recs = _records(text)
    assert recs["raw"].to_list() == [",".join(row) for row in rows]
    assert recs["closed"].all()


def test_a_file_left_open_does_not_open_the_next_file() -> None:
    # source 0 ends open twice over: by a flip (line 2) and by a line open from either state
    texts = pl.DataFrame({"source": [0, 1, 2],
                          "text": ['id,t\n1,"open\n2,x\n', 'id,t\nx","y\n',
                                   "id,t\n1,a\n2,b\n"]},
                         schema={"source": pl.Int64, "text": pl.String})
    recs = split_records(texts)
    assert recs.filter(pl.col("source") == 2)["raw"].to_list() == ["id,t", "1,a", "2,b"]
    assert recs.filter(pl.col("source") == 2)["closed"].all()
    assert recs.filter(pl.col("source") == 0)["closed"].to_list() == [True, False]
    assert recs.filter(pl.col("source") == 1)["closed"].to_list() == [True, False]
