"""Asset checks of the validated tables, built from the pandera schemas.

Each check is named for what it asserts and reports the failing count and sample rows.
A table partition can be far larger than memory, so the checks are evaluated on a
``TableStats``: what every fragment held, gathered fragment by fragment as it is written
(or as it is read back when an unchanged file is re-checked), validated with the pandera
schema one fragment at a time.
"""

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg
import pandera.errors as pa_errors
import polars as pl
from pandera.api.polars.model import DataFrameModel

SAMPLE = 5


# Checks of the whole table, evaluated over every partition after each run; every other
# check is about one landed file and carries its partition.
_WHOLE_TABLE = ("keys_unique",)


def partitioned(specs: Iterable[dg.AssetCheckSpec],
                partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """``specs`` with ``partitions_def``: each partition keeps its own check status.

    Without it the UI shows the last file's result as the asset's (a file with rejects,
    then a clean one, reads "passed"). Partitioned checks are a Dagster preview feature;
    its warning is silenced here, where they are declared.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(s.name, asset=s.asset_key, blocking=s.blocking,
                                  description=s.description, partitions_def=partitions_def)
                for s in specs]


def check_specs(table: str, partitions_def: dg.PartitionsDefinition, *,
                extra: Iterable[tuple[str, bool, str]] = ()) -> list[dg.AssetCheckSpec]:
    """The checks every validated table carries (plus table-specific ``extra`` ones).

    Per-file checks carry ``partitions_def`` (the landed files); whole-table checks do not.
    """
    base = [
        ("schema_conforms", True,
         "Every row this file published (as read back from the lake) satisfies the "
         "table's pandera schema."),
        ("rows_accounted", True,
         "For this file: rows read = rows valid + rows quarantined for every member, the "
         "quarantine holds every rejected row, and every valid row is in the table unless "
         "a later delivery superseded it (counted when it was removed)."),
        ("keys_unique", True, "No two rows of the whole table share a key."),
        ("no_rows_quarantined", False,
         "Nothing in this delivery was quarantined (a warning: quarantine keeps the rows)."),
    ]
    specs = [dg.AssetCheckSpec(f"{table}_{name}", asset=table, blocking=blocking,
                               description=description)
             for name, blocking, description in [*base, *extra]]
    def is_whole(spec: dg.AssetCheckSpec) -> bool:
        return spec.name.removeprefix(f"{table}_") in _WHOLE_TABLE

    return [*partitioned([s for s in specs if not is_whole(s)], partitions_def),
            *[s for s in specs if is_whole(s)]]


def markdown_table(frame: pl.DataFrame, limit: int = SAMPLE) -> str:
    """A small markdown table of the first rows of ``frame``."""
    if frame.height == 0:
        return "(none)"
    head = frame.head(limit)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    for row in head.iter_rows():
        cells = [str(v).replace("|", "\\|").replace("\n", " ")[:120] for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _preview(frame: pl.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame))


@dataclass
class TableStats:
    """What a table partition holds, accumulated fragment by fragment (bounded memory)."""

    rows_written: int = 0
    schema_failures: int = 0
    failures_by_check: dict[str, int] = field(default_factory=dict)
    failure_sample: pl.DataFrame = field(default_factory=pl.DataFrame)
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    quarantine_sample: pl.DataFrame = field(default_factory=pl.DataFrame)
    preview: pl.DataFrame = field(default_factory=pl.DataFrame)
    date_range: tuple[str, str] | None = None
    symbols: set[str] = field(default_factory=set)
    unknown_symbols: set[str] = field(default_factory=set)
    schema: pl.Schema | None = None

    def add_written(self, frame: pl.DataFrame, schema: type[DataFrameModel],
                    time_column: str | None = None) -> None:
        """Account for one fragment's rows and validate them (collected: values checked).

        ``time_column`` (the dataset's) gives the UTC days the rows are about.
        """
        if frame.height == 0:
            return
        self.rows_written += frame.height
        self.schema = frame.schema
        if self.preview.height == 0:
            self.preview = frame.drop([c for c in frame.columns if c.startswith("_")]).head(
                SAMPLE)
        try:
            schema.validate(frame, lazy=True)
        except pa_errors.SchemaErrors as exc:
            cases = exc.failure_cases
            self.schema_failures += cases.height
            for check, n in cases.group_by("check").len().iter_rows():
                self.failures_by_check[str(check)] = self.failures_by_check.get(str(check),
                                                                                0) + n
            if self.failure_sample.height < SAMPLE:
                sample = cases.select(pl.all().cast(pl.String)).head(SAMPLE)
                self.failure_sample = pl.concat([self.failure_sample, sample],
                                                how="diagonal_relaxed").head(SAMPLE)
        stamp = time_column if time_column in frame.columns else None
        if stamp is not None:  # the UTC days the rows are about (what the sensors need)
            dates = (pl.col(stamp).dt.date().cast(pl.String)
                     if isinstance(frame.schema[stamp], pl.Datetime)
                     else pl.col(stamp).cast(pl.String))
            low, high = frame.select(dates.min().alias("lo"), dates.max().alias("hi")).row(0)
            if low is not None:
                lows, highs = (self.date_range or (str(low), str(high)))
                self.date_range = (min(lows, str(low)), max(highs, str(high)))
        if "Security Name" in frame.columns and "Symbol" in frame.columns:
            self.symbols |= set(frame["Symbol"].unique().to_list())
            self.unknown_symbols |= set(
                frame.filter(pl.col("Security Name").is_null())["Symbol"].unique().to_list())

    def add_quarantined(self, frame: pl.DataFrame) -> None:
        """Account for one fragment of quarantined rows (``source``, ``line``, ``reason``)."""
        if frame.height == 0:
            return
        self.quarantined += frame.height
        reasons = frame.select(pl.col("reason").str.replace(r": .*$", "")).group_by(
            "reason").len()
        for reason, n in reasons.iter_rows():
            self.quarantine_reasons[reason] = self.quarantine_reasons.get(reason, 0) + n
        if self.quarantine_sample.height < SAMPLE:
            sample = frame.select("source", "line", "raw", "reason").head(SAMPLE).with_columns(
                pl.col("raw").str.slice(0, 80))
            self.quarantine_sample = pl.concat([self.quarantine_sample, sample],
                                               how="diagonal_relaxed").head(SAMPLE)


def schema_conforms(table: str, stats: TableStats) -> dg.AssetCheckResult:
    """Every written row satisfied the pandera schema (validated fragment by fragment)."""
    if stats.schema_failures:
        return dg.AssetCheckResult(
            check_name=f"{table}_schema_conforms", asset_key=table, passed=False,
            metadata={"failing_count": stats.schema_failures,
                      "by_check": dg.MetadataValue.json(stats.failures_by_check),
                      "sample": _preview(stats.failure_sample)},
        )
    return dg.AssetCheckResult(check_name=f"{table}_schema_conforms", asset_key=table,
                               passed=True, metadata={"rows": stats.rows_written})


def rows_accounted(table: str, members: pl.DataFrame, *, rows_on_disk: int,
                   quarantine_on_disk: pl.DataFrame, superseded: int) -> dg.AssetCheckResult:
    """Row accounting per file, against what the lake holds after the run.

    Args:
        table: the validated table.
        members: the catalogue rows of the file's members (``rows_read``, ``rows_valid``,
            ``rows_quarantined``, ...), as counted while ingesting.
        rows_on_disk: rows in the partition's published fragments (Parquet footers).
        quarantine_on_disk: ``source`` and ``len`` of the row-level quarantine as published.
        superseded: this file's valid rows that later deliveries (or members) replaced.
    """
    per_file = members.filter(pl.col("table") == table)
    bad_sum = per_file.filter(
        pl.col("rows_read") != pl.col("rows_valid") + pl.col("rows_quarantined")
    )
    quarantine_rows = quarantine_on_disk.select("source", pl.col("len").cast(pl.Int64))
    row_level = per_file.filter(pl.col("status") != "rejected").join(
        quarantine_rows, left_on="uri", right_on="source", how="left"
    ).with_columns(pl.col("len").fill_null(0))
    bad_quarantine = row_level.filter(pl.col("len") != pl.col("rows_quarantined"))
    valid_total = int(per_file["rows_valid"].sum()) if per_file.height else 0
    written_ok = rows_on_disk + superseded == valid_total
    passed = bad_sum.height == 0 and bad_quarantine.height == 0 and written_ok
    return dg.AssetCheckResult(
        check_name=f"{table}_rows_accounted", asset_key=table, passed=passed,
        metadata={
            "rows_read": int(per_file["rows_read"].sum()),
            "rows_valid": valid_total,
            "rows_quarantined": int(per_file["rows_quarantined"].sum()),
            "rows_written": rows_on_disk,
            "rows_superseded_by_other_files": superseded,
            "failing_count": bad_sum.height + bad_quarantine.height + (0 if written_ok else 1),
            "sample": _preview(pl.concat([bad_sum, bad_quarantine.drop("len")])
                               .select("uri", "rows_read", "rows_valid", "rows_quarantined")),
        },
    )


def keys_unique(table: str, key: tuple[str, ...], repeated: pl.DataFrame) -> dg.AssetCheckResult:
    """No key appears twice in the whole table (``repeated``: every repeated key, counted)."""
    return dg.AssetCheckResult(
        check_name=f"{table}_keys_unique", asset_key=table, passed=repeated.height == 0,
        metadata={"failing_count": repeated.height, "key": ", ".join(key),
                  "sample": _preview(repeated)},
    )


def no_rows_quarantined(table: str, stats: TableStats) -> dg.AssetCheckResult:
    """Warn when this delivery had rejects, with counts by reason."""
    reasons = dict(sorted(stats.quarantine_reasons.items(), key=lambda kv: -kv[1]))
    return dg.AssetCheckResult(
        check_name=f"{table}_no_rows_quarantined", asset_key=table,
        passed=stats.quarantined == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"failing_count": stats.quarantined,
                  "by_reason": dg.MetadataValue.json(reasons),
                  "sample": _preview(stats.quarantine_sample)},
    )


def security_name_known(stats: TableStats) -> dg.AssetCheckResult:
    """Warn about symbols the symbol directory does not know (null ``Security Name``)."""
    unknown = pl.DataFrame({"Symbol": sorted(stats.unknown_symbols)},
                           schema={"Symbol": pl.String})
    return dg.AssetCheckResult(
        check_name="stock_prices_security_name_known", asset_key="stock_prices",
        passed=unknown.height == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"failing_count": unknown.height,
                  "symbols_total": len(stats.symbols),
                  "sample": _preview(unknown)},
    )
