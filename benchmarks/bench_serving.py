"""Load test of the prediction API against reference servers, on 127.0.0.1 only.

Every server runs alone, one after the other, under the same uvicorn configuration (uvloop,
httptools, no access log) and is driven by ``wrk`` (bounded runs: a warm-up, then
``--duration`` seconds at each connection count) with a Lua script that picks each request's
query string at random from real feature rows (``reference/queries.lua``). Servers:

``ours_1w`` / ``ours_2w``
    ``cryptodudez serve`` with 1 and 2 workers (Litestar + the compiled lookup model).
``ours_1w_fractional``
    the same server, queried with the unrounded (fractional) feature values.
``onnx_fastapi``
    reference (b): FastAPI + onnxruntime (a HistGradientBoostingRegressor via skl2onnx,
    ``int`` query parameters, float answer), see ``reference/onnx_app.py``.
``sklearn_rf_fastapi``
    reference (c): the brief's ``RandomForestRegressor(n_estimators=100, random_state=42)``
    trained on a sample of the real features, ``model.predict`` per request.
``raw_asgi``, ``litestar_const``, ``litestar_parse``, ``fastapi_const``
    layers of the request cost (``reference/breakdown_apps.py``).
``litestar_asgi_predict``, ``raw_asgi_predict``
    sketches of a faster ``/predict`` giving the product's answers (same module).

Each (server, connection count) is run ``--repeats`` times (default 3) and the median run is
reported with the range; a run disturbed by other processes is repeated.

Also measured in-process: the model inference per request (ours, onnxruntime, scikit-learn),
the query validation and the JSON encoding; every app awaited directly without sockets
(``asgi_inprocess``); and, unless ``--no-profile``, a py-spy profile of
``ours_1w`` under load, summarised by layer. The server's own CPU time per request comes from
/proc (all its processes) around each run. Nothing here asserts on time.

Usage::

    python benchmarks/bench_serving.py                  # everything (about 15 minutes)
    python benchmarks/bench_serving.py --duration 5 --only ours_1w,onnx_fastapi

Results: ``benchmarks/results/<--out>.json`` and ``.md`` (small, committed: the docs cite
them); query files, reference models and profiles stay in ``--work``.
"""

# ruff: noqa: PLC0415
import argparse
import json
import os
import pickle
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from reference.common import (
    PROJECT_DIR,
    busy_cores,
    cpu_seconds,
    free_port,
    lake_uri,
    machine_info,
    process_tree,
    rss_mb,
    wait_quiet,
)

REF_DIR = Path(__file__).resolve().parent / "reference"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LUA = REF_DIR / "queries.lua"
VENV_BIN = PROJECT_DIR / ".venv" / "bin"
TARGETS = {"rps_c10": 10_000, "rps_c10_aim": 15_000, "p99_c10_ms": 2.0, "p99_c64_ms": 25.0,
           "inference_us": 100.0}
UVICORN_ARGS = ["--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning", "--workers", "1"]
RF_PARAMS = {"n_estimators": 100, "random_state": 42}


