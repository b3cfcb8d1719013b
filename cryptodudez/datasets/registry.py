"""The registry of dataset specifications: how a landed file is recognised and converted.

A dataset is recognised by its header (the set of column names), never by its file name.
Adding a dataset means adding a ``DatasetSpec`` to ``DATASETS``; the landing machinery does
not change.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandera.polars as pa
import polars as pl

# Converts parsed String fields (one row per record, plus ``source``, ``line``) into the
# table's typed columns plus a ``_parse_error`` column (null when the record parsed).
Converter = Callable[[pl.DataFrame], pl.DataFrame]


@dataclass(frozen=True)
class TypedRead:
    """A typed multi-member CSV read that provably clean members take instead of framing.

    Attributes:
        schema: the polars dtype to read each header column as.
        assemble: from the typed values (plus ``__sid``, ``__source``, ``__line``) to the
            table's columns (as ``convert`` gives them, without ``_parse_error``) and a
            Boolean Series that is True for rows the String path would parse unchanged.
            A member is taken from the typed read only when every row is clean; any other
            member goes through exact framing, so reasons and line numbers never differ.
    """

    schema: dict[str, pl.DataType]
    assemble: Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.Series]]


@dataclass(frozen=True)
class DatasetSpec:
    """How to recognise, convert and validate one kind of vendor file.

    Attributes:
        name: dataset name recorded in the metastore.
        table: validated table the rows go to (several datasets may share one table).
        header: the exact column names of the files, in order.
        convert: pure transform from String fields to typed table columns.
        schema: pandera schema every row of the table must satisfy.
        key: columns that identify a row; the latest delivery wins on conflicts.
        reference: a lookup table other tables of the same archive read (its members are
            ingested first).
        typed: the fast typed read for clean members, if the dataset has one.
        record_type: for JSON-lines datasets, the strict ``msgspec`` struct of one line
            (its fields are the dataset's ``header``); ``convert`` then takes the typed rows
            (see :mod:`cryptodudez.datasets.jsonl`). None for CSV datasets.
        record_schema: polars dtypes of ``record_type``'s fields, in order.
        time_column: the column saying when a row happened (the UTC days a delivery is
            about); None for reference tables.
    """

    name: str
    table: str
    header: tuple[str, ...]
    convert: Converter
    schema: type[pa.DataFrameModel]
    key: tuple[str, ...]
    reference: bool = False
    typed: TypedRead | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    record_type: Any = None
    record_schema: dict[str, pl.DataType] = field(default_factory=dict)
    time_column: str | None = None

    @property
    def is_json_lines(self) -> bool:
        """True for a JSON-lines dataset (recognised by its fields, decoded line by line)."""
        return self.record_type is not None

    def matches(self, columns: Sequence[str]) -> bool:
        """True when a CSV file's header is exactly this dataset's header."""
        return not self.is_json_lines and tuple(columns) == self.header


def recognise(columns: Sequence[str], specs: Sequence[DatasetSpec]) -> DatasetSpec | None:
    """The spec whose header equals ``columns``, or None."""
    return next((spec for spec in specs if spec.matches(columns)), None)


def recognise_fields(samples: Sequence[tuple[str, ...]],
                     specs: Sequence[DatasetSpec]) -> DatasetSpec | None:
    """The JSON-lines spec whose fields most sampled lines have exactly (in any order)."""
    votes = {spec.name: sum(set(fields) == set(spec.header) for fields in samples)
             for spec in specs if spec.is_json_lines}
    best = max(votes, key=lambda name: votes[name], default=None)
    if best is None or votes[best] == 0:
        return None
    return next(spec for spec in specs if spec.name == best)


def closest(columns: Sequence[str], specs: Sequence[DatasetSpec]) -> tuple[DatasetSpec, float]:
    """The spec with the most column-name overlap with ``columns`` (Jaccard), for drift reasons.

    Only specs of the same kind are compared: pass CSV specs for a CSV header and JSON-lines
    specs for a line's fields.
    """
    cols = set(columns)

    def score(spec: DatasetSpec) -> float:
        head = set(spec.header)
        return len(cols & head) / max(len(cols | head), 1)

    best = max(specs, key=score)
    return best, score(best)


def parse_all(fields: pl.DataFrame,
              parsed: dict[str, pl.Expr]) -> tuple[pl.DataFrame, pl.Series]:
    """Evaluate every parse once; name every field that has text but did not parse.

    Args:
        fields: the String fields.
        parsed: parse expressions keyed by the source field they parse.

    Returns:
        The parsed values (one column per key of ``parsed``) and ``_parse_error``: null for
        rows that parsed, else ``unparseable <field>: '<text>'`` for each failing field.
        The messages are formatted only for the failing rows (normally none).
    """
    values = fields.select(**parsed)
    failing = [
        (fields[src].is_not_null() & values[src].is_null()).alias(src)
        for src in parsed
        if src in fields.columns
    ]
    errors = pl.Series("_parse_error", [None] * fields.height, dtype=pl.String)
    if not failing:
        return values, errors
    flags = pl.DataFrame(failing)
    rows = flags.select(pl.any_horizontal(pl.all())).to_series().arg_true()
    if rows.len() == 0:
        return values, errors
    bad_fields, bad_flags = fields[rows], flags[rows]
    messages = bad_fields.select(
        pl.concat_str(
            [pl.when(bad_flags[src]).then(
                pl.format("unparseable {}: '{}'", pl.lit(src), pl.col(src).str.slice(0, 80)))
             for src in bad_flags.columns],
            separator="; ", ignore_nulls=True,
        )
    ).to_series()
    return values, errors.scatter(rows, messages)


def today_utc() -> str:
    """Today's date in UTC as ``YYYY-MM-DD`` (rows dated after it are impossible)."""
    return datetime.now(tz=UTC).date().isoformat()
