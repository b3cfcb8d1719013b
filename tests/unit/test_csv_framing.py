"""The CSV framing keeps every record's start line and original text."""

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
