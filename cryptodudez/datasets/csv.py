"""Set-at-a-time CSV framing that keeps every record's line number and original text.

polars' and DuckDB's CSV readers are fast but throw away what quarantine needs: where a
record started and what it said. These transforms split many files at once into records
(quote-aware, so multi-line quoted tweets stay one record), count their fields, and hand
only well-formed records to polars' reader, aligned row for row with their origin.
"""

import csv
import io

import polars as pl

# A quoted CSV field: "..." with "" as an escaped quote.
_QUOTED_FIELD = r'"(?:[^"]|"")*"'
# A record of RFC 4180 fields: each quoted whole, or unquoted without any quote or comma.
_WELL_QUOTED = rf'^(?:{_QUOTED_FIELD}|[^",]*)(?:,(?:{_QUOTED_FIELD}|[^",]*))*$'


# One line's fields, read as RFC 4180 frames them: a quote opens a quoted field only at the
# field's start, and a quoted field ends at a quote not doubled. Text after a closing quote
# (``"a"b``) and a quote inside an unquoted field (``10"5``) are framed leniently, as part of
# their field; ``well_quoted`` then quarantines the record that holds them.
_CONTENT = r'(?:[^"]|"")*'  # inside a quoted field, on one line
_CLOSED = rf'"{_CONTENT}"(?:[^",][^,]*)?'  # a quoted field closed on this line, junk after
_FIELD = rf'(?:{_CLOSED}|[^",][^,]*|)'
# Whether a line ends inside an open quoted field, when it starts outside one and inside one.
_OPEN_FROM_OUTSIDE = rf'^(?:{_FIELD},)*"{_CONTENT}$'
_OPEN_FROM_INSIDE = rf'^{_CONTENT}$|^{_CONTENT}"(?:[^",][^,]*)?(?:,{_FIELD})*,"{_CONTENT}$'


def _open_after(lines: pl.DataFrame) -> pl.Series:
    """Whether a quoted field is still open after each line of ``lines``.

    ``lines`` holds ``raw``, ``quotes`` and ``line``, each source's lines in order, sources
    one after another.
    Each line maps "open before" to "open after": a line without quotes keeps the state; one
    that ends open from either state sets it; one that ends closed from either state clears
    it; one that opens a field from outside and closes one from inside flips it. The state
    after a line is then that of the last line with quotes (or the source's start, closed),
    which is the last line that set or cleared it, flipped once per flipping line since: a
    cumulative sum and forward fills over the lines with quotes only, no loop. Counting quotes
    instead (as before) let one stray quote in an unquoted field (``Sq"t``) open a field that
    swallowed the rest of the file into one record.
    """
    first, has = pl.col("line") == 1, pl.col("quotes") > 0
    from_out, from_in = pl.col("from_out"), pl.col("from_in")
    flip = (from_out & ~from_in).cast(pl.Int64)
    sets = from_out == from_in  # both open, or both closed
    flips = flip.cum_sum()
    base = pl.when(sets).then(from_out).when(first).then(pl.lit(value=False)).forward_fill()
    flips_at_base = pl.when(sets | first).then(flips - flip).forward_fill()
    # A source's first line starts it (closed) even without quotes: then it keeps the state.
    changes = (lines.lazy().with_row_index("i")
               .filter(has | first)
               .with_columns(from_out=has & pl.col("raw").str.contains(_OPEN_FROM_OUTSIDE),
                             from_in=~has | pl.col("raw").str.contains(_OPEN_FROM_INSIDE))
               .select("i", state=base ^ ((flips - flips_at_base) % 2 == 1))
               .collect())
    return (pl.repeat(None, lines.height, dtype=pl.Boolean, eager=True)
            .scatter(changes["i"], changes["state"]).forward_fill().alias("open_after"))


