"""The README's performance figures come from committed result files, so stale ones fail here.

Every row of the table under ``## Performance`` names its source in the ``result file`` column:
either ``benchmarks/results/<name>.json``, which must exist and contain every number quoted in
the row's ``measured`` cell (after rounding to the quoted precision, in any of a few unit
scales: s/ms/µs, MB/GB, k, %), or ``none ...`` for a figure whose raw output was not kept.
"""

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
README = PROJECT_DIR / "README.md"
CITATION = re.compile(r"benchmarks/results/[\w.-]+\.json")
# 1,084 / 4.35 / 0.20 / 17.0k; a leading "-" is not a sign (ranges like 4-23).
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
# unit changes a doc may make: s<->ms<->µs, B/MB<->GB, count<->k/M, fraction<->%, MiB<->GiB.
SCALES = (1.0, 1e-3, 1e3, 1e-6, 1e6, 1e-9, 1e9, 100.0, 1 / 1024)


def performance_rows(readme: str) -> list[dict[str, str]]:
    """The rows of the first table after ``## Performance``, keyed by column header."""
    section = readme.split("\n## Performance\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln.strip() for ln in section.splitlines() if ln.strip().startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")), strict=True))
            for ln in lines[2:]]


def json_numbers(value: Any) -> list[float]:
    """Every number in a JSON document: numeric values and numbers written inside strings."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, str):
        return [float(m.replace(",", "")) for m in NUMBER.findall(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in json_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in json_numbers(v)]
    return []


def quoted_numbers(cell: str) -> list[str]:
    """The numbers a cell quotes, as written (without thousands separators)."""
    return [m.replace(",", "") for m in NUMBER.findall(cell)]


def appears(quoted: str, numbers: list[float]) -> bool:
    """Whether ``quoted`` is some number of the file, rounded as quoted, in some unit scale."""
    decimals = len(quoted.split(".")[1]) if "." in quoted else 0
    target = float(quoted)
    return any(round(abs(n) * scale, decimals) == target for n in numbers for scale in SCALES)


def stale_figures(row: dict[str, str], root: Path) -> list[str]:
    """What is wrong with one row: a missing source or file, or figures not in its file."""
    source = row.get("result file", "")
    cited = CITATION.findall(source)
    if not cited:
        return [] if source.startswith("none") else [f"no result file named: {source!r}"]
    numbers: list[float] = []
    for name in cited:
        path = root / name
        if not path.is_file():
            return [f"{name} does not exist"]
        numbers += json_numbers(json.loads(path.read_text()))
    return [f"{q} (in {row['measured']!r}) is not in {', '.join(cited)}"
            for q in quoted_numbers(row["measured"]) if not appears(q, numbers)]


def test_every_performance_row_names_its_result_file_and_quotes_what_it_holds() -> None:
    rows = performance_rows(README.read_text())
    assert rows, "no table under ## Performance"
    assert all("measured" in row and "result file" in row for row in rows)
    problems = {row["what"]: stale_figures(row, PROJECT_DIR) for row in rows}
    assert not {what: p for what, p in problems.items() if p}


README_SAMPLE = """
## Performance

| what | target | measured | result file |
|---|---|---|---|
| ingest | ≤ 10 s | {measured} | {source} |

## Deployment
"""
RESULT = {"cases": {"real": {"dagster": {"step_wall_s": 4.3512, "peak_rss_mb": 1097.4}}},
          "ratio": 5.24, "rps": 16922.3, "note": "bare polars 0.83 s"}


@pytest.mark.parametrize(("measured", "source", "problems"), [
    ("4.35 s, 1,097 MB (1.10 GB), 5.2x, 16.9k req/s, polars 0.83 s",
     "`benchmarks/results/r.json`", 0),
    ("4.34 s, 1,097 MB", "`benchmarks/results/r.json`", 1),   # a stale figure
    ("4.35 s, 1.2 GB", "`benchmarks/results/r.json`", 1),     # another
    ("4.35 s", "`benchmarks/results/missing.json`", 1),       # cites a file that is not there
    ("4.35 s", "docs/benchmarks.md", 1),                      # cites no result file
    ("4.35 s", "none (`bench_ingest_review.json`, not kept)", 0),
])
def test_the_check_fails_on_stale_figures_and_missing_files(
        tmp_path: Path, measured: str, source: str, problems: int) -> None:
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "r.json").write_text(json.dumps(RESULT))
    (row,) = performance_rows(README_SAMPLE.format(measured=measured, source=source))
    assert len(stale_figures(row, tmp_path)) == problems
