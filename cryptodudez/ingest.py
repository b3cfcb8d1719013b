"""From a landed file's bytes to validated rows, quarantined rows and catalogue entries.

Pure functions of bytes and frames: no Dagster, no file system. ``archives`` opens landed
files in batches of members; ``ingest_members`` recognises, converts and validates every
member of a batch set-at-a-time (one polars read per group of same-format members, never one
reader per member).

Two paths lead to the same rows. The typed path reads every plain member of a dataset that
has a ``TypedRead`` in one typed multi-member polars read, and keeps a member only when all
its rows provably parse, have the right field count and pass the schema. Every other member
takes the exact path: quote-aware framing of String fields, the dataset's converter and
the pandera schema, which name the reason and line of every reject.

No byte sequence fails an ingest: each member is recognised or rejected on its own, with a
reason, and a read that fails for a group of members is retried on halves of the group, so
only the members (or records) that cause the failure are rejected (or quarantined).
A member's ``rows_read`` is counted from its bytes and framing, apart from what became of
its records (see ``_records_read``), so ``rows_read = rows_valid + rows_quarantined`` is a
check that can fail; a member where it does not hold has status ``rows_unaccounted``.
"""

import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass

import pandera.errors as pa_errors
import polars as pl

from cryptodudez.archives import Member, Unpacked, member_uri, unpack
from cryptodudez.datasets import csv as csvframe
from cryptodudez.datasets import jsonl
from cryptodudez.datasets.merge import repeated_values
from cryptodudez.datasets.registry import DatasetSpec, closest, recognise, recognise_fields
from cryptodudez.lake.events import EVENT_ENVELOPE
from cryptodudez.lake.layout import EVENT_SUFFIXES

QUARANTINE_SCHEMA = {
    "source": pl.String,
    "line": pl.Int64,
    "raw": pl.String,
    "reason": pl.String,
}
MEMBER_SCHEMA = {
    "uri": pl.String,
    "member": pl.String,
    "dataset": pl.String,
    "table": pl.String,
    "size": pl.Int64,
    "rows_read": pl.Int64,
    "rows_valid": pl.Int64,
    "rows_quarantined": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
}
COLUMN_SCHEMA = {"uri": pl.String, "position": pl.Int32, "name": pl.String, "type": pl.String}
UNRECOGNISED_TABLE = "unrecognised"
_SAMPLE_ROWS = 100  # rows of each member whose values decide its inferred column types
_SAMPLE_BYTES = 16384  # the typed path samples at most this much of a member for inference

__all__ = ["IngestResult", "Member", "Unpacked", "ingest_members", "member_uri", "unpack"]


@dataclass
class IngestResult:
    """Everything one landed file produced."""

    tables: dict[str, pl.DataFrame]
    quarantine: dict[str, pl.DataFrame]
    members: pl.DataFrame
    columns: pl.DataFrame


# Failures a member's bytes can provoke in a read, a conversion or a validation. They are
# turned into that member's rejection (with the message as its reason), never a failed run.
_MEMBER_ERRORS = (pl.exceptions.PolarsError, pa_errors.SchemaError, pa_errors.SchemaErrors,
                  ValueError)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _whole_file_problem(data: bytes) -> str | None:
    if not data[:4096].strip() and not data.strip():  # copies the data only when blank
        return "empty file"
    if data.startswith(_UTF16_BOMS):
        return "UTF-16 text (byte-order mark): only UTF-8 is read"
    if data.startswith(b"\x1f\x8b"):  # said "binary content": a gzipped CSV is a common slip
        return ("gzip-compressed data: deliver CSV files plain or in a zip archive (only "
                "events files, *.jsonl.gz, are read gzipped)")
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # said "binary content" (a QA walkthrough)
        return ("a zip archive inside the delivery: nested archives are not unpacked; land "
                "it as a file of its own")
    if b"\x00" in data[:8192]:
        return "binary content (NUL bytes), not text"
    return None


def _data_lines(data: bytes, newlines: int | None = None) -> int:
    """Lines after the header (the empty text after a final line terminator is no line).

    Counted in the bytes (``bytes.count``, or ``newlines`` when already counted),
    independently of how the lines are parsed.
    """
    lines = (data.count(b"\n") if newlines is None else newlines) + (
        0 if data.endswith(b"\n") else 1)
    return max(lines - 1, 0)


def _member_lines(member: Member) -> int:
    """:func:`_data_lines` of a member's bytes, from its newline count."""
    return _data_lines(member.data, member.newlines)