def split_records(texts: pl.DataFrame) -> pl.DataFrame:
    """Split whole file texts into CSV records.

    Args:
        texts: one row per file with columns ``source`` (str) and ``text`` (str).

    Returns:
        One row per record: ``source``, ``line`` (1-based line where the record starts),
        ``record`` (0-based record index in its file; 0 is the header), ``raw`` (the
        record's original text without its line terminator), ``closed`` (False when a quoted
        field is still open at the end of the file).
    """
    lines = (
        texts.lazy()
        .select(pl.col("source"), pl.col("text").str.split("\n").alias("raw"))
        .explode("raw")
        .with_columns(line=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("source"))
        .with_columns(n_lines=pl.len().over("source"))
        # A trailing line terminator leaves one empty element that is not a record (a last
        # line holding only a carriage return is a line: a blank record).
        .filter(~((pl.col("line") == pl.col("n_lines")) & (pl.col("raw") == "")))
        .with_columns(raw=pl.col("raw").str.strip_suffix("\r"))
        .with_columns(quotes=pl.col("raw").str.count_matches('"', literal=True))
        .collect()
    )
    lines = (
        lines.lazy()
        .with_columns(_open_after(lines))
        .with_columns(
            starts=~pl.col("open_after").shift(1, fill_value=False).over("source"),
        )
        .with_columns(record=(pl.col("starts").cum_sum().over("source") - 1).cast(pl.Int64))
        .collect()
    )
    if lines.height == 0:
        return pl.DataFrame(
            schema={
                "source": pl.String,
                "line": pl.Int64,
                "record": pl.Int64,
                "raw": pl.String,
                "closed": pl.Boolean,
            }
        )
    single = lines.filter(pl.col("quotes") == 0, pl.col("starts"), ~pl.col("open_after"))
    multi_keys = lines.filter(~(pl.col("quotes") == 0) | ~pl.col("starts") | pl.col("open_after"))
    single_out = single.select(
        "source", "line", "record", "raw", closed=pl.lit(value=True)
    )
    multi_out = (
        multi_keys.group_by("source", "record", maintain_order=True)
        .agg(
            line=pl.col("line").first(),
            raw=pl.col("raw").str.join("\n"),
            closed=~pl.col("open_after").last(),
        )
        .select("source", "line", "record", "raw", "closed")
    )
    return pl.concat([single_out, multi_out]).sort("source", "record")


def well_quoted(raw: pl.Expr) -> pl.Expr:
    """True for a record whose quotes follow RFC 4180: a field is quoted whole or not at all.

    A quote inside an unquoted field (``10"5``) or text after a closing quote (``"a"b``) is
    read differently by every CSV reader (polars refuses it), so such a record is never
    handed to the reader: it is quarantined with its reason instead.
    """
    return raw.str.contains(_WELL_QUOTED)


def count_fields(raw: pl.Expr) -> pl.Expr:
    """Number of comma-separated fields in a record, ignoring commas inside quotes."""
    unquoted = pl.when(raw.str.contains('"', literal=True)).then(
        raw.str.replace_all(_QUOTED_FIELD, "")
    ).otherwise(raw)
    return (unquoted.str.count_matches(",", literal=True) + 1).cast(pl.Int64)


HEAD_BYTES = 65536  # a header line is looked for in this much of a file's start


def split_head(data: bytes) -> tuple[str, str]:
    """A file's first line (without its terminator) and what follows it, from its start.

    Only the first ``HEAD_BYTES`` are decoded (bad UTF-8 replaced): enough to recognise a
    header and to see whether any data follows it.
    """
    first, _, rest = data[:HEAD_BYTES].decode("utf-8", errors="replace").partition("\n")
    return first.rstrip("\r"), rest


def header_of(first_line: str) -> list[str]:
    """Column names of a file's first line (quote-aware; a leading byte-order mark dropped).

    Never raises, whatever the line holds: text the ``csv`` module refuses (a carriage
    return inside an unquoted name, a name longer than its field limit) is split on commas
    as it stands, so a file with such a first line is simply not recognised.
    """
    # The mark goes before the split: behind it a quoted first name ("Date") kept its quotes
    # and the file was refused as schema drift (a review, session 23).
    line = first_line.removeprefix("\ufeff")
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return line.split(",")


def parse_header(raw: str) -> list[str]:
    """Column names of a header record (quotes removed, surrounding spaces kept)."""
    frame = pl.read_csv(io.StringIO(raw + "\n"), has_header=False, infer_schema=False)
    return [v if v is not None else "" for v in frame.row(0)]


def read_records(header: list[str], raws: pl.Series) -> pl.DataFrame:
    """Parse well-formed records (all with ``len(header)`` fields) into String columns.

    Row ``i`` of the result is ``raws[i]``: the caller aligns it with line numbers.
    Empty fields become null.
    """
    names = [name if name else f"column_{i}" for i, name in enumerate(header)]
    if raws.len() == 0:
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    body = raws.str.join("\n").item() + "\n"
    frame = pl.read_csv(
        io.BytesIO(body.encode()),
        has_header=False,
        new_columns=names,
        schema=dict.fromkeys(names, pl.String),
        quote_char='"',
    )
    if frame.height != raws.len():
        msg = f"CSV reader returned {frame.height} rows for {raws.len()} framed records"
        raise ValueError(msg)
    return frame
