"""The event validation rules one by one, the framing, and what a valid row holds.

Every rule is a row of ``RULES``: a line, and either the reason it is quarantined with or
None for a valid event. Reasons name the JSON path of the fault; nothing is coerced.
"""

import contextlib
import gzip
import io
import json
import zlib
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from cryptodudez.lake.events import (
    CREATED_AT_MAX,
    CREATED_AT_MIN,
    LineBatch,
    iter_line_batches,
    validate_lines,
)

TS = 1_549_650_668_000  # 2019-02-08T18:31:08Z, the brief's example


def event(**over: Any) -> dict[str, Any]:
    """The brief's example event with fields replaced (``None`` removes a field)."""
    data: dict[str, Any] = {"id": "0aecd029-1eae-42b1-9ef0-97173247c0e4", "type": "user_created",
                            "attributes": {"user_id": "5db24a33", "name": "John"}}
    meta: dict[str, Any] = {"created_at": TS, "service": "service_a"}
    for key, value in over.items():
        target, field = (data, key[5:]) if key.startswith("data_") else (meta, key[5:])
        if value is None:
            target.pop(field, None)
        else:
            target[field] = value
    return {"data": data, "meta": meta}


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode()


RULES: list[tuple[str, bytes, str | None]] = [
    ("the brief's example", line(event()), None),
    ("type with dots and dashes", line(event(data_type="a.b-c_D9")), None),
    ("type of 128 characters", line(event(data_type="t" * 128)), None),
    ("empty attributes", line(event(data_attributes={})), None),
    ("meta with created_at only", line({"data": event()["data"], "meta": {"created_at": TS}}),
     None),
    ("earliest created_at", line(event(meta_created_at=CREATED_AT_MIN)), None),
    ("broken JSON", line(event())[:-5], "malformed JSON"),
    ("not UTF-8", line(event(data_id="ID")).replace(b"ID", b"\xff\xfe"), "not UTF-8"),
    ("a JSON array", b"[1, 2]", "Expected `object`, got `array`"),
    ("a JSON scalar", b"42", "Expected `object`, got `int`"),
    ("no data", line({"meta": {"created_at": TS}}), "missing required field `data`"),
    ("no meta", line({"data": event()["data"]}), "missing required field `meta`"),
    ("no id", line(event(data_id=None)), "missing required field `id` - at `$.data`"),
    ("empty id", line(event(data_id="")), "at `$.data.id`"),
    ("id is a number", line(event(data_id=12)), "Expected `str`, got `int` - at `$.data.id`"),
    ("no type", line(event(data_type=None)), "missing required field `type`"),
    ("type is a number (never coerced to '7')", line(event(data_type=7)),
     "Expected `str`, got `int` - at `$.data.type`"),
    ("type with a slash (not path-safe)", line(event(data_type="a/b")), "$.data.type"),
    ("type of 129 characters", line(event(data_type="t" * 129)), "$.data.type"),
    ("empty type", line(event(data_type="")), "$.data.type"),
    # Python's `$` also matches before a final newline: this type passed, and its partition
    # folder (Delta's log names it `click%0A`) made the whole table unreadable
    ("type ending in a newline", line(event(data_type="click\n")), "$.data.type"),
    # Hive's and Delta's name of a null partition: the row read back with a null type and
    # was lost at compaction
    ("type named like Hive's null partition", line(event(data_type="__HIVE_DEFAULT_PARTITION__")),
     "$.data.type"),
    ("a type that only starts like it", line(event(data_type="__HIVE_DEFAULT_PARTITION__x")),
     None),
    ("no attributes", line(event(data_attributes=None)), "missing required field `attributes`"),
    ("attributes is a string", line(event(data_attributes="x")),
     "Expected `object` - at `$.data.attributes`"),
    ("attributes is a list", line(event(data_attributes=[1])),
     "Expected `object` - at `$.data.attributes`"),
    ("data is a list", line({"data": [1], "meta": {"created_at": TS}}),
     "Expected `object`, got `array` - at `$.data`"),
    ("meta is a string", line({"data": event()["data"], "meta": "x"}),
     "Expected `object` - at `$.meta`"),
    ("no created_at", line(event(meta_created_at=None)),
     "missing required field `created_at` - at `$.meta`"),
    ("created_at as a string", line(event(meta_created_at=str(TS))),
     "Expected `int`, got `str` - at `$.meta.created_at`"),
    ("created_at as a float", line(event(meta_created_at=TS + 0.5)),
     "Expected `int`, got `float` - at `$.meta.created_at`"),
    ("created_at as a boolean", line(event(meta_created_at=True)),
     "Expected `int`, got `bool` - at `$.meta.created_at`"),
    ("created_at in seconds", line(event(meta_created_at=TS // 1000)),
     "Expected `int` >= 946684800000 - at `$.meta.created_at`"),
    ("created_at in microseconds", line(event(meta_created_at=TS * 1000)),
     "at `$.meta.created_at`"),
    ("created_at at the upper bound", line(event(meta_created_at=CREATED_AT_MAX)),
     "at `$.meta.created_at`"),
    # msgspec skips over a Raw value without checking its strings' UTF-8; the cast does.
    ("not UTF-8 inside attributes", line(event(data_attributes={"k": "VAL"}))
     .replace(b"VAL", b"\xc3("), "not UTF-8 text (in `$.data.attributes`)"),
    ("not UTF-8 inside meta", line(event(meta_service="VAL")).replace(b"VAL", b"\xff"),
     "not UTF-8 text (in `$.meta`)"),
    ("attributes nested deeper than the recursion limit",
     line(event(data_attributes={"a": "NEST"})).replace(b'"NEST"', b"[" * 5000 + b"]" * 5000),
     "malformed JSON: nested too deeply"),
]


@pytest.mark.parametrize(("name", "raw", "reason"), RULES, ids=[r[0] for r in RULES])
def test_rule(name: str, raw: bytes, reason: str | None) -> None:
    out = validate_lines(LineBatch(7, raw), source="s3://lake/raw/events/a.jsonl")
    assert out.records == 1
    if reason is None:
        assert out.valid.height == 1, out.quarantine["reason"].to_list()
        assert out.quarantine.height == 0
        assert out.valid["_line"].to_list() == [7]
    else:
        assert out.valid.height == 0
        row = out.quarantine.row(0, named=True)
        assert reason in row["reason"], row["reason"]
        assert row["line"] == 7
        assert row["source"] == "s3://lake/raw/events/a.jsonl"
        assert row["raw"] == raw.decode("utf-8", errors="replace")


def test_bad_text_among_good_lines_quarantines_only_its_own_lines() -> None:
    """The batch's cast to text fails as a whole; the rows it failed on are found one by one."""
    good = [line(event(data_id=f"id-{i}")) for i in range(4)]
    bad_attrs = line(event(data_id="bad-a", data_attributes={"k": "VAL"})).replace(b"VAL", b"\xff")
    bad_meta = line(event(data_id="bad-m", meta_service="VAL")).replace(b"VAL", b"\xc3(")
    raw = b"\n".join([good[0], bad_attrs, good[1], bad_meta, good[2], good[3]])
    out = validate_lines(LineBatch(1, raw), source="s")
    assert out.records == 6
    assert out.valid["id"].to_list() == ["id-0", "id-1", "id-2", "id-3"]
    assert out.valid["_line"].to_list() == [1, 3, 5, 6]
    assert out.quarantine.select("line", "reason").rows() == [
        (2, "malformed JSON: not UTF-8 text (in `$.data.attributes`)"),
        (4, "malformed JSON: not UTF-8 text (in `$.meta`)")]
    assert out.quarantine["raw"].to_list() == [
        bad_attrs.decode(errors="replace"), bad_meta.decode(errors="replace")]


def test_a_valid_row_holds_the_event() -> None:
    attributes = {"user_id": "5db24a33", "name": "John", "favourite_ice_cream": "vanilla"}
    raw = line({"data": {"id": "e1", "type": "user_created", "attributes": attributes},
                "meta": {"created_at": TS, "service": "service_a", "retries": 2,
                         "note": 'a "quoted" word', "Bad-Name": "x"}})
    row = validate_lines(LineBatch(1, raw), source="src").valid.row(0, named=True)
    assert row["id"] == "e1"
    assert row["event_type"] == "user_created"
    assert row["created_at"] == datetime(2019, 2, 8, 18, 31, 8, tzinfo=UTC)
    assert (row["date"].isoformat(), row["hour"]) == ("2019-02-08", 18)
    assert json.loads(row["attributes"]) == attributes
    assert row["user_id"] == "5db24a33"
    assert row["meta_service"] == "service_a"
    assert row["meta_retries"] == "2"  # other values as their JSON text, never dropped
    assert row["meta_note"] == 'a "quoted" word'  # escaped strings decoded
    assert "meta_Bad-Name" not in row  # not a column-safe name: kept in the meta text
    assert json.loads(row["meta"])["Bad-Name"] == "x"
    assert row["_source"] == "src"


@pytest.mark.parametrize(("value", "expected"), [
    ("u-1", "u-1"), (7, None), ({"id": "u"}, None), (None, None), ('quote"inside', 'quote"inside'),
])
def test_user_id_only_when_a_string(value: Any, expected: str | None) -> None:
    raw = line(event(data_attributes={"user_id": value, "user_idx": "no"}))
    assert validate_lines(LineBatch(1, raw), source="s").valid["user_id"].to_list() == [
        expected]


def _fields(attributes: bytes, meta: bytes) -> dict[str, Any]:
    raw = (b'{"data":{"id":"e","type":"t","attributes":' + attributes + b'},"meta":'
           + meta + b"}")
    out = validate_lines(LineBatch(1, raw), source="s")
    assert out.quarantine.height == 0, out.quarantine["reason"].to_list()
    return out.valid.drop("attributes", "meta", "_source").row(0, named=True)


@pytest.mark.parametrize(("attributes", "expected"), [
    (b'{"ref":{"user_id":"someone-else"},"user_id":42}', None),  # nested key is not the field
    (b'{"ref":{"user_id":"someone-else"},"user_id":"me"}', "me"),
    (b'{"user_id":"first","user_id":"last"}', "last"),  # repeated key: the last, as decoded
    (b'{"user\\u005fid":"escaped-name"}', "escaped-name"),
    (b'{"user_id":"caf\\u00e9"}', "caf\u00e9"),
    (b'{"list":["user_id"],"user_id":"in-a-list"}', "in-a-list"),
    (b'{"note":"user_id","user_id":"plain"}', "plain"),
    # an escaped quote makes `"user_id":"evil"` appear inside another key (session 23)
    (b'{"note\\"user_id":"evil"}', None),
    (b'{"note\\"user_id":"evil","user_id":"me"}', "me"),
])
def test_user_id_is_the_top_level_field(attributes: bytes, expected: str | None) -> None:
    """A literal match over the text picked a nested or first ``user_id``, and missed an
    escaped key name; only rows that could be misread are decoded row by row."""
    meta = b'{"created_at":%d}' % TS
    assert _fields(attributes, meta)["user_id"] == expected


def test_meta_columns_hold_the_top_level_values_as_written() -> None:
    meta = (b'{"created_at":%d,"ctx":{"service":"inner"},"service":"outer",'
            b'"big":12345678901234567890123,"f":1.50,"serv":"a","serv":"b","e\\u0078":"x",'
            b'"tags":["a"],"n":null}' % TS)
    row = _fields(b"{}", meta)
    assert row["meta_service"] == "outer"  # not the nested ctx.service
    assert row["meta_ctx"] == '{"service":"inner"}'
    assert row["meta_big"] == "12345678901234567890123"  # never through a float
    assert row["meta_f"] == "1.50"  # the JSON text as written
    assert row["meta_serv"] == "b"
    assert row["meta_ex"] == "x"  # an escaped key name is the key
    assert row["meta_tags"] == '["a"]'
    assert row["meta_n"] is None  # a JSON null is null, as before


def _meta_frame(*metas: bytes) -> pl.DataFrame:
    raw = b"\n".join(b'{"data":{"id":"e%d","type":"t","attributes":{}},"meta":%s}' % (i, m)
                      for i, m in enumerate(metas))
    out = validate_lines(LineBatch(1, raw), source="s")
    assert out.quarantine.height == 0, out.quarantine["reason"].to_list()
    return out.valid


def test_a_colon_or_an_escaped_quote_in_a_meta_key_hides_no_other_key() -> None:
    """The key-set shortcut took the ':' inside ``"trace:"`` for a separator and swallowed
    the next key, so ``meta_service`` was null, or not made at all (session 23)."""
    # Each alone in its batch: the key set decides which columns exist.
    for meta, service in [(b'{"trace:":7,"service":"checkout","created_at":%d}', "checkout"),
                          (b'{":":1,"service":"colon-key","created_at":%d}', "colon-key"),
                          (b'{"created_at":%d, ":x" :2 ,"service":":v:"}', ":v:"),
                          (b'{"created_at":%d,"a\\":":1,"service":"esc"}', "esc")]:
        assert _meta_frame(meta % TS)["meta_service"].to_list() == [service], meta
    rows = _meta_frame(b'{"created_at":%d, "x\\"svc": "evil", "a:b:c": "d:e"}' % TS)
    assert "meta_svc" not in rows.columns  # `x\"svc` is not the key svc


def test_a_number_beyond_a_float_in_meta_does_not_fail_the_batch() -> None:
    """A nested value sent the key search to a decoder of values, and 1e999 made it raise:
    the whole file failed on every retry (session 23). It is valid JSON, kept as written."""
    rows = _meta_frame(b'{"created_at":%d,"tags":["said: \\"hi\\""],"ratio":1e999}' % TS,
                       b'{"created_at":%d,"note:":1e999,"service":"web"}' % TS)
    assert rows["meta_ratio"].to_list() == ["1e999", None]
    assert rows["meta_tags"].to_list() == ['["said: \\"hi\\""]', None]
    assert rows["meta_service"].to_list() == [None, "web"]


def test_the_published_rows_schema_refuses_the_reserved_type() -> None:
    """The ingest quarantines such a line; the published rows' schema check holds it too."""
    from cryptodudez.checks.events import schema_failures  # noqa: PLC0415

    rows = validate_lines(LineBatch(1, line(event())), source="s").valid
    assert schema_failures(rows).height == 0
    bad = rows.with_columns(event_type=pl.lit("__HIVE_DEFAULT_PARTITION__"))
    assert "__HIVE_DEFAULT_PARTITION__" in schema_failures(bad)["failure_case"].to_list()
    newline = rows.with_columns(event_type=pl.lit("click\n"))
    assert schema_failures(newline).height > 0


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_file_is_named_as_such(encoding: str) -> None:
    text = (line(event()).decode() + "\n") * 2
    raw = text.encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw
    out = validate_lines(LineBatch(1, raw), source="s")
    assert out.valid.height == 0
    assert "UTF-16 byte order mark: event files must be UTF-8" in out.quarantine["reason"][0]
    assert "UTF-16" not in " ".join(out.quarantine["reason"][1:].to_list())


def test_blank_lines_are_framing_not_records() -> None:
    lines = [line(event(data_id="a")), b"", b"   ", line(event(data_id="b")), b"\t"]
    out = validate_lines(LineBatch(10, b"\n".join(lines)), source="s")
    assert out.records == 2
    assert out.valid["_line"].to_list() == [10, 13]


def test_a_form_feed_or_vertical_tab_line_is_not_blank_but_malformed() -> None:
    """JSON's whitespace is space, tab, CR and LF; ``bytes.isspace`` also took \\x0b and
    \\x0c, and such a line vanished without a record (session 23)."""
    lines = [line(event(data_id="a")), b"\x0c", b" \x0b ", b"\r"]
    out = validate_lines(LineBatch(1, b"\n".join(lines)), source="s")
    assert out.records == 3
    assert out.quarantine["line"].to_list() == [2, 3]
    assert all(r.startswith("malformed JSON") for r in out.quarantine["reason"].to_list())


def test_line_numbers_run_on_across_batches() -> None:
    body = b"\n".join(line(event(data_id=str(i))) for i in range(50)) + b"\n"
    body = body.replace(b'"id": "17"', b'"id": 17')
    seen, bad = [], []
    for batch in iter_line_batches(io.BytesIO(body), batch_bytes=300):
        assert isinstance(batch, LineBatch)
        out = validate_lines(batch, source="s")
        seen += out.valid["_line"].to_list()
        bad += out.quarantine["line"].to_list()
    assert bad == [18]
    assert sorted(seen + bad) == list(range(1, 51))


def test_last_line_without_newline_is_read() -> None:
    body = line(event(data_id="a")) + b"\n" + line(event(data_id="b"))
    batches = [b for b in iter_line_batches(io.BytesIO(body)) if isinstance(b, LineBatch)]
    assert sum(validate_lines(b, source="s").valid.height for b in batches) == 2


@pytest.mark.parametrize("compress", [False, True])
def test_a_byte_order_mark_before_the_first_line_is_not_part_of_it(compress: bool) -> None:
    body = b"\xef\xbb\xbf" + line(event()) + b"\n" + line(event(data_id="second")) + b"\n"
    raw = gzip.compress(body) if compress else body
    batches = list(iter_line_batches(io.BytesIO(raw), batch_bytes=1 << 20))
    out = validate_lines(batches[0], source="s")  # type: ignore[arg-type]
    assert out.quarantine.height == 0, out.quarantine["reason"].to_list()
    assert out.valid["_line"].to_list() == [1, 2]


def test_gzip_is_read_and_a_truncated_stream_reported() -> None:
    body = b"\n".join(line(event(data_id=str(i))) for i in range(2000)) + b"\n"
    packed = gzip.compress(body)
    whole = list(iter_line_batches(io.BytesIO(packed), batch_bytes=1 << 16))
    assert sum(validate_lines(b, source="s").valid.height for b in whole
               if isinstance(b, LineBatch)) == 2000
    cut = list(iter_line_batches(io.BytesIO(packed[: len(packed) // 2]), batch_bytes=1 << 12))
    assert isinstance(cut[-1], str)
    assert cut[-1].startswith("unreadable after line")
    kept = sum(validate_lines(b, source="s").valid.height for b in cut if isinstance(b, LineBatch))
    assert 0 < kept < 2000


def _read_all(raw: bytes, batch_bytes: int = 1 << 12) -> tuple[list[str], list[str]]:
    """The ids of the valid lines read and the reasons the rest was not."""
    items = list(iter_line_batches(io.BytesIO(raw), batch_bytes=batch_bytes))
    ids = [i for b in items if isinstance(b, LineBatch)
           for i in validate_lines(b, source="s").valid["id"].to_list()]
    return ids, [b for b in items if isinstance(b, str)]


def test_a_damaged_gzip_file_keeps_every_line_that_decodes() -> None:
    """``gzip.GzipFile`` lost what the failing read had decoded (up to 64 KiB of lines)."""
    lines = [line(event(data_id=str(i))) for i in range(4000)]
    packed = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    decodable = zlib.decompressobj(wbits=31).decompress(packed[: len(packed) // 2])
    expected = [str(i) for i in range(decodable.count(b"\n"))]
    ids, reasons = _read_all(packed[: len(packed) // 2])
    assert ids == expected  # every whole line before the cut; the partial one is the rest's
    assert reasons == [f"unreadable after line {len(expected)}: the file ends inside a gzip "
                       "member (truncated)"]


def test_gzip_members_one_after_another_then_junk() -> None:
    """Members are read one after another (as zcat does); bytes after them that are not gzip
    are the rest of the file, after every line before them. NUL padding is ignored."""
    first = b"".join(line(event(data_id=f"a{i}")) + b"\n" for i in range(3))
    second = b"".join(line(event(data_id=f"b{i}")) + b"\n" for i in range(3))
    members = gzip.compress(first) + gzip.compress(second)
    ids, reasons = _read_all(members + b"junk")
    assert ids == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert reasons == ["unreadable after line 6: bytes after a gzip member that are not gzip"]
    assert _read_all(members + b"\x00" * 1000) == (ids, [])
    assert _read_all(members, batch_bytes=7) == (ids, [])  # members split across reads


def test_nul_padding_between_members_is_skipped_and_junk_after_it_reported() -> None:
    first = b"".join(line(event(data_id=f"a{i}")) + b"\n" for i in range(3))
    second = b"".join(line(event(data_id=f"b{i}")) + b"\n" for i in range(3))
    padding = b"\x00" * 200_000  # longer than one read
    ids, reasons = _read_all(gzip.compress(first) + padding + gzip.compress(second))
    assert (ids, reasons) == (["a0", "a1", "a2", "b0", "b1", "b2"], [])
    ids, reasons = _read_all(gzip.compress(first) + padding + b"junk\n")
    assert ids == ["a0", "a1", "a2"]
    assert reasons == ["unreadable after line 3: bytes after a gzip member that are not gzip"]


@pytest.mark.parametrize("where", ["checksum", "middle"])
def test_a_damaged_member_keeps_what_decodes_before_the_damage(where: str) -> None:
    """zlib drops a failing call's whole output; the reader replays that input byte by byte,
    so every line decoded before the damage is kept."""
    lines = [line(event(data_id=str(i))) for i in range(20_000)]
    body = b"\n".join(lines) + b"\n"
    packed = bytearray(gzip.compress(body, mtime=0))
    at = len(packed) - 8 if where == "checksum" else len(packed) // 2
    packed[at] ^= 0xFF
    ids, reasons = _read_all(bytes(packed), batch_bytes=1 << 20)
    assert len(reasons) == 1, reasons
    read = int(reasons[0].removeprefix("unreadable after line ").split(":")[0])
    # (a flipped bit mid-stream may decode to garbage lines, quarantined, before zlib notices)
    assert set(ids) <= {str(i) for i in range(read)}
    # as many lines as a decoder fed byte by byte gets before the damage
    decoder, decoded = zlib.decompressobj(wbits=31), bytearray()
    with contextlib.suppress(zlib.error):
        for i in range(len(packed)):
            decoded += decoder.decompress(bytes(packed[i:i + 1]))
    assert read == decoded.count(b"\n")
    assert len(ids) >= read - 5


def test_a_highly_compressed_file_does_not_swell_a_batch() -> None:
    body = line(event()) * 1 + b"\n" + (b" " * 1000 + b"\n") * 20_000  # 20 MB, blank lines
    batches = [b for b in iter_line_batches(io.BytesIO(gzip.compress(body)),
                                            batch_bytes=1 << 20) if isinstance(b, LineBatch)]
    assert max(len(b.data) for b in batches) <= (1 << 20) + (1 << 16)
    assert sum(b.data.count(b"\n") + 1 for b in batches) == 20_001


def test_valid_frame_schema_is_stable_for_an_all_bad_batch() -> None:
    out = validate_lines(LineBatch(1, b"{\n[]"), source="s")
    assert out.valid.height == 0
    assert out.valid.schema["created_at"] == pl.Datetime("us", "UTC")
    assert out.quarantine.height == 2


@pytest.mark.parametrize(("raw", "hinted"), [
    (b"Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,1,2,0.5,1.5,1.5,100", True),
    (b"id;type;created\n", False),  # no comma: no CSV we know of
    (b'"Date","Open"\n"2020-01-02","1"', True),  # quoted
    (b'{"data": \nDate,Open', False),  # the CSV-looking line is not the first
])
def test_a_csv_header_as_the_first_line_is_named_as_such(raw: bytes, hinted: bool) -> None:
    out = validate_lines(LineBatch(1, raw), source="s3://lake/raw/prices.jsonl")
    reasons = out.quarantine.sort("line")["reason"].to_list()
    assert reasons[0].startswith(("malformed JSON", "invalid event"))
    assert ("this first line looks like a CSV header" in reasons[0]) is hinted
    assert not any("CSV header" in r for r in reasons[1:])


@pytest.mark.parametrize(("separator", "hinted"), [(b"\r", True), (b"\r\n", False)])
def test_records_split_by_bare_carriage_returns_are_named_as_such(separator: bytes,
                                                                  hinted: bool) -> None:
    """A file with old Mac line endings is one line (QA walkthrough): its reason says why."""
    raw = separator.join([line(event(data_id="a")), line(event(data_id="b"))]) + separator
    out = validate_lines(LineBatch(1, raw), source="s")
    assert out.valid.height == (0 if hinted else 2)
    reasons = out.quarantine["reason"].to_list()
    assert any("bare carriage return" in r for r in reasons) is hinted