def _error_reason(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


@dataclass
class _Framed:
    # sid, line, raw, problem: every data record (a null ``problem`` for a well-formed one)
    records: pl.DataFrame
    fields: pl.DataFrame  # String fields + sid + line, for well-formed records


def _problem(ncols: int) -> pl.Expr:
    """Why a framed record cannot be read as a row (null when it can)."""
    n = pl.col("n_fields")
    return (
        pl.when(n == 0).then(pl.lit("blank line"))
        .when(~pl.col("closed")).then(pl.lit("unterminated quoted field at end of file"))
        .when(n != ncols).then(
            pl.format("wrong field count: expected {}, found {}", pl.lit(ncols), n))
        .when(~pl.col("well_quoted")).then(
            pl.lit("malformed quoting: a quote inside an unquoted field, or text after a "
                   "closing quote"))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("problem")
    )


def _frame_fast(members: Sequence[Member], ncols: int) -> _Framed | None:
    """One-pass framing for members without quotes: one line is one record."""
    chunks = [m.data if m.data.endswith(b"\n") else m.data + b"\n" for m in members]
    counts = [c.count(b"\n") for c in chunks]
    buf = b"".join(chunks)
    lines = pl.read_csv(
        io.BytesIO(buf), has_header=False, separator="\x1f", quote_char=None,
        schema={"raw": pl.String},
    )
    names = [f"f{i}" for i in range(ncols)]
    fields = pl.read_csv(
        io.BytesIO(buf), has_header=False, quote_char=None, truncate_ragged_lines=True,
        schema=dict.fromkeys(names, pl.String),
    )
    if lines.height != sum(counts) or fields.height != lines.height:
        return None
    sizes = pl.Series(counts, dtype=pl.Int64)
    starts = sizes.cum_sum() - sizes
    sid = pl.int_range(0, len(counts), eager=True, dtype=pl.Int64).repeat_by(sizes).explode()
    line = pl.int_range(1, lines.height + 1, eager=True, dtype=pl.Int64) - starts.gather(sid)
    has_cr = b"\r" in buf
    records = lines.with_columns(
        sid=sid,
        line=line,
        raw=(pl.col("raw").str.strip_suffix("\r") if has_cr else pl.col("raw")).fill_null(""),
    ).with_columns(
        n_fields=pl.when(pl.col("raw") == "").then(0).otherwise(
            pl.col("raw").str.count_matches(",", literal=True) + 1
        ).cast(pl.Int64),
        closed=pl.lit(value=True),
        well_quoted=pl.lit(value=True),
    ).with_columns(_problem(ncols))
    keep = (records["line"] > 1) & records["problem"].is_null()
    good = fields.with_columns(sid=sid, line=line).filter(keep)
    if has_cr:
        good = good.with_columns(pl.col(names[-1]).str.strip_suffix("\r"))
    records = records.filter(pl.col("line") > 1).select("sid", "line", "raw", "problem")
    return _Framed(records, good.select(*names, "sid", "line"))


def _read_fields(names: list[str], good: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """String fields of well-formed records (``sid``, ``line``, ``raw``), read set-at-a-time.

    Should the reader refuse the set (a record it splits differently than the framing), the
    set is halved until each record it refuses is alone: those come back as (``sid``,
    ``line``, ``reason``) and every other record is read.
    """
    try:
        fields = csvframe.read_records(names, good["raw"])
    except (pl.exceptions.PolarsError, ValueError) as exc:
        if good.height == 1:
            reason = f"the CSV reader cannot read this record: {_error_reason(exc)}"
            return (pl.DataFrame(schema={**dict.fromkeys(names, pl.String), "sid": pl.Int64,
                                         "line": pl.Int64}),
                    good.select("sid", "line", reason=pl.lit(reason)))
        half = good.height // 2
        (a, a_bad), (b, b_bad) = (_read_fields(names, good[:half]),
                                  _read_fields(names, good[half:]))
        return pl.concat([a, b]), pl.concat([a_bad, b_bad])
    return (pl.concat([fields, good.select("sid", "line")], how="horizontal"),
            pl.DataFrame(schema={"sid": pl.Int64, "line": pl.Int64, "reason": pl.String}))


def _frame_exact(texts: pl.DataFrame, ncols: int) -> _Framed:
    """Quote-aware framing of the text after each header line (``source`` = sid, ``text``).

    Multi-line quoted fields stay in one record; the header is always the first line, so a
    stray quote in it cannot swallow the records after it.
    """
    recs = csvframe.split_records(texts).rename({"source": "sid"}).with_columns(
        line=pl.col("line") + 1,
        n_fields=pl.when(pl.col("raw") == "").then(0).otherwise(
            csvframe.count_fields(pl.col("raw"))
        ),
        well_quoted=csvframe.well_quoted(pl.col("raw")),
    ).with_columns(_problem(ncols))
    names = [f"f{i}" for i in range(ncols)]
    fields, unreadable = _read_fields(names, recs.filter(pl.col("problem").is_null()))
    records = recs.select("sid", "line", "raw", "problem")
    if unreadable.height:
        records = records.join(unreadable, on=["sid", "line"], how="left",
                               maintain_order="left").select(
            "sid", "line", "raw", problem=pl.coalesce("problem", "reason"))
    return _Framed(records, fields)


def _decode(
    members: Sequence[Member], sids: Sequence[int]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Texts after the header line (bad UTF-8 replaced), and the (sid, line) with bad bytes."""
    texts, bad = [], []
    for sid, m in zip(sids, members, strict=True):
        try:
            text = m.data.decode("utf-8")
        except UnicodeDecodeError:
            for i, raw_line in enumerate(m.data.split(b"\n"), start=1):
                try:
                    raw_line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad.append((sid, i, f"invalid UTF-8 at byte {exc.start}"))
            text = m.data.decode("utf-8", errors="replace")
        texts.append(text.partition("\n")[2])
    frame = pl.DataFrame({"source": list(sids), "text": texts},
                         schema={"source": pl.Int64, "text": pl.String})
    bad_lines = pl.DataFrame(
        bad, schema={"sid": pl.Int64, "line": pl.Int64, "reason": pl.String}, orient="row"
    )
    return frame, bad_lines


def _frame(members: Sequence[Member], ncols: int) -> tuple[_Framed, pl.DataFrame]:
    """Frame members into records; ``sid`` is a member's index in ``members``."""
    plain = [i for i, m in enumerate(members) if b'"' not in m.data and b"\x1f" not in m.data]
    plain_set = set(plain)
    quoted = [i for i in range(len(members)) if i not in plain_set]
    parts: list[_Framed] = []
    bad_lines = pl.DataFrame(schema={"sid": pl.Int64, "line": pl.Int64, "reason": pl.String})
    if plain:
        try:
            fast = _frame_fast([members[i] for i in plain], ncols)
        except pl.exceptions.ComputeError:  # undecodable bytes: take the exact path
            fast = None
        if fast is None:
            quoted = list(range(len(members)))
        else:
            remap = pl.Series(plain, dtype=pl.Int64)
            parts.append(_Framed(
                fast.records.with_columns(sid=remap.gather(fast.records["sid"])),
                fast.fields.with_columns(sid=remap.gather(fast.fields["sid"])),
            ))
    if quoted:
        texts, bad_lines = _decode([members[i] for i in quoted], quoted)
        parts.append(_frame_exact(texts, ncols))
    records = pl.concat([p.records for p in parts])
    fields = pl.concat([p.fields for p in parts])
    return _Framed(records, fields), bad_lines


def infer_types(
    fields: pl.DataFrame, names: Sequence[str], uris: Sequence[str]
) -> pl.DataFrame:
    """Infer each member's column types from a sample of its values, like a crawler would.

    ``fields`` holds String columns plus ``sid`` (index into ``uris``) and ``line``.
    Returns one row per (member, column): ``uri``, ``position``, ``name``, ``type``
    (BIGINT, DOUBLE, DATE, TIMESTAMP, BOOLEAN, VARCHAR, or NULL when the sample has no value).
    """
    sample = fields.filter(pl.col("line") <= _SAMPLE_ROWS + 1)
    cols = [c for c in fields.columns if c not in ("sid", "line")]
    aggs = []
    for c in cols:
        v = pl.col(c).str.strip_chars()
        present = v.is_not_null() & (v != "")
        aggs += [
            present.sum().alias(f"{c}|n"),
            v.cast(pl.Int64, strict=False).is_not_null().sum().alias(f"{c}|BIGINT"),
            v.cast(pl.Float64, strict=False).is_not_null().sum().alias(f"{c}|DOUBLE"),
            v.str.contains(r"^\d{4}-\d{2}-\d{2}$").sum().alias(f"{c}|DATE"),
            v.str.contains(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?").sum()
            .alias(f"{c}|TIMESTAMP"),
            v.str.to_lowercase().is_in(["true", "false"]).sum().alias(f"{c}|BOOLEAN"),
        ]
    counts = sample.group_by("sid").agg(aggs)
    rows = []
    for rec in counts.iter_rows(named=True):
        for pos, (c, name) in enumerate(zip(cols, names, strict=True), start=1):
            n = rec[f"{c}|n"]
            kind = "NULL" if n == 0 else next(
                (t for t in ("BIGINT", "DOUBLE", "DATE", "TIMESTAMP", "BOOLEAN")
                 if rec[f"{c}|{t}"] == n),
                "VARCHAR",
            )
            rows.append((uris[rec["sid"]], pos, name, kind))
    return pl.DataFrame(rows, schema=COLUMN_SCHEMA, orient="row")


def _schema_failures(frame: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """Row index and reason of every row the spec's pandera schema rejects."""
    try:
        spec.schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as exc:
        cases = exc.failure_cases.filter(pl.col("index").is_not_null())
        table_level = exc.failure_cases.filter(pl.col("index").is_null())
        if table_level.height:
            msg = f"{spec.table}: schema-level failure {table_level.rows()[:3]}"
            raise ValueError(msg) from exc
        return (
            cases.with_columns(
                reason=pl.when(pl.col("schema_context") == "DataFrameSchema")
                .then(pl.format("failed {}", pl.col("check")))
                .when(pl.col("check") == "not_nullable")
                .then(pl.format("null in required field {}", pl.col("column")))
                .otherwise(pl.format("{} failed {}: {}", pl.col("column"), pl.col("check"),
                                     pl.col("failure_case").cast(pl.String).str.slice(0, 60)))
            )
            .group_by(pl.col("index").cast(pl.Int64))
            .agg(pl.col("reason").unique(maintain_order=True).str.join("; "))
        )
    return pl.DataFrame(schema={"index": pl.Int64, "reason": pl.String})


def _duplicates_within_file(frame: pl.DataFrame, key: Sequence[str]) -> pl.DataFrame:
    """Rows whose key already appeared earlier in the same member, with the first line."""
    cols = ["__sid", *key]
    if repeated_values(frame.select(pl.struct(cols).hash()).to_series()).len() == 0:
        return pl.DataFrame(schema={"index": pl.Int64, "reason": pl.String})
    first = frame.select(pl.struct(cols).is_first_distinct()).to_series()
    if first.all():
        return pl.DataFrame(schema={"index": pl.Int64, "reason": pl.String})
    indexed = frame.with_row_index("index")
    dups = indexed.filter(~first)
    firsts = indexed.filter(first).join(dups.select(cols).unique(), on=cols, how="semi")
    return dups.join(firsts.select(*cols, first_line="_line"), on=cols, how="left").select(
        pl.col("index").cast(pl.Int64),
        pl.format("duplicate key ({}) in the same file, first at line {}",
                  pl.lit(", ".join(key)), pl.col("first_line")).alias("reason"),
    )


@dataclass
class _SpecOutcome:
    valid: pl.DataFrame
    quarantined: pl.DataFrame
    columns: pl.DataFrame
    read: dict[str, int]  # member uri -> records read (counted apart from their outcome)
    rejected: list[tuple[Member, str]] = dataclasses.field(default_factory=list)


def _with_position(frame: pl.DataFrame, rows: Sequence[int], *, first_line: int) -> pl.DataFrame:
    """Number the rows of members read one after another: ``sid`` and ``line`` columns."""
    counts = pl.Series(rows, dtype=pl.Int64)
    sid = pl.int_range(0, len(rows), eager=True, dtype=pl.Int64).repeat_by(counts).explode()
    line = pl.int_range(first_line, frame.height + first_line, eager=True,
                        dtype=pl.Int64) - (counts.cum_sum() - counts).gather(sid)
    return frame.with_columns(sid=sid, line=line)


def _sample_fields(members: Sequence[Member], names: list[str]) -> pl.DataFrame:
    """String fields of the first rows of plain members (``sid``, ``line``), for inference."""
    heads = [m.data if len(m.data) <= _SAMPLE_BYTES
             else m.data[: m.data.rfind(b"\n", 0, _SAMPLE_BYTES) + 1] for m in members]
    fields = pl.read_csv(heads, has_header=True, new_columns=names, quote_char=None,
                         schema=dict.fromkeys(names, pl.String), truncate_ragged_lines=True)
    return _with_position(fields, [_data_lines(h) for h in heads], first_line=2)


def _typed_rows(members: Sequence[Member], spec: DatasetSpec) -> pl.DataFrame | None:
    """One typed read of plain members, numbered by member and line; None if it fails.

    polars refuses a line with more fields than the schema (the whole read fails, and the
    caller retries without the members whose comma count is wrong); a line with fewer
    fields gets nulls, which makes its row unclean.
    """
    assert spec.typed is not None
    rows = [_member_lines(m) for m in members]
    try:
        values = pl.read_csv([m.data for m in members], has_header=True, quote_char=None,
                             schema=spec.typed.schema, ignore_errors=True)
    except pl.exceptions.PolarsError:  # a ragged line, or undecodable bytes
        return None
    if values.height != sum(rows):
        return None
    return _with_position(values, rows, first_line=2)


def _typed_readable(members: list[Member], spec: DatasetSpec) -> list[Member]:
    """The members one typed read accepts: all, or (halving) those of the halves it does.

    Only called once a read of a larger group failed, so one member with bytes the typed
    read refuses sends that member, not all its neighbours, to exact framing.
    """
    if _typed_rows(members, spec) is not None:
        return members
    if len(members) == 1:
        return []
    half = len(members) // 2
    return _typed_readable(members[:half], spec) + _typed_readable(members[half:], spec)


def _ingest_typed(members: list[Member], spec: DatasetSpec,
                  header: list[str]) -> tuple[_SpecOutcome | None, list[Member]]:
    """Members taken whole from one typed read, and the members left for exact framing.

    A member is taken only when it is plain (no quotes, no carriage returns), every line has
    exactly the dataset's field count, and every row parses, passes the schema and has a key
    unique in the member.
    """
    assert spec.typed is not None
    ncols = len(spec.header)
    plain = [m for m in members if b'"' not in m.data and b"\r" not in m.data]
    values = _typed_rows(plain, spec) if plain else None
    if values is None and plain:  # retry without members whose comma count is wrong,
        plain = [m for m in plain  # then without any member the typed read refuses
                 if m.data.count(b",") == (ncols - 1) * (_member_lines(m) + 1)]
        values = _typed_rows(plain, spec) if plain else None
        if values is None and len(plain) > 1:
            half = len(plain) // 2
            plain = _typed_readable(plain[:half], spec) + _typed_readable(plain[half:], spec)
            values = _typed_rows(plain, spec) if plain else None
    if values is None:
        return None, members
    uris = pl.Series([m.uri for m in plain], dtype=pl.String)
    values = values.rename({"sid": "__sid", "line": "__line"}).with_columns(
        __source=uris.gather(values["sid"]))
    frame, clean = spec.typed.assemble(values)
    body = frame.with_columns(__sid=values["__sid"])
    bad = set(values["__sid"].filter(~clean).unique().to_list())
    if bad:
        body = body.filter(~pl.col("__sid").is_in(list(bad)))
    failing = pl.concat([_schema_failures(body.drop("__sid"), spec),
                         _duplicates_within_file(body, spec.key)])
    if failing.height:
        bad |= set(body["__sid"].gather(failing["index"]).unique().to_list())
        body = body.filter(~pl.col("__sid").is_in(list(bad)))
    taken = [m for i, m in enumerate(plain) if i not in bad]
    taken_ids = {id(m) for m in taken}
    rest = [m for m in members if id(m) not in taken_ids]
    if not taken:
        return None, rest
    sample = _sample_fields(taken, [f"f{i}" for i in range(ncols)])
    columns = infer_types(sample, header, [m.uri for m in taken])
    read = {m.uri: _member_lines(m) for m in taken}  # plain: one line is one record
    outcome = _SpecOutcome(body.drop("__sid"), pl.DataFrame(schema=QUARANTINE_SCHEMA), columns,
                           read)
    return outcome, rest


def _ingest_spec(members: list[Member], spec: DatasetSpec, header: list[str]) -> _SpecOutcome:
    """Valid rows, quarantine, inferred columns and records read of members of one dataset.

    Members whose bytes make a read, a conversion or a validation fail are rejected whole,
    each on its own, with the error as the reason; every other member is ingested.
    """
    if spec.is_json_lines:
        return _ingest_jsonl(members, spec)
    outcomes = []
    rest = members
    if spec.typed is not None:
        try:
            typed, rest = _ingest_typed(members, spec, header)
        except _MEMBER_ERRORS:  # the exact path below reads them all and names every reject
            typed, rest = None, members
        if typed is not None:
            outcomes.append(typed)
    if rest:
        outcomes += _ingest_exact_apart(rest, spec, header)
    valid = [o.valid for o in outcomes if o.valid.width]
    return _SpecOutcome(
        pl.concat(valid, how="vertical_relaxed") if valid else pl.DataFrame(),
        pl.concat([o.quarantined for o in outcomes]),
        pl.concat([o.columns for o in outcomes]),
        {uri: n for o in outcomes for uri, n in o.read.items()},
        [r for o in outcomes for r in o.rejected],
    )


def _ingest_exact_apart(members: list[Member], spec: DatasetSpec,
                        header: list[str]) -> list[_SpecOutcome]:
    """``_ingest_exact`` of all members at once; should that fail, of halves, down to one.

    A member is processed alone only when a group holding it failed, and one that fails
    alone is rejected with the error. Every member's outcome is the same whichever group it
    was read in (members never affect each other's rows).
    """
    try:
        return [_ingest_exact(members, spec, header)]
    except _MEMBER_ERRORS as exc:
        if len(members) == 1:
            empty = _SpecOutcome(pl.DataFrame(), pl.DataFrame(schema=QUARANTINE_SCHEMA),
                                 pl.DataFrame(schema=COLUMN_SCHEMA), {})
            empty.rejected.append((members[0], f"unreadable: {_error_reason(exc)}"))
            return [empty]
    half = len(members) // 2
    return (_ingest_exact_apart(members[:half], spec, header)
            + _ingest_exact_apart(members[half:], spec, header))


def _bad_records(bad_lines: pl.DataFrame, records: pl.DataFrame) -> pl.DataFrame:
    """(``sid``, ``line``, ``reason``) of the records holding bad lines (``sid``, ``line``).

    A record is named by the line it starts on; a bad line inside a multi-line quoted field
    belongs to the record that started before it.
    """
    key = (pl.col("sid") * 2**32 + pl.col("line")).alias("_k")
    starts = records.select(key, pl.col("sid").alias("_sid"), pl.col("line").alias("_start"))
    return (
        bad_lines.with_columns(key).sort("_k")
        .join_asof(starts.sort("_k"), on="_k", strategy="backward")
        .filter(pl.col("_sid") == pl.col("sid"))
        .group_by("sid", "_start", maintain_order=True).agg(pl.col("reason").first())
        .select("sid", line="_start", reason="reason")
    )


def _records_read(members: Sequence[Member], records: pl.DataFrame) -> dict[str, int]:
    """Records read per member, counted apart from what became of them.

    A record is one line after the header, or several when a quoted field holds line breaks;
    a blank line is a record (quarantined as blank), the empty text after the final line
    terminator is not. The count is a member's data lines, counted in its bytes, less the
    lines that continue a quoted field of the record before them (the line breaks inside
    the framed records). A record lost between framing and the tables therefore shows as
    read but neither valid nor quarantined.
    """
    continued = dict(records.group_by("sid").agg(
        pl.col("raw").str.count_matches("\n", literal=True).sum()).iter_rows())
    return {m.uri: _member_lines(m) - int(continued.get(sid, 0))
            for sid, m in enumerate(members)}


def _value_rejects(body: pl.DataFrame, spec: DatasetSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows that pass the schema and are first with their key, and why the others fail.

    The second frame holds ``sid``, ``line`` and ``reason`` (every reason of a row, joined).
    """
    failures = _schema_failures(body.drop("__sid"), spec)
    dups = _duplicates_within_file(body, spec.key)
    rejected = pl.concat([failures, dups])
    if not rejected.height:
        return body, pl.DataFrame(schema={"sid": pl.Int64, "line": pl.Int64,
                                          "reason": pl.String})
    rejected = rejected.group_by("index").agg(pl.col("reason").str.join("; "))
    ok_mask = ~pl.int_range(body.height, dtype=pl.Int64, eager=True).is_in(
        rejected["index"].implode()
    )
    row_rejects = body.select(sid="__sid", line="_line").with_row_index("index").with_columns(
        pl.col("index").cast(pl.Int64)
    ).join(rejected, on="index", how="inner").drop("index")
    return body.filter(ok_mask), row_rejects


def _ingest_jsonl(members: list[Member], spec: DatasetSpec) -> _SpecOutcome:
    """Strict per-line decoding, conversion and validation of JSON-lines members.

    A line that does not decode into the dataset's struct, converts with a reason, fails the
    schema or repeats a key of its member is quarantined with its line number and text.
    """
    decoded = jsonl.decode_members([m.data for m in members], [m.uri for m in members],
                                   spec.record_type, spec.record_schema)
    typed = spec.convert(decoded.rows).with_columns(__sid=decoded.rows["__sid"])
    parse_ok = typed["_parse_error"].is_null()
    parse_rejects = typed.filter(~parse_ok).select(sid="__sid", line="_line",
                                                   reason="_parse_error")
    body, row_rejects = _value_rejects(typed.filter(parse_ok).drop("_parse_error"), spec)
    value_rejects = pl.concat([row_rejects, parse_rejects])
    lines = {sid: m.data.split(b"\n") for sid, m in enumerate(members)
             if sid in set(value_rejects["sid"].to_list())}
    value_rejects = value_rejects.with_columns(raw=pl.Series(
        [jsonl.line_text(lines[sid][line - 1]) for sid, line in
         value_rejects.select("sid", "line").iter_rows()], dtype=pl.String))
    uris = pl.Series([m.uri for m in members], dtype=pl.String)
    quarantined = pl.concat([decoded.rejects, value_rejects.select("sid", "line", "raw", "reason")]
                            ).sort("sid", "line")
    quarantined = quarantined.select(source=uris.gather(quarantined["sid"]), line="line",
                                     raw="raw", reason="reason")
    columns = pl.DataFrame(
        [(m.uri, i, name, str(dtype)) for m in members
         for i, (name, dtype) in enumerate(spec.record_schema.items())],
        schema=COLUMN_SCHEMA, orient="row")
    return _SpecOutcome(body.drop("__sid"), quarantined, columns,
                        {m.uri: n for m, n in zip(members, decoded.read, strict=True)})


def _ingest_exact(members: list[Member], spec: DatasetSpec, header: list[str]) -> _SpecOutcome:
    """Exact framing, conversion and validation, naming every reject's line and reason."""
    uris = pl.Series("source", [m.uri for m in members], dtype=pl.String)
    framed, bad_lines = _frame(members, len(spec.header))
    records = framed.records
    malformed = records.filter(pl.col("problem").is_not_null()).select(
        "sid", "line", "raw", reason="problem")
    columns = infer_types(framed.fields, header, uris.to_list())
    names = {f"f{i}": h for i, h in enumerate(spec.header)}
    fields = framed.fields.rename({**names, "sid": "__sid", "line": "__line"}).with_columns(
        __source=uris.gather(framed.fields["sid"])
    )
    typed = spec.convert(fields).with_columns(__sid=fields["__sid"])
    if bad_lines.height:
        typed = typed.join(
            _bad_records(bad_lines, records).rename(
                {"sid": "__sid", "line": "_line", "reason": "_enc"}),
            on=["__sid", "_line"], how="left", maintain_order="left",
        ).with_columns(
            _parse_error=pl.concat_str([pl.col("_enc"), pl.col("_parse_error")],
                                       separator="; ", ignore_nulls=True).replace("", None)
        ).drop("_enc")
    parse_ok = typed["_parse_error"].is_null()
    parse_rejects = typed.filter(~parse_ok).select(
        sid="__sid", line="_line", reason="_parse_error"
    )
    body, row_rejects = _value_rejects(typed.filter(parse_ok).drop("_parse_error"), spec)
    rejects = pl.concat([row_rejects, parse_rejects])
    packed = (pl.col("sid") * 2**32 + pl.col("line")).alias("_k")
    wanted = rejects.select(packed)["_k"]
    raw_of_rejects = records.filter(packed.is_in(wanted.implode())).select("sid", "line", "raw")
    value_rejects = rejects.join(raw_of_rejects, on=["sid", "line"], how="left")
    quarantined = (
        pl.concat([malformed, value_rejects.select("sid", "line", "raw", "reason")])
        .sort("sid", "line")
        .select(source="sid", line="line",
                raw="raw", reason="reason")
    )
    quarantined = quarantined.with_columns(source=uris.gather(quarantined["source"]))
    return _SpecOutcome(body.drop("__sid"), quarantined, columns,
                        _records_read(members, records))


def _member_status(read: int, valid: int, quarantined: int) -> dict[str, str | None]:
    """A member's status: validated only when every record read is valid or quarantined."""
    if read != valid + quarantined:
        return {"status": "rows_unaccounted",
                "reason": f"{read} records read, but {valid} valid and {quarantined} "
                          f"quarantined: {read - valid - quarantined} unaccounted for"}
    return {"status": "validated" if quarantined == 0 else "validated_with_quarantine",
            "reason": None}


def _member_rows(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=MEMBER_SCHEMA) if rows else pl.DataFrame(schema=MEMBER_SCHEMA)


def _whole_rejects(rows: list[tuple[str, str | None, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(uri, None, raw, reason) for uri, raw, reason in rows],
        schema=QUARANTINE_SCHEMA, orient="row",
    )


@dataclass(frozen=True)
class _Rejection:
    """Why a member is rejected whole, and where its rejection is recorded."""

    table: str
    reason: str
    raw: str | None = None
    dataset: str | None = None
    rows: int = 0


def _recognise_json_lines(
        m: Member, specs: Sequence[DatasetSpec]) -> tuple[DatasetSpec, list[str]] | _Rejection:
    """The JSON-lines dataset most of a member's first lines have the fields of."""
    samples = jsonl.sample_fields(m.data)
    spec = recognise_fields(samples, specs)
    if spec is not None:
        return spec, list(spec.header)
    rows = jsonl.records_read(m.data)
    first = jsonl.line_text(m.data[:2000].split(b"\n", 1)[0])
    candidates = [s for s in specs if s.is_json_lines]
    if not samples:
        return _Rejection(UNRECOGNISED_TABLE, "JSON lines, but none of the first "
                          f"{jsonl.SAMPLE_LINES} lines is a JSON object", first, rows=rows)
    fields = max(set(samples), key=samples.count)
    if candidates:
        near, score = closest(fields, candidates)
        if score >= 0.5:
            missing = sorted(set(near.header) - set(fields))
            extra = sorted(set(fields) - set(near.header))
            return _Rejection(near.table, f"schema drift from dataset {near.name}: missing "
                                          f"{missing}, unexpected {extra}",
                              first, near.name, rows)
    if set(fields) == set(EVENT_ENVELOPE):
        return _Rejection(UNRECOGNISED_TABLE,
                          f"event lines (fields {', '.join(EVENT_ENVELOPE)}) in a file the "
                          f"event lake does not read: it reads files named "
                          f"{', '.join(EVENT_SUFFIXES)}, or any file under events/",
                          first, rows=rows)
    return _Rejection(UNRECOGNISED_TABLE,
                      f"JSON-lines fields match no known dataset: {list(fields)[:40]}",
                      first, rows=rows)


def _recognise_member(m: Member,
                      specs: Sequence[DatasetSpec]) -> tuple[DatasetSpec, list[str]] | _Rejection:
    """The dataset of a member and its header, or why the member is rejected whole."""
    problem = _whole_file_problem(m.data)
    if problem:
        return _Rejection(UNRECOGNISED_TABLE, problem)
    if jsonl.looks_like_json_lines(m.data):
        return _recognise_json_lines(m, specs)
    return _recognise_csv(m, [spec for spec in specs if not spec.is_json_lines])


def _recognise_csv(m: Member,
                   specs: Sequence[DatasetSpec]) -> tuple[DatasetSpec, list[str]] | _Rejection:
    """The CSV dataset of a member by its header, or why the member is rejected whole."""
    first, rest = csvframe.split_head(m.data)
    if "\r" in first:
        spec = recognise(csvframe.header_of(first.partition("\r")[0]), specs)
        return _Rejection(spec.table if spec else UNRECOGNISED_TABLE,
                          "lines end in a lone carriage return (CR-only line endings): only "
                          "LF or CRLF line endings are read",
                          first[:2000], spec.name if spec else None, _member_lines(m))
    header = csvframe.header_of(first)
    spec = recognise(header, specs)
    if spec is None:
        near, score = closest(header, specs)
        if score >= 0.5:
            missing = [c for c in near.header if c not in header]
            extra = [c for c in header if c not in near.header]
            drift = (f"missing {missing}, unexpected {extra}" if missing or extra else
                     # the same names: another order, or a name given twice
                     f"the columns are {header}, expected {list(near.header)} in that order")
            return _Rejection(near.table, f"schema drift from dataset {near.name}: {drift}",
                              first[:2000], near.name, _member_lines(m))
        return _Rejection(UNRECOGNISED_TABLE,
                          f"columns match no known dataset: {header[:40]}", first[:2000],
                          rows=_member_lines(m))
    if not rest.strip():
        return _Rejection(spec.table, "header only: no data rows", first[:2000], spec.name)
    return spec, header


def ingest_members(unpacked: Unpacked, specs: Sequence[DatasetSpec]) -> IngestResult:
    """Recognise, parse, convert and validate every member of one landed file."""
    member_rows: list[dict[str, object]] = []
    whole: dict[str, list[tuple[str, str | None, str]]] = {}
    by_spec: dict[str, tuple[DatasetSpec, list[str], list[Member]]] = {}

    def reject(m_uri: str, name: str, size: int, *, table: str, reason: str,
               raw: str | None, dataset: str | None = None, rows: int = 0) -> None:
        whole.setdefault(table, []).append((m_uri, raw, reason))
        member_rows.append({
            "uri": m_uri, "member": name, "dataset": dataset, "table": table, "size": size,
            "rows_read": rows, "rows_valid": 0, "rows_quarantined": rows,
            "status": "rejected", "reason": reason,
        })

    for uri, name, reason in unpacked.rejected:
        reject(uri, name, 0, table=UNRECOGNISED_TABLE, reason=reason, raw=None)
    for uri, name, reason in unpacked.skipped:
        member_rows.append({"uri": uri, "member": name, "dataset": None, "table": None,
                            "size": None, "rows_read": 0, "rows_valid": 0,
                            "rows_quarantined": 0, "status": "skipped", "reason": reason})
    for m in unpacked.members:
        found = _recognise_member(m, specs)
        if isinstance(found, _Rejection):
            reject(m.uri, m.name, len(m.data), table=found.table, reason=found.reason,
                   raw=found.raw, dataset=found.dataset, rows=found.rows)
        else:
            spec, header = found
            by_spec.setdefault(spec.name, (spec, header, []))[2].append(m)

    tables: dict[str, list[pl.DataFrame]] = {}
    quarantine: dict[str, list[pl.DataFrame]] = {}
    columns: list[pl.DataFrame] = []
    for spec, header, members in by_spec.values():
        outcome = _ingest_spec(members, spec, header)
        if outcome.valid.width:
            tables.setdefault(spec.table, []).append(outcome.valid)
        quarantine.setdefault(spec.table, []).append(outcome.quarantined)
        columns.append(outcome.columns)
        for m, reason in outcome.rejected:
            reject(m.uri, m.name, len(m.data), table=spec.table, reason=reason, raw=None,
                   dataset=spec.name, rows=_member_lines(m))
        valid_n = (dict(outcome.valid.group_by("_source").len().iter_rows())
                   if outcome.valid.width else {})
        bad_n = dict(outcome.quarantined.group_by("source").len().iter_rows())
        for m in members:
            if m.uri not in outcome.read:
                continue  # rejected whole above
            read, v, q = outcome.read[m.uri], valid_n.get(m.uri, 0), bad_n.get(m.uri, 0)
            member_rows.append({
                "uri": m.uri, "member": m.name, "dataset": spec.name, "table": spec.table,
                "size": len(m.data), "rows_read": read, "rows_valid": v,
                "rows_quarantined": q, **_member_status(read, v, q),
            })
    for table, rows in whole.items():
        quarantine.setdefault(table, []).append(_whole_rejects(rows))
    return IngestResult(
        tables={t: pl.concat(fs, how="diagonal_relaxed") for t, fs in tables.items()},
        quarantine={t: pl.concat(fs) for t, fs in quarantine.items()},
        members=_member_rows(member_rows),
        columns=pl.concat(columns) if columns else pl.DataFrame(schema=COLUMN_SCHEMA),
    )
