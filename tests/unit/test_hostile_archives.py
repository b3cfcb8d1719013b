"""Hostile archive members, generated: no member and no byte sequence fails an ingest.

Each generated archive mixes good stock-price members (``stocks/SYM.csv``, valid rows in
varied but legal forms: CRLF, quoted fields, a UTF-8 byte-order mark, no final newline) with
bad ones (random bytes, NUL bytes, CR-only line endings, a row cut short, an empty member,
a member whose compressed data is corrupt). The archive is opened the way the asset opens
it (``iter_unpacked`` with the datasets, which peeks at every header to order members).

The property: the ingest raises nothing, every good member's rows are all in the valid
table (values unchanged), every bad member is rejected with a reason or has its bad lines
quarantined, and every member's records read = valid + quarantined.
"""

import io
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptodudez.archives import _ZIP_ERRORS, iter_unpacked, read_member
from cryptodudez.datasets.specs import DATASETS, STOCK_HEADER
from cryptodudez.ingest import IngestResult, ingest_members
from tests.unit.test_ingest_rules import independent_records

HEADER = ",".join(STOCK_HEADER)
BOM = b"\xef\xbb\xbf"
FILE_URI = "file:///lake/raw/hostile.zip"
EXAMPLES = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass(frozen=True)
class Good:
    """A valid stock member: its rows as they must appear in the table."""

    rows: list[tuple[str, float, float, float, float, float, int]]
    newline: bytes
    quoted: bool
    bom: bool
    final_newline: bool

    def lines(self) -> list[str]:
        out = []
        for row in self.rows:
            fields = [str(v) for v in row]
            out.append(",".join(f'"{f}"' for f in fields) if self.quoted else ",".join(fields))
        return out

    def data(self) -> bytes:
        text = self.newline.decode().join([HEADER, *self.lines()])
        body = text.encode() + (self.newline if self.final_newline else b"")
        return (BOM if self.bom else b"") + body


@st.composite
def good_members(draw: st.DrawFn, max_rows: int = 25) -> Good:
    n = draw(st.integers(1, max_rows))
    start = date(2000, 1, 3) + timedelta(days=draw(st.integers(0, 5000)))
    rows = []
    for i in range(n):
        prices = draw(st.lists(st.integers(0, 10**6), min_size=4, max_size=4))
        low, high = min(prices) / 100, max(prices) / 100
        rows.append(((start + timedelta(days=i)).isoformat(), prices[0] / 100, high, low,
                     prices[1] / 100, prices[2] / 100, draw(st.integers(0, 2**40))))
    return Good(rows, draw(st.sampled_from([b"\n", b"\r\n"])), draw(st.booleans()),
                draw(st.booleans()), draw(st.booleans()))


def _cut_last_row(good: Good, where: int) -> bytes:
    """The member cut inside its last row, before that row's last comma (so it is short)."""
    data = good.data()
    body = data.rstrip(b"\r\n")
    last = body.rfind(b"\n") + 1
    commas = [i for i in range(last, len(body)) if body[i:i + 1] == b","]
    return body[: commas[where % len(commas)]]


