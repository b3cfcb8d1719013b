"""Files generated from the code (docs, diagrams, reports, charts): write, or check current.

Each generator script renders its file and hands it here; ``--check`` compares it with the
committed file instead of writing (the tests do the same comparison in-process), so a stale
file is one line on stderr and exit status 1.
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def write_or_check(out: Path, render: Callable[[], str | bytes], *, description: str,
                   command: str, argv: Sequence[str] | None = None) -> int:
    """Write ``render()`` to ``out``, or with ``--check`` in ``argv`` verify it is current.

    Args:
        out: the generated file.
        render: builds the file's whole content (text or bytes).
        description: the script's help text.
        command: how a person regenerates the file (named in the stale-file message).
        argv: the arguments (the process's by default).

    Returns:
        The exit status: 0, or 1 when ``--check`` finds the file missing or stale.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed file differs from a fresh render")
    args = parser.parse_args(argv)
    content = render()
    data = content.encode() if isinstance(content, str) else content
    if args.check:
        if not out.exists() or out.read_bytes() != data:
            sys.stderr.write(f"{out} is out of date: run {command}\n")
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    sys.stdout.write(f"wrote {out} ({len(data):,} bytes)\n")
    return 0
