"""Summarise mutmut's results (``mutants/**/*.meta``) for the functions under test.

Usage: ``.venv/bin/python -m scripts.mutation_summary [--before DIR] OUT.json PATTERN...``
where each PATTERN is a mutant-name glob (``cryptodudez.datasets.merge.*``). With
``--before DIR``, DIR holds copies of the ``.meta`` files of an earlier run and both results
are written. The output lists counts by status and every mutant not killed.
"""

import argparse
import fnmatch
import json
from collections import Counter
from pathlib import Path

# mutmut 3's exit codes (mutmut/stats.py): what each recorded code means.
STATUS = {1: "killed", 3: "killed", 0: "survived", 33: "no tests", 5: "no tests",
          -24: "timeout", 24: "timeout", 36: "timeout", None: "not run"}


def _results(meta_files: list[Path], patterns: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for meta in meta_files:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                out[name] = STATUS.get(code, "suspicious")
    return out


def _summary(results: dict[str, str]) -> dict[str, object]:
    return {"mutants": len(results), "by_status": dict(Counter(results.values())),
            "not_killed": {k: v for k, v in sorted(results.items()) if v != "killed"}}


def main() -> None:
    """Write the summary of the mutants matching the patterns."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("patterns", nargs="+")
    args = parser.parse_args()
    doc: dict[str, object] = {"tool": "mutmut", "patterns": args.patterns}
    if args.before:
        doc["before"] = _summary(_results(sorted(args.before.glob("*.meta")), args.patterns))
    after = _results(sorted(Path("mutants").rglob("*.meta")), args.patterns)
    doc["after" if args.before else "result"] = _summary(after)
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
