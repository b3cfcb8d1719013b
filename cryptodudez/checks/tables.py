"""Asset checks of the validated tables, built from the pandera schemas.

Each check is named for what it asserts and reports the failing count and sample rows.
They run on the data as written to the lake (read back), not on the writer's memory.
"""

from collections.abc import Iterable

import dagster as dg
import pandera.errors as pa_errors
import polars as pl

from cryptodudez.datasets.registry import DatasetSpec

SAMPLE = 5


def check_specs(table: str, *, extra: Iterable[tuple[str, bool, str]] = ()) -> list[
    dg.AssetCheckSpec
]:
    """The checks every validated table carries (plus table-specific ``extra`` ones)."""
    base = [
        ("schema_conforms", True, "Every row satisfies the table's pandera schema."),
        ("rows_accounted", True,
         "For every file: rows read = rows valid + rows quarantined, and every valid row "
         "is in the table unless a later delivery superseded it."),
        ("keys_unique", True, "No two rows of the whole table share a key."),
        ("no_rows_quarantined", False,
         "Nothing in this delivery was quarantined (a warning: quarantine keeps the rows)."),
    ]
    return [
        dg.AssetCheckSpec(f"{table}_{name}", asset=table, blocking=blocking,
                          description=description)
        for name, blocking, description in [*base, *extra]
    ]


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


def schema_conforms(table: str, spec: DatasetSpec, written: pl.DataFrame) -> dg.AssetCheckResult:
    """Validate the written fragment with the pandera schema (collected: values are checked)."""
    if written.width == 0:
        return dg.AssetCheckResult(check_name=f"{table}_schema_conforms", asset_key=table,
                                   passed=True, metadata={"rows": 0})
    try:
        spec.schema.validate(written, lazy=True)
    except pa_errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return dg.AssetCheckResult(
            check_name=f"{table}_schema_conforms", asset_key=table, passed=False,
            metadata={"failing_count": cases.height,
                      "by_check": dg.MetadataValue.json(
                          dict(cases.group_by("check").len().iter_rows())),
                      "sample": _preview(cases.select(pl.all().cast(pl.String)))},
        )
    return dg.AssetCheckResult(check_name=f"{table}_schema_conforms", asset_key=table,
                               passed=True, metadata={"rows": written.height})


def rows_accounted(table: str, members: pl.DataFrame, written: pl.DataFrame,
                   quarantined: pl.DataFrame, superseded: int) -> dg.AssetCheckResult:
    """Row accounting per file, against what was actually written."""
    per_file = members.filter(pl.col("table") == table)
    bad_sum = per_file.filter(
        pl.col("rows_read") != pl.col("rows_valid") + pl.col("rows_quarantined")
    )
    quarantine_rows = quarantined.filter(pl.col("line").is_not_null()).group_by("source").len()
    row_level = per_file.filter(pl.col("status") != "rejected").join(
        quarantine_rows, left_on="uri", right_on="source", how="left"
    ).with_columns(pl.col("len").fill_null(0))
    bad_quarantine = row_level.filter(pl.col("len") != pl.col("rows_quarantined"))
    valid_total = int(per_file["rows_valid"].sum()) if per_file.height else 0
    written_ok = written.height + superseded == valid_total
    passed = bad_sum.height == 0 and bad_quarantine.height == 0 and written_ok
    return dg.AssetCheckResult(
        check_name=f"{table}_rows_accounted", asset_key=table, passed=passed,
        metadata={
            "rows_read": int(per_file["rows_read"].sum()),
            "rows_valid": valid_total,
            "rows_quarantined": int(per_file["rows_quarantined"].sum()),
            "rows_written": written.height,
            "rows_superseded_by_other_files": superseded,
            "failing_count": bad_sum.height + bad_quarantine.height + (0 if written_ok else 1),
            "sample": _preview(pl.concat([bad_sum, bad_quarantine.drop("len")])
                               .select("uri", "rows_read", "rows_valid", "rows_quarantined")),
        },
    )


def keys_unique(table: str, key: tuple[str, ...], keys: pl.DataFrame) -> dg.AssetCheckResult:
    """No key appears twice in the whole table."""
    if keys.width == 0:
        return dg.AssetCheckResult(check_name=f"{table}_keys_unique", asset_key=table,
                                   passed=True, metadata={"failing_count": 0})
    repeated = keys.select(pl.struct(list(key)).is_duplicated()).to_series()
    dups = (keys.filter(repeated).group_by(list(key)).len() if repeated.any()
            else pl.DataFrame(schema={**keys.select(list(key)).schema, "len": pl.UInt32}))
    return dg.AssetCheckResult(
        check_name=f"{table}_keys_unique", asset_key=table, passed=dups.height == 0,
        metadata={"failing_count": dups.height, "key": ", ".join(key),
                  "sample": _preview(dups)},
    )


def no_rows_quarantined(table: str, quarantined: pl.DataFrame) -> dg.AssetCheckResult:
    """Warn when this delivery had rejects, with counts by reason."""
    reasons = quarantined.select(
        pl.col("reason").str.replace(r": .*$", "").alias("reason")
    ).group_by("reason").len().sort("len", descending=True)
    return dg.AssetCheckResult(
        check_name=f"{table}_no_rows_quarantined", asset_key=table,
        passed=quarantined.height == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"failing_count": quarantined.height,
                  "by_reason": dg.MetadataValue.json(dict(reasons.iter_rows())),
                  "sample": _preview(quarantined.with_columns(pl.col("raw").str.slice(0, 80)))},
    )


def security_name_known(written: pl.DataFrame) -> dg.AssetCheckResult:
    """Warn about symbols the symbol directory does not know (null ``Security Name``)."""
    if written.width == 0:
        return dg.AssetCheckResult(check_name="stock_prices_security_name_known",
                                   asset_key="stock_prices", passed=True,
                                   severity=dg.AssetCheckSeverity.WARN)
    unknown = written.filter(pl.col("Security Name").is_null()).select("Symbol").unique()
    return dg.AssetCheckResult(
        check_name="stock_prices_security_name_known", asset_key="stock_prices",
        passed=unknown.height == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"failing_count": unknown.height,
                  "symbols_total": written["Symbol"].n_unique(),
                  "sample": _preview(unknown.sort("Symbol"))},
    )
