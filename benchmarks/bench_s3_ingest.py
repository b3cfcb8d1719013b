"""The CSV lake's ingest on S3: moto's server on 127.0.0.1 in its own process, the samples.

Lands the bundled samples into a fresh S3 lake (Glue catalogue on the same server), runs the
ingest job once per landed file as the sensor's runs would (in process, an ephemeral Dagster
instance so that Dagster's own bookkeeping is not what is timed), then runs every partition
again (a no-op re-run). Records the wall time of each run and the requests the server
answered, counted from moto's request log on its standard error (one line per request).

    python benchmarks/bench_s3_ingest.py --out NAME [--repeat 3]

Writes ``benchmarks/results/NAME.json``. Loopback only; moto's per-request time (about
10-40 ms here) stands in for S3's latency, which is of the same order from EC2.
"""

# ruff: noqa: PLC0415  (the project is imported from the checkout this file is in, see ROOT)
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's code, also when run from another worktree
sys.path.insert(1, str(ROOT / "benchmarks"))
from reference.common import free_port, machine_info, wait_quiet  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
REGION = "us-east-1"


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A moto server process on a free loopback port, its request log going to ``log``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)


def requests_logged(log: Path) -> int:
    """Requests moto answered so far (Werkzeug logs one ``"METHOD /path HTTP/1.1"`` line each)."""
    return sum(1 for line in log.read_text(errors="replace").splitlines() if "HTTP/1.1" in line)


def one_round(url: str, log: Path, work: Path) -> dict[str, Any]:
    import boto3
    import dagster as dg

    from cryptodudez.definitions import build_definitions
    from cryptodudez.resources import build_resources
    from cryptodudez.resources.lake import partition_key_for
    from cryptodudez.sensors.landing import INGEST_JOB
    from cryptodudez.settings import PROJECT_DIR, Settings

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=url, region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    # Versioned, as the production lake's bucket is (a re-landed file keeps its old version).
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    settings = Settings(lake=f"s3://{bucket}/lake", endpoint_url=url, region=REGION,
                        glue_database=f"cdz_{uuid.uuid4().hex[:8]}",
                        dagster_home=str(work / uuid.uuid4().hex[:8]))
    defs = build_definitions(settings)
    lake = build_resources(settings)["lake"]
    samples = sorted((PROJECT_DIR / "samples").glob("*.zip"))
    for sample in samples:
        lake.land(sample, f"samples/{sample.name}")
    instance = dg.DagsterInstance.ephemeral()
    keys = sorted(partition_key_for(o.key) for o in lake.list_raw())
    instance.add_dynamic_partitions("landed_files", keys)
    job = defs.resolve_job_def(INGEST_JOB)
    out: dict[str, Any] = {"files": [s.name for s in samples]}
    for phase in ("first", "rerun"):
        runs = []
        for key in keys:
            before, started = requests_logged(log), time.perf_counter()
            result = job.execute_in_process(partition_key=key, instance=instance,
                                            raise_on_error=False)
            seconds = time.perf_counter() - started
            runs.append({"partition": key.rsplit("/", 1)[-1], "success": result.success,
                         "seconds": round(seconds, 2),
                         "requests": requests_logged(log) - before})
        out[phase] = {"runs": runs, "seconds": round(sum(r["seconds"] for r in runs), 2),
                      "requests": sum(r["requests"] for r in runs),
                      "all_succeeded": all(r["success"] for r in runs)}
    instance.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="result name (benchmarks/results/NAME.json)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each on a fresh bucket")
    args = parser.parse_args(argv)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION=REGION)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    quiet = wait_quiet()  # the other processes' load, recorded beside the times
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log = work / "moto.log"
        proc, url = start_moto(log)
        try:
            rounds = [one_round(url, log, work) for _ in range(args.repeat)]
        finally:
            proc.kill()
    summary = {phase: {"seconds_median": median(r[phase]["seconds"] for r in rounds),
                       "requests_median": median(r[phase]["requests"] for r in rounds)}
               for phase in ("first", "rerun")}
    result = {"started": datetime.now(tz=UTC).isoformat(timespec="seconds"), "commit": commit,
              "machine": machine_info(), "load_before": quiet,
              "command": "python benchmarks/bench_s3_ingest.py " + " ".join(argv or sys.argv[1:]),
              "summary": summary, "rounds": rounds}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary))
    return 0 if all(r[p]["all_succeeded"] for r in rounds for p in ("first", "rerun")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