@st.composite
def bad_members(draw: st.DrawFn) -> tuple[str, bytes]:
    """A hostile member: (kind, bytes)."""
    kind = draw(st.sampled_from(["random", "nul", "nul_late", "cr_only", "bom_random",
                                 "truncated", "empty", "header_random", "stray_quote",
                                 "corrupt"]))
    good = draw(good_members(max_rows=400 if kind == "nul_late" else 25))
    if kind in ("random", "corrupt"):
        data = draw(st.binary(min_size=1, max_size=3000))
    elif kind in ("nul", "nul_late"):  # late: past the 8 KiB sniffed for binary content
        data = good.data()
        at = draw(st.integers(min(len(data), 9000) if kind == "nul_late" else 0, len(data)))
        data = data[:at] + b"\x00" * draw(st.integers(1, 4)) + data[at:]
    elif kind == "cr_only":
        data = good.data().replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    elif kind == "bom_random":
        data = BOM + draw(st.binary(max_size=3000))
    elif kind == "truncated":
        data = _cut_last_row(good, draw(st.integers(0, 10)))
    elif kind == "empty":
        data = b""
    elif kind == "header_random":
        data = f"{HEADER}\n".encode() + draw(st.binary(min_size=1, max_size=3000)) + b'\xff,"'
    else:  # quotes inside a field, field count intact: CSV readers disagree on such a record
        lines = good.data().split(b"\n")
        at = draw(st.integers(1, len(lines) - 1))
        if not lines[at].strip():
            at = 1
        line = lines[at]
        if draw(st.booleans()):  # a quoted word inside a field: 202"x"0-01-02
            lines[at] = line[:3] + b'"x"' + line[3:]
        else:  # text after the closing quote of the first field: "2020-01-02"x
            end = line.index(b",")
            first = line[:end] if line.startswith(b'"') else b'"' + line[:end] + b'"'
            lines[at] = first + b"x" + line[end:]
        data = b"\n".join(lines)
    return kind, data


def _corrupt(archive: bytes, name: str) -> bytes:
    """The archive with the second half of ``name``'s compressed data overwritten."""
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        info = z.getinfo(name)
    local = archive[info.header_offset:]
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(
        local[28:30], "little")
    half = info.compress_size // 2
    junk = bytes((b ^ 0x5A) for b in archive[start + half:start + info.compress_size])
    return archive[:start + half] + junk + archive[start + info.compress_size:]


@dataclass
class Built:
    """A generated archive, its good members and its bad members' kinds, by name."""

    archive: bytes
    goods: dict[str, Good]
    bads: dict[str, str]
    data: dict[str, bytes]


def build(goods: list[Good], bads: list[tuple[str, bytes]]) -> Built:
    """The archive of good and bad members, interleaved."""
    members: list[tuple[str, bytes]] = []
    good_names = {f"stocks/G{i}.csv": g for i, g in enumerate(goods)}
    bad_names = {f"stocks/B{i}.csv": kind for i, (kind, _) in enumerate(bads)}
    members += [(name, g.data()) for name, g in good_names.items()]
    members += [(f"stocks/B{i}.csv", data) for i, (_, data) in enumerate(bads)]
    members.sort(key=lambda m: (int(m[0][8:-4]), m[0][7]))  # interleave good and bad
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(name, data)
    archive = buf.getvalue()
    for name, kind in bad_names.items():
        if kind == "corrupt":
            archive = _corrupt(archive, name)
    return Built(archive, good_names, bad_names, dict(members))


def ingest(archive: bytes, *, batch_bytes: int | None) -> IngestResult:
    """Ingest an archive batch by batch, exactly as the asset does."""
    results = [ingest_members(batch, DATASETS) for batch in iter_unpacked(
        FILE_URI, io.BytesIO(archive), DATASETS, batch_bytes=batch_bytes)]
    tables: dict[str, list[pl.DataFrame]] = {}
    quarantine: dict[str, list[pl.DataFrame]] = {}
    for r in results:
        for t, f in r.tables.items():
            tables.setdefault(t, []).append(f)
        for t, f in r.quarantine.items():
            quarantine.setdefault(t, []).append(f)
    return IngestResult(
        tables={t: pl.concat(fs, how="diagonal_relaxed") for t, fs in tables.items()},
        quarantine={t: pl.concat(fs) for t, fs in quarantine.items()},
        members=pl.concat([r.members for r in results]),
        columns=pl.concat([r.columns for r in results]),
    )


