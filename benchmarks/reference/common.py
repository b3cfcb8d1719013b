"""Helpers shared by bench_serving.py, bench_features.py and bench_model.py.

The machine (2 cores) may be shared with other benchmark runs: before each measurement the
scripts wait until the *other* processes use little CPU (``wait_quiet``), and they record
the load they saw, so a loaded measurement is visible in the results instead of silently
slower.
"""

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
DEFAULT_LAKE = "/tmp/benchlake/lake"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def lake_uri(arg: str | None) -> str:
    """The lake to read: ``--lake``, else ``CRYPTODUDEZ_LAKE``, else /tmp/benchlake/lake."""
    return arg or os.environ.get("CRYPTODUDEZ_LAKE") or DEFAULT_LAKE


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info() -> dict[str, Any]:
    """``nproc``, ``lscpu | head -20``, ``free -g``, ``uptime`` and versions."""
    return {
        "nproc": _run(["nproc"]),
        "lscpu": "\n".join(_run(["lscpu"]).splitlines()[:20]),
        "free_g": _run(["free", "-g"]),
        "uptime": _run(["uptime"]),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server this benchmark starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_counters() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def cores_between(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores in use machine-wide between two :func:`cpu_counters` readings."""
    (busy0, total0), (busy1, total1) = before, after
    return (busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1)


def busy_cores(seconds: float = 1.0) -> float:
    """Cores in use machine-wide over the next ``seconds``."""
    before = cpu_counters()
    time.sleep(seconds)
    return cores_between(before, cpu_counters())


def wait_quiet(*, max_busy: float = 0.5, max_wait: float = 300.0) -> dict[str, Any]:
    """Wait until other processes use under ``max_busy`` cores (at most ``max_wait`` s).

    The 1-minute load average is recorded too but not used to decide: it decays over
    minutes, so it still shows this script's own previous run long after it ended.
    """
    started = time.monotonic()
    busy = busy_cores()
    while busy >= max_busy and time.monotonic() - started < max_wait:
        time.sleep(4.0)
        busy = busy_cores()
    return {"busy_cores_before": round(busy, 2), "waited_s": round(time.monotonic() - started, 1),
            "loadavg_1m": round(os.getloadavg()[0], 2), "quiet": busy < max_busy}


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the live processes ``pids``."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the live processes ``pids`` in MB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def portable(value: Any) -> Any:
    """``value`` with this machine's absolute paths made relative, for committed results.

    In every string, the project folder becomes ``.``, the read-only data beside it
    ``../shared`` and the temporary folder ``<tmp>``; numbers and keys are unchanged.
    """
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    if not isinstance(value, str):
        return value
    for folder, short in ((PROJECT_DIR.parent / "shared", "../shared"), (PROJECT_DIR, "."),
                          (Path(tempfile.gettempdir()), "<tmp>")):
        value = value.replace(str(folder), short)
    return value


def save(name: str, results: dict[str, Any]) -> Path:
    """Write ``benchmarks/out/<name>.json``."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    return path