# ----------------------------------------------------------------------------- preparation
def load_features(lake: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of every usable feature row, exactly as the model trains on them."""
    from cryptodudez.resources.lake import FEATURES, Lake
    from cryptodudez.transforms import volume_model as vm

    frame = vm.training_frame(
        Lake(uri=lake).scan_table(FEATURES, "stock_features",
                                  list(vm.TRAINING_COLUMNS)).collect()
    )
    x = frame.select(vm.FEATURES).to_numpy().astype(np.float64)
    return x, frame[vm.TARGET].to_numpy().astype(np.float64)


def save_result(name: str, results: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (small and committed: the docs cite it)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def prepare(lake: str, work: Path, *, sample_rows: int, query_rows: int,
            rebuild: bool) -> dict[str, Any]:
    """Query files and the reference models (cached in ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    x, y = load_features(lake)
    rng = np.random.default_rng(42)
    rows = x[rng.choice(len(x), query_rows, replace=False)]
    info: dict[str, Any] = {"feature_rows": len(x), "query_rows": query_rows}
    # Integers: accepted by every server (the ONNX reference rejects fractions, like the
    # public solution it mirrors). Fractional: the unrounded values, for ours.
    (work / "paths_int.txt").write_text("".join(
        f"/predict?vol_moving_avg={round(a)}&adj_close_rolling_med={round(b)}\n"
        for a, b in rows))
    (work / "paths_frac.txt").write_text("".join(
        f"/predict?vol_moving_avg={float(a)!r}&adj_close_rolling_med={float(b)!r}\n"
        for a, b in rows))
    np.save(work / "query_rows.npy", rows)

    rf_path, onnx_path = work / f"rf_{sample_rows}.pkl", work / "hgb.onnx"
    idx = np.random.default_rng(42).choice(len(x), sample_rows, replace=False)
    if rebuild or not rf_path.exists():
        from sklearn.ensemble import RandomForestRegressor

        started = time.perf_counter()
        rf = RandomForestRegressor(**RF_PARAMS).fit(x[idx], y[idx])
        info["rf_train_s"] = round(time.perf_counter() - started, 1)
        rf_path.write_bytes(pickle.dumps(rf, protocol=pickle.HIGHEST_PROTOCOL))
    info["rf_sample_rows"] = sample_rows
    info["rf_pickle_mb"] = round(rf_path.stat().st_size / 1e6, 1)
    if rebuild or not onnx_path.exists():
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
        from sklearn.ensemble import HistGradientBoostingRegressor

        started = time.perf_counter()
        hgb = HistGradientBoostingRegressor(random_state=42).fit(x, y)
        info["hgb_train_s"] = round(time.perf_counter() - started, 1)
        onx = convert_sklearn(hgb, initial_types=[("input", FloatTensorType([None, 2]))])
        onnx_path.write_bytes(onx.SerializeToString())
    info["onnx_mb"] = round(onnx_path.stat().st_size / 1e6, 2)
    info.update(rf=str(rf_path), onnx=str(onnx_path))
    cached = work / "prepare.json"
    if cached.exists():  # training times of the cached models
        info = {**json.loads(cached.read_text()), **info}
    cached.write_text(json.dumps(info))
    return info


# ----------------------------------------------------------------- in-process measurements
def _per_call_us(fn: Any, args: list[tuple[Any, ...]], *, repeats: int = 5) -> float:
    """Best-of-``repeats`` mean time of ``fn(*a)`` over ``args``, loop overhead removed."""
    def loop(f: Any) -> float:
        started = time.perf_counter()
        for a in args:
            f(*a)
        return time.perf_counter() - started

    def noop(*_: Any) -> None:
        return None

    best = min(loop(fn) for _ in range(repeats))
    empty = min(loop(noop) for _ in range(repeats))
    return max(best - empty, 0.0) / len(args) * 1e6


def inprocess(lake: str, prep: dict[str, Any], work: Path) -> dict[str, Any]:
    """Per-request costs of the models, the query validation and the JSON encoding."""
    import msgspec
    import onnxruntime as ort

    from cryptodudez.storage import LakeStorage
    from serving.app import parse_parameter
    from serving.model_store import ModelStore

    rows = np.load(work / "query_rows.npy")
    pairs = [(float(a), float(b)) for a, b in rows]
    out: dict[str, Any] = {}

    store = ModelStore(LakeStorage(lake))
    started = time.perf_counter()
    store.refresh()
    out["ours_load_ms"] = round((time.perf_counter() - started) * 1e3, 1)
    served = store.current
    assert served is not None, "no model in the lake: run `cryptodudez ingest` first"
    model = served.model
    out["ours_version"] = served.version
    out["ours_predict_one_us"] = _per_call_us(model.predict_one, pairs)
    out["ours_predict_round_us"] = _per_call_us(lambda a, b: round(model.predict_one(a, b)),
                                                pairs)
    strs = [(repr(a), repr(b)) for a, b in pairs]
    out["ours_parse_two_params_us"] = _per_call_us(
        lambda a, b: (parse_parameter("vol_moving_avg", a),
                      parse_parameter("adj_close_rolling_med", b)), strs)
    ints = [(round(model.predict_one(a, b)),) for a, b in pairs]
    out["msgspec_encode_int_us"] = _per_call_us(msgspec.json.encode, ints)
    out["json_dumps_float_us"] = _per_call_us(json.dumps, [(float(v),) for (v,) in ints])

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(prep["onnx"], options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out["onnx_run_us"] = _per_call_us(
        lambda a, b: session.run(None, {name: np.array([[a, b]], dtype=np.float32)}), pairs)

    rf = pickle.loads(Path(prep["rf"]).read_bytes())  # written by prepare()
    few = pairs[:300]
    out["sklearn_rf_predict_us"] = _per_call_us(
        lambda a, b: rf.predict(np.array([[a, b]])), few, repeats=3)
    batch = np.array(pairs)
    started = time.perf_counter()
    rf.predict(batch)
    out["sklearn_rf_batch_us_per_row"] = (time.perf_counter() - started) / len(batch) * 1e6
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def asgi_inprocess(lake: str, work: Path, *, calls: int = 20_000) -> dict[str, Any]:
    """Each app called directly (no socket, no HTTP parsing): mean us per request.

    uvicorn's cost (HTTP parsing, the scope, socket writes) is not in these numbers, so the
    differences between the apps are the framework's, without run-to-run server noise.
    """
    import asyncio

    sys.path.insert(0, str(REF_DIR))
    os.environ["CRYPTODUDEZ_LAKE"] = lake  # the fast-path sketches load the model from it
    import breakdown_apps as b

    from cryptodudez.storage import LakeStorage
    from serving.app import ServingSettings, create_app
    from serving.model_store import ModelStore

    ours = create_app(ServingSettings(lake=lake))
    store = ModelStore(LakeStorage(lake))
    store.refresh()
    ours.state.store = store  # what the lifespan does, without its polling task
    apps = {"raw_asgi": b.raw_asgi, "litestar_const": b.litestar_const,
            "litestar_parse": b.litestar_parse, "ours (serving.app)": ours,
            "litestar_asgi_predict": b.make_litestar_asgi_predict(),
            "raw_asgi_predict": b.make_raw_asgi_predict(), "fastapi_const": b.fastapi_const}
    queries = [line.split("?", 1)[1].encode()
               for line in (work / "paths_int.txt").read_text().splitlines()][:calls]
    statuses: Counter[int] = Counter()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    def scope(query: bytes) -> dict[str, Any]:
        return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/predict",
                "raw_path": b"/predict", "query_string": query, "root_path": "",
                "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk")],
                "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}

    async def drive(app: Any) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for query in queries:
                await app(scope(query), receive, send)
            best = min(best, time.perf_counter() - started)
        return best / len(queries) * 1e6

    out: dict[str, Any] = {}
    loop = asyncio.new_event_loop()
    try:
        for name, app in apps.items():
            statuses.clear()
            out[name] = round(loop.run_until_complete(drive(app)), 2)
            assert set(statuses) == {200}, f"{name} answered {dict(statuses)}"
    finally:
        loop.close()
    return out


# ----------------------------------------------------------------------------- servers
def server_command(name: str, port: int) -> list[str]:
    """The command line that starts server ``name`` on ``port``."""
    if name.startswith("ours_"):
        workers = "2" if name.startswith("ours_2w") else "1"
        return [str(VENV_BIN / "cryptodudez"), "serve", "--host", "127.0.0.1",
                "--port", str(port), "--workers", workers]
    module = {
        "onnx_fastapi": "onnx_app:app",
        "sklearn_rf_fastapi": "sklearn_app:app",
        "raw_asgi": "breakdown_apps:raw_asgi",
        "litestar_const": "breakdown_apps:litestar_const",
        "litestar_parse": "breakdown_apps:litestar_parse",
        "fastapi_const": "breakdown_apps:fastapi_const",
        "litestar_asgi_predict": "breakdown_apps:make_litestar_asgi_predict",
        "raw_asgi_predict": "breakdown_apps:make_raw_asgi_predict",
    }[name]
    factory = ["--factory"] if module.split(":")[1].startswith("make_") else []
    return [sys.executable, "-m", "uvicorn", module, *factory, "--app-dir", str(REF_DIR),
            "--port", str(port), *UVICORN_ARGS]


class Server:
    """One server process group, started and stopped by this script (by its own pid)."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(server_command(name, self.port), env=env,
                                     cwd=PROJECT_DIR, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_ready(self, path: str, timeout: float = 120.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.name} exited: {err[-2000:]}")
            try:
                if self.get(path)[0] == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout} s")

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_wrk(url: str, paths: Path, *, connections: int, seconds: float,
            threads: int = 1) -> dict[str, Any]:
    """One bounded wrk run; its JSON summary plus its own CPU time."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(round(seconds), 1)}s",
           "--timeout", "5s", "--latency", "-s", str(LUA), url, "--", str(paths)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, check=True,
                          timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRKJSON "))
    summary = json.loads(line.removeprefix("WRKJSON "))
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
    summary["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    summary["errors_total"] = sum(summary["errors"].values())
    return summary


def measure(server: Server, paths: Path, *, connections: int, seconds: float,
            quiet_max: float, repeats: int, label: str = "") -> dict[str, Any]:
    """The median (by req/s) of ``repeats`` undisturbed runs, with every run's numbers.

    A run during which other processes used more than ``quiet_max / 2`` cores is made again
    (at most twice per run) and, if still disturbed, kept but flagged.
    """
    runs = []
    for _ in range(repeats):
        tries = []
        for _ in range(3):
            tries.append(_measure_once(server, paths, connections=connections,
                                       seconds=seconds, quiet_max=quiet_max, label=label))
            if tries[-1]["others_cores"] <= quiet_max / 2:
                break
        run = min(tries, key=lambda r: r["others_cores"])
        run["attempts"] = len(tries)
        runs.append(run)
    ordered = sorted(runs, key=lambda r: r["rps"])
    median = dict(ordered[len(ordered) // 2])
    median["all_runs"] = [
        {"rps": round(r["rps"]), "p50_us": r["latency_us"]["p50"],
         "p99_us": r["latency_us"]["p99"], "errors": r["errors_total"],
         "server_cpu_us_per_request": r["server_cpu_us_per_request"],
         "others_cores": r["others_cores"], "attempts": r["attempts"]} for r in runs]
    median["rps_range"] = [round(ordered[0]["rps"]), round(ordered[-1]["rps"])]
    median["p99_us_range"] = [min(r["latency_us"]["p99"] for r in runs),
                              max(r["latency_us"]["p99"] for r in runs)]
    median["errors_all_runs"] = sum(r["errors_total"] for r in runs)
    return median


def _measure_once(server: Server, paths: Path, *, connections: int, seconds: float,
                  quiet_max: float, label: str) -> dict[str, Any]:
    """A wrk run with the server's CPU time and the machine's other load around it."""
    quiet = wait_quiet(max_busy=quiet_max)
    pids = server.pids()
    cpu0, wall0 = cpu_seconds(pids), time.monotonic()
    busy0 = _machine_busy()
    result = run_wrk(server.base, paths, connections=connections, seconds=seconds)
    busy1, wall1 = _machine_busy(), time.monotonic()
    server_cpu = cpu_seconds(pids) - cpu0
    elapsed = wall1 - wall0
    machine_cores = (busy1 - busy0) / elapsed
    result.update(
        connections=connections,
        server_cpu_s=round(server_cpu, 2),
        server_cores=round(server_cpu / elapsed, 2),
        server_cpu_us_per_request=round(server_cpu / max(result["requests"], 1) * 1e6, 1),
        others_cores=round(max(machine_cores - (server_cpu + result["wrk_cpu_s"]) / elapsed,
                               0.0), 2),
        server_rss_mb=round(rss_mb(pids), 1),
        **quiet,
    )
    lat = result["latency_us"]
    print(f"  {server.name + label:<30} c={connections:<3} {result['rps']:>9,.0f} req/s  "
          f"p50 {lat['p50'] / 1e3:6.2f} ms  p99 {lat['p99'] / 1e3:7.2f} ms  "
          f"errors {result['errors_total']}  server {result['server_cpu_us_per_request']} "
          f"us/req  others {result['others_cores']} cores", flush=True)
    return result


def _machine_busy() -> float:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- checks
def check_ours(server: Server, lake: str, work: Path) -> dict[str, Any]:
    """Answers equal the in-process model; bad input is a 400 naming the parameter."""
    from cryptodudez.storage import LakeStorage
    from serving.model_store import ModelStore

    store = ModelStore(LakeStorage(lake))
    store.refresh()
    assert store.current is not None
    model = store.current.model
    rows = np.load(work / "query_rows.npy")[:200]
    mismatches = 0
    for a, b in rows.tolist():
        for va, vb in ((round(a), round(b)), (a, b)):
            status, body = server.get(
                f"/predict?vol_moving_avg={va!r}&adj_close_rolling_med={vb!r}")
            if status != 200 or json.loads(body) != round(model.predict_one(va, vb)):
                mismatches += 1
    bad = server.get("/predict?vol_moving_avg=-1&adj_close_rolling_med=25")
    out = {"checked": 2 * len(rows), "mismatches": mismatches, "negative_status": bad[0]}
    if server.name.startswith("ours"):
        out["health"] = json.loads(server.get("/health")[1])
    return out


def check_onnx(server: Server, prep: dict[str, Any], work: Path) -> dict[str, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(prep["onnx"], providers=["CPUExecutionProvider"])
    rows = np.load(work / "query_rows.npy")[:100]
    worst = 0.0
    for a, b in rows:
        ia, ib = round(a), round(b)
        status, body = server.get(f"/predict?vol_moving_avg={ia}&adj_close_rolling_med={ib}")
        want = float(session.run(None, {"input": np.array([[ia, ib]], dtype=np.float32)})[0][0, 0])
        got = json.loads(body) if status == 200 else float("nan")
        worst = max(worst, abs(got - want) / max(abs(want), 1.0))
    frac = server.get("/predict?vol_moving_avg=12345.5&adj_close_rolling_med=25")[0]
    return {"checked": len(rows), "max_relative_difference": worst,
            "fractional_status": frac}


def check_rf(server: Server, prep: dict[str, Any], work: Path) -> dict[str, Any]:
    rf = pickle.loads(Path(prep["rf"]).read_bytes())  # written by prepare()
    rows = np.load(work / "query_rows.npy")[:20]
    worst = 0.0
    for a, b in rows.tolist():
        status, body = server.get(f"/predict?vol_moving_avg={a!r}&adj_close_rolling_med={b!r}")
        want = float(rf.predict(np.array([[a, b]]))[0])
        got = json.loads(body) if status == 200 else float("nan")
        worst = max(worst, abs(got - want) / max(abs(want), 1.0))
    return {"checked": len(rows), "max_relative_difference": worst}


# --------------------------------------------------------------------------- profiling
def _transport_write_lines() -> str:
    """Line numbers of ``self.transport.write`` in the installed uvicorn httptools protocol."""
    import uvicorn.protocols.http.httptools_impl as impl

    lines = Path(impl.__file__).read_text().splitlines()
    return "|".join(str(i) for i, line in enumerate(lines, 1) if "transport.write(" in line)


PROFILE_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("model inference (predict_one)", re.compile(r"\bpredict_one \(")),
    ("query validation (parse_parameter)", re.compile(r"\bparse_parameter \(")),
    ("socket writes (uvicorn transport.write: headers, then body)",
     re.compile(rf"httptools_impl\.py:(?:{_transport_write_lines()})\)")),
    ("query-string parsing (litestar)", re.compile(r"query_params|parse_query_string|"
                                                   r"MultiDict|multi_dicts")),
    ("JSON encoding", re.compile(r"encode_json|msgspec|serializ|json\.py")),
    ("route handler body (serving/app.py)", re.compile(r"\(serving/app\.py|/serving/app\.py")),
    ("Litestar framework (routing, request/response objects)", re.compile(r"litestar/")),
    ("uvicorn HTTP protocol (httptools callbacks, ASGI glue)", re.compile(r"uvicorn/")),
    ("event loop + sockets + HTTP parser (uvloop/httptools, C)",
     re.compile(r"asyncio/|uvloop|^run |runners\.py")),
]


def summarise_profile(raw: str) -> dict[str, Any]:
    """Share of samples per layer: each sample goes to the innermost frame matching a rule."""
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaves[frames[-1]] += count
        for frame in reversed(frames):
            layer = next((name for name, rule in PROFILE_RULES if rule.search(frame)), None)
            if layer is not None:
                layers[layer] += count
                break
        else:
            layers["other"] += count
    return {
        "samples": total,
        "layers_pct": {k: round(100 * v / total, 1) for k, v in layers.most_common()},
        "top_leaves_pct": {k: round(100 * v / total, 1) for k, v in leaves.most_common(25)},
    }


def profile(server: Server, paths: Path, work: Path, seconds: float) -> dict[str, Any]:
    """py-spy on the (single) server process while wrk drives it at 10 connections."""
    pyspy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not Path(pyspy).exists():
        return {"error": "py-spy not installed"}
    target = server.proc.pid  # one worker: uvicorn serves in the process it was started as
    out_file = work / "profile_ours_1w.txt"
    spy = subprocess.Popen([pyspy, "record", "--pid", str(target),
                            "--duration", str(max(round(seconds), 1)), "--rate", "250",
                            "--format", "raw", "--output", str(out_file), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    loaded = run_wrk(server.base, paths, connections=10, seconds=seconds)
    try:
        spy.wait(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
    if not out_file.exists():
        err = spy.stderr.read().decode() if spy.stderr else ""
        return {"error": f"py-spy failed: {err[-500:]}"}
    summary = summarise_profile(out_file.read_text())
    summary.update(file=str(out_file), rps_while_profiled=round(loaded["rps"]))
    return summary


# -------------------------------------------------------------------------------- main
ALL = ["ours_1w", "ours_2w", "onnx_fastapi", "sklearn_rf_fastapi", "raw_asgi",
       "litestar_const", "litestar_parse", "fastapi_const", "litestar_asgi_predict",
       "raw_asgi_predict"]


def run_server(name: str, args: argparse.Namespace, env: dict[str, str], prep: dict[str, Any],
               work: Path) -> dict[str, Any]:
    print(f"{name}: starting", flush=True)
    server = Server(name, env)
    ready_path = "/health" if name.startswith(("ours", "onnx", "sklearn")) else \
        "/predict?vol_moving_avg=12345&adj_close_rolling_med=25"
    result: dict[str, Any] = {"command": " ".join(server_command(name, server.port))}
    try:
        result["startup_s"] = round(server.wait_ready(ready_path), 2)
        if name.startswith("ours") or name.endswith("_predict"):
            result["check"] = check_ours(server, args.lake, work)
        elif name == "onnx_fastapi":
            result["check"] = check_onnx(server, prep, work)
        elif name == "sklearn_rf_fastapi":
            result["check"] = check_rf(server, prep, work)
        paths_int = work / "paths_int.txt"
        run_wrk(server.base, paths_int, connections=10, seconds=args.warmup)  # warm-up
        result["idle_rss_mb"] = round(rss_mb(server.pids()), 1)
        runs = {}
        for c in args.connections:
            runs[f"c{c}"] = measure(server, paths_int, connections=c, seconds=args.duration,
                                    quiet_max=args.quiet_max, repeats=args.repeats)
        result["runs"] = runs
        if name == "ours_1w":
            frac = {}
            for c in args.connections:
                frac[f"c{c}"] = measure(server, work / "paths_frac.txt", connections=c,
                                        seconds=args.duration, quiet_max=args.quiet_max,
                                        repeats=1, label=" (fractional)")
            result["fractional_runs"] = frac
            if not args.no_profile:
                wait_quiet(max_busy=args.quiet_max)
                result["profile"] = profile(server, paths_int, work, args.duration)
    finally:
        server.stop()
    return result


def ratios(servers: dict[str, Any], connections: list[int]) -> dict[str, Any]:
    """Throughput and p99 of ours (1 and 2 workers) relative to each reference."""
    out: dict[str, Any] = {}
    for ours in ("ours_1w", "ours_2w"):
        for ref in ("onnx_fastapi", "sklearn_rf_fastapi"):
            if ours not in servers or ref not in servers:
                continue
            for c in connections:
                a, b = servers[ours]["runs"][f"c{c}"], servers[ref]["runs"][f"c{c}"]
                out[f"{ours}/{ref}/c{c}"] = {
                    "rps_ratio": round(a["rps"] / b["rps"], 2),
                    "p99_ratio": round(a["latency_us"]["p99"] / max(b["latency_us"]["p99"], 1),
                                       3),
                }
    return out


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    """Each target against the best of ours (1 or 2 workers)."""
    servers = result["servers"]
    out: dict[str, Any] = {}
    for ours in ("ours_1w", "ours_2w"):
        if ours not in servers:
            continue
        runs = servers[ours]["runs"]
        v: dict[str, Any] = {}
        if "c10" in runs:
            r = runs["c10"]
            v["rps_c10>=10000"] = r["rps"] >= TARGETS["rps_c10"]
            v["rps_c10>=15000 (aim)"] = r["rps"] >= TARGETS["rps_c10_aim"]
            v["p99_c10<2ms"] = r["latency_us"]["p99"] < TARGETS["p99_c10_ms"] * 1e3
        if "c64" in runs:
            v["p99_c64<25ms"] = runs["c64"]["latency_us"]["p99"] < TARGETS["p99_c64_ms"] * 1e3
        v["no_errors"] = all(r["errors_all_runs"] == 0 for r in runs.values())
        out[ours] = v
    inference = result.get("inprocess", {}).get("ours_predict_one_us")
    if inference is not None:
        out["inference<100us"] = inference < TARGETS["inference_us"]
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table (median run; ranges over the repeats)."""
    lines = ["| server | conns | req/s (median) | req/s range | p50 ms | p99 ms | p99 range ms "
             "| errors | server CPU us/req |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, server in result["servers"].items():
        for group, label in (("runs", ""), ("fractional_runs", " (fractional)")):
            for run in server.get(group, {}).values():
                lat = run["latency_us"]
                rps_range = "-".join(f"{v:,}" for v in run.get("rps_range", []))
                p99_range = "-".join(f"{v / 1e3:.2f}" for v in run.get("p99_us_range", []))
                lines.append(
                    f"| {name}{label} | {run['connections']} | {run['rps']:,.0f} | {rps_range} "
                    f"| {lat['p50'] / 1e3:.2f} | {lat['p99'] / 1e3:.2f} | {p99_range} "
                    f"| {run.get('errors_all_runs', run['errors_total'])} "
                    f"| {run['server_cpu_us_per_request']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/benchlake/bench_serving"))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per server and connection count; the median is reported")
    parser.add_argument("--connections", default="10,64")
    parser.add_argument("--only", default=",".join(ALL))
    parser.add_argument("--rf-sample", type=int, default=100_000)
    parser.add_argument("--query-rows", type=int, default=20_000)
    parser.add_argument("--quiet-max", type=float, default=0.5,
                        help="wait until other processes use fewer cores than this")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--rebuild", action="store_true", help="retrain the reference models")
    parser.add_argument("--out", default="bench_serving",
                        help="result name: benchmarks/results/<out>.json and .md")
    args = parser.parse_args(argv)
    args.lake = lake_uri(args.lake)
    args.connections = [int(c) for c in args.connections.split(",")]
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")

    result: dict[str, Any] = {"machine": machine_info(), "targets": TARGETS,
                              "busy_cores_at_start": round(busy_cores(), 2),
                              "settings": {"duration_s": args.duration, "warmup_s": args.warmup,
                                           "connections": args.connections, "wrk_threads": 1,
                                           "repeats": args.repeats}}
    print(f"load at start: {result['machine']['uptime']}", flush=True)
    prep = prepare(args.lake, args.work, sample_rows=args.rf_sample,
                   query_rows=args.query_rows, rebuild=args.rebuild)
    result["prepare"] = prep
    print(f"prepared: {prep}", flush=True)
    result["inprocess"] = inprocess(args.lake, prep, args.work)
    print(f"in-process: {result['inprocess']}", flush=True)
    result["asgi_inprocess_us"] = asgi_inprocess(args.lake, args.work)
    print(f"ASGI apps called in-process (us/request): {result['asgi_inprocess_us']}",
          flush=True)

    env = {**os.environ, "CRYPTODUDEZ_LAKE": args.lake, "REFERENCE_ONNX": prep["onnx"],
           "REFERENCE_RF": prep["rf"], "PYTHONPATH": str(PROJECT_DIR)}
    env.setdefault("DAGSTER_HOME", str(Path(args.lake).parent / "dh"))
    servers: dict[str, Any] = {}
    for name in [n for n in args.only.split(",") if n]:
        try:
            servers[name] = run_server(name, args, env, prep, args.work)
        except (RuntimeError, TimeoutError, subprocess.SubprocessError) as exc:
            servers[name] = {"error": str(exc)}
            print(f"{name}: FAILED {exc}", flush=True)
    result["servers"] = servers
    ok = {k: v for k, v in servers.items() if "runs" in v}
    result["ratios"] = ratios(ok, args.connections)
    result["verdicts"] = verdicts({**result, "servers": ok})
    per_req = {k: v["runs"]["c10"]["server_cpu_us_per_request"] for k, v in ok.items()
               if "c10" in v["runs"]}
    result["server_cpu_us_per_request_c10"] = per_req
    result["median_others_cores"] = statistics.median(
        r["others_cores"] for v in ok.values() for r in v["runs"].values()) if ok else None
    path = save_result(args.out, result)
    table = markdown(result)
    path.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(json.dumps({"ratios": result["ratios"], "verdicts": result["verdicts"],
                      "server_cpu_us_per_request_c10": per_req}, indent=2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