def check_property(result: IngestResult, goods: dict[str, Good], bads: dict[str, str],
                   data: dict[str, bytes]) -> None:
    """Good members wholly kept, bad members quarantined, every member accounted for.

    ``data``: the bytes of every member, to count its records independently of the ingest.
    """
    members = {m["member"]: m for m in result.members.iter_rows(named=True)}
    assert set(members) == set(goods) | set(bads)
    valid = result.tables.get("stock_prices", pl.DataFrame(schema={"_source": pl.String}))
    quarantine = pl.concat(list(result.quarantine.values())) if result.quarantine else None
    for name, good in goods.items():
        m = members[name]
        assert m["status"] == "validated", (name, m)
        assert m["rows_read"] == m["rows_valid"] == len(good.rows), (name, m)
        rows = valid.filter(pl.col("_source").str.starts_with(f"zip://{name}::")).sort("_line")
        assert rows.select("Date", "Open", "High", "Low", "Close", "Adj Close",
                           "Volume").rows() == good.rows, name
        assert rows["Symbol"].unique().to_list() == [name[len("stocks/"):-len(".csv")]]
    for name, kind in bads.items():
        m = members[name]
        assert m["status"] in ("rejected", "validated_with_quarantine"), (name, kind, m)
        if m["status"] == "rejected":
            assert m["reason"], (name, kind, m)
            assert quarantine is not None
            whole = quarantine.filter(pl.col("source") == m["uri"], pl.col("line").is_null())
            assert whole.height == 1, (name, kind)
        else:
            assert m["rows_quarantined"] > 0, (name, kind, m)
    for m in members.values():
        assert m["rows_read"] == m["rows_valid"] + m["rows_quarantined"], m
        if m["status"] != "rejected":
            assert m["rows_read"] == independent_records(data[m["member"]]), m
        if m["status"] == "validated_with_quarantine":
            assert quarantine is not None
            lines = quarantine.filter(pl.col("source") == m["uri"], pl.col("line").is_not_null())
            assert lines.height == m["rows_quarantined"], m


@EXAMPLES
@given(goods=st.lists(good_members(), min_size=1, max_size=4),
       bads=st.lists(bad_members(), min_size=1, max_size=4),
       batch_bytes=st.sampled_from([None, 1, 4096]))
def test_hostile_members_never_fail_the_archive(goods: list[Good],
                                                bads: list[tuple[str, bytes]],
                                                batch_bytes: int | None) -> None:
    built = build(goods, bads)
    check_property(ingest(built.archive, batch_bytes=batch_bytes), built.goods, built.bads,
                   built.data)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(data=st.binary(max_size=2000), after_header=st.booleans())
def test_any_bytes_next_to_a_good_member(data: bytes, after_header: bool) -> None:
    """Arbitrary bytes (alone, or after a valid header) never fail the good member."""
    good = Good([("2020-01-02", 10.0, 11.0, 9.5, 10.5, 10.4, 1000)], b"\n", quoted=False,
                bom=False, final_newline=True)
    payload = f"{HEADER}\n".encode() + data if after_header else data
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("stocks/G0.csv", good.data())
        z.writestr("stocks/B0.csv", payload)
    result = ingest(buf.getvalue(), batch_bytes=None)
    members = {m["member"]: m for m in result.members.iter_rows(named=True)}
    assert members["stocks/G0.csv"]["status"] == "validated"
    assert result.tables["stock_prices"].filter(
        pl.col("_source").str.contains("G0.csv")).height == 1
    bad = members["stocks/B0.csv"]
    assert bad["rows_read"] == bad["rows_valid"] + bad["rows_quarantined"]
    assert bad["status"] != "rows_unaccounted"
    if bad["status"] != "rejected":
        assert bad["rows_read"] == independent_records(payload)


def test_ten_megabyte_single_line_members() -> None:
    """A 10 MB line, as the header or as the only data line, is rejected or quarantined."""
    good = Good([("2020-01-02", 10.0, 11.0, 9.5, 10.5, 10.4, 1000)], b"\n", quoted=False,
                bom=False, final_newline=True)
    line = b"9," * (5 << 20)
    data = {"stocks/G0.csv": good.data(), "stocks/B0.csv": line,
            "stocks/B1.csv": f"{HEADER}\n".encode() + line,
            "stocks/B2.csv": f"{HEADER}\n".encode() + b"x" * (10 << 20) + b"\n"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in data.items():
            z.writestr(name, payload)
    result = ingest(buf.getvalue(), batch_bytes=None)
    check_property(result, {"stocks/G0.csv": good}, dict.fromkeys(list(data)[1:], "long"), data)


def test_bom_before_a_valid_header_is_ingested() -> None:
    """A UTF-8 byte-order mark before a valid header is what spreadsheet exports write."""
    good = Good([("2020-01-02", 10.0, 11.0, 9.5, 10.5, 10.4, 1000)], b"\r\n", quoted=False,
                bom=True, final_newline=True)
    built = build([good], [("cr_only", good.data().replace(b"\r\n", b"\r"))])
    result = ingest(built.archive, batch_bytes=None)
    check_property(result, built.goods, built.bads, built.data)
    reason = result.members.filter(pl.col("member") == "stocks/B0.csv")["reason"][0]
    assert "CR-only line endings" in reason


def test_corrupt_member_data_rejects_that_member_only() -> None:
    good = Good([("2020-01-02", 10.0, 11.0, 9.5, 10.5, 10.4, 1000)], b"\n", quoted=False,
                bom=False, final_newline=True)
    built = build([good, good], [("corrupt", good.data() * 50)])
    result = ingest(built.archive, batch_bytes=None)
    check_property(result, built.goods, built.bads, built.data)
    reason = result.members.filter(pl.col("member") == "stocks/B0.csv")["reason"][0]
    assert reason.startswith("corrupt archive member")


@given(st.lists(st.tuples(st.binary(max_size=4000), st.sampled_from(
    [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=2**31))
@EXAMPLES
def test_read_member_gives_what_zipfile_reads_and_refuses_what_it_refuses(
        members: list[tuple[bytes, int]], flip: int) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for i, (data, method) in enumerate(members):
            archive.writestr(f"m{i}.csv", data * 3, compress_type=method)
    archive = zipfile.ZipFile(buf)
    for info in archive.infolist():
        assert read_member(archive, info) == archive.read(info)

    # One byte of the first member's data flipped: both readers refuse it, or both read the
    # same bytes (a flip may leave a valid deflate stream whose CRC-32 still fails).
    info = archive.infolist()[0]
    raw = bytearray(buf.getvalue())
    start = info.header_offset + 30 + len(info.filename)
    if info.compress_size == 0:
        return
    raw[start + flip % info.compress_size] ^= 0xFF
    damaged = zipfile.ZipFile(io.BytesIO(bytes(raw)))
    outcomes = []
    for reader in (damaged.read, lambda i: read_member(damaged, i)):
        try:
            outcomes.append(reader(damaged.infolist()[0]))
        except _ZIP_ERRORS as exc:
            outcomes.append(type(exc))
    ours, theirs = outcomes[1], outcomes[0]
    assert isinstance(ours, type) == isinstance(theirs, type)
    if not isinstance(ours, type):
        assert ours == theirs


def test_read_member_refuses_a_local_header_naming_another_file() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("stocks/AAA.csv", b"x" * 100)
    raw = buf.getvalue()
    local_name = raw.index(b"stocks/AAA.csv")  # the local header's copy comes first
    damaged = zipfile.ZipFile(io.BytesIO(raw[:local_name] + b"stocks/BBB.csv"
                                         + raw[local_name + 14:]))
    info = damaged.infolist()[0]
    assert info.filename == "stocks/AAA.csv"
    for reader in (damaged.read, lambda i: read_member(damaged, i)):
        with pytest.raises(zipfile.BadZipFile, match="differ"):
            reader(info)
