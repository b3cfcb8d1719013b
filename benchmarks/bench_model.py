"""The volume model against the naive forecast and the brief's random forest, on real features.

Three splits of the rows the model trains on (both features present, volume known), exactly
as ``cryptodudez.transforms.volume_model.evaluation_splits`` makes them:

``held_out_symbols``
    every row (all dates) of 20 % of the symbols is tested; none of their rows is trained
    on, and the shrinkage is chosen on validation symbols inside the training symbols.
``time_holdout``
    train on rows dated before (last date - 182 days), test on the rest.
``random_80_20``
    the brief's ``train_test_split(test_size=0.2, random_state=42)``.

Contenders, each scored on the full test rows with MAE, MSE and MAE of log1p(volume):

``ours``
    ``volume_model.evaluate`` (the production procedure ``train`` refitted on each split's
    training rows), re-run here; the production training path on all rows (sample, shrinkage
    choice, fit, compile, exactness check) with its time and peak RSS; and a sample-size
    study: the held-out-symbol scores when ``train`` fits on 100 k, 250 k (production),
    1 M rows or every training row.
``naive``
    ``Volume = vol_moving_avg``.
``rf_<n>`` (``--rf-sizes``, off by default)
    the brief's ``RandomForestRegressor(n_estimators=100, random_state=42)`` fitted on a
    random sample of ``n`` training rows; fit and predict time, peak RSS, pickle size.
``hgb_volume`` (``--hgb``)
    a plain ``HistGradientBoostingRegressor(random_state=42)`` of ``Volume`` on all training
    rows: the model of the ONNX reference server in bench_serving.py.

Features (``--features``):

``brief`` (default)
    the lake's ``stock_features`` as served: the mean and median over the row's 30 most
    recent rows *including the row itself*, so every contender (the naive forecast too) sees
    1/30 of the volume it predicts: a nowcast.
``trailing``
    the same procedure on features over the *previous* 30 rows only, recomputed here from
    the table's ``Volume`` and ``Adj Close`` with
    ``stock_features.trailing_features`` (a symbol's first 30 rows are null, so one row
    fewer per symbol is usable). The naive forecast with the brief's features on exactly
    these rows and splits is reported too (``naive_brief_features_same_rows``). The
    published model (``trained_model``) is the served one, fitted on the brief's features.

Every fit runs in its own subprocess, so each peak RSS is that fit's alone. Nothing here
asserts on time. Results go to ``benchmarks/results/<--out>.json``. Usage::

    python benchmarks/bench_model.py --lake <lake>                # about 5 minutes
    python benchmarks/bench_model.py --lake <lake> --features trailing --out <name>
    python benchmarks/bench_model.py --lake <lake> --rf-sizes 200000 --hgb
"""

# ruff: noqa: PLC0415
import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from reference.common import lake_uri, machine_info, wait_quiet

TARGETS = {"train_s": 120.0, "model_file_mb": 50.0}
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SAMPLE_STUDY = (100_000, 250_000, 1_000_000, 10**12)
RF_PARAMS = {"n_estimators": 100, "random_state": 42}
HOLDOUT_DAYS = 182
FEATURE_SETS = ("brief", "trailing")


def load(lake: str, features: str = "brief") -> Any:
    """The training frame as the volume_model asset reads it, with ``features``'s features.

    ``brief``: exactly the asset's frame. ``trailing``: the same rows of the lake's
    ``stock_features`` with both features recomputed over the previous 30 rows only, then
    the asset's ``training_frame`` (rows with both features and a volume, same sampling).
    """
    from cryptodudez.resources.lake import FEATURES, Lake
    from cryptodudez.transforms import stock_features as sf
    from cryptodudez.transforms import volume_model as vm

    if features == "brief":
        return vm.training_frame(
            Lake(uri=lake).scan_table(FEATURES, "stock_features", list(vm.TRAINING_COLUMNS)))
    bars = Lake(uri=lake).scan_table(FEATURES, "stock_features", list(sf.INPUTS)).collect()
    return vm.training_frame(sf.trailing_features(bars).lazy())


def splits(frame: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The same three splits as ``volume_model.evaluate``."""
    from cryptodudez.transforms import volume_model as vm

    return vm.evaluation_splits(frame, holdout_days=HOLDOUT_DAYS)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------ child tasks
def child_ours(lake: str, features: str) -> dict[str, Any]:
    """``evaluate`` on the three splits, the production path, and the sample-size study."""
    from cryptodudez.transforms import volume_model as vm

    frame = load(lake, features)
    out: dict[str, Any] = {"rows_read": frame.height, "rss_after_load_mb": round(_max_rss_mb())}
    started = time.perf_counter()
    model, report = vm.train(frame)
    table = model.compile()
    x_check, _ = vm.arrays(vm.subsample(frame, 20_000))
    exact = vm.check_exact(model, table, x_check)
    out["train_s"] = round(time.perf_counter() - started, 1)
    out["rows_fitted"] = report["rows_sampled"]
    out["shrinkage"] = model.shrinkage
    out["validation"] = report
    out["lookup_max_relative_difference"] = exact
    out["booster_pickle_mb"] = round(len(pickle.dumps(model)) / 1e6, 3)
    out["lookup_json_mb"] = round(len(json.dumps(table.to_json()).encode()) / 1e6, 3)
    out["max_rss_after_train_mb"] = round(_max_rss_mb())
    started = time.perf_counter()
    out["evaluate"] = vm.evaluate(frame)
    out["evaluate_s"] = round(time.perf_counter() - started, 1)
    train_rows, test_rows = splits(frame)["held_out_symbols"]
    x, y = vm.arrays(frame[test_rows])
    naive = vm.metrics(y, x[:, 0])
    study = {}
    for rows in SAMPLE_STUDY:
        started = time.perf_counter()
        fitted, rep = vm.train(frame[train_rows], rows=rows)
        scores = vm.metrics(y, fitted.predict(x))
        study[str(rep["rows_sampled"])] = {
            "train_s": round(time.perf_counter() - started, 1), "shrinkage": fitted.shrinkage,
            "model": scores, "change_pct": vm.gains(scores, naive)}
    out["sample_study_held_out_symbols"] = study
    out["max_rss_mb"] = round(_max_rss_mb())
    return out


def child_rf(lake: str, features: str, split: str, size: int) -> dict[str, Any]:
    """The brief's random forest on a ``size``-row sample of ``split``'s training rows."""
    from sklearn.ensemble import RandomForestRegressor

    from cryptodudez.transforms import volume_model as vm

    frame = load(lake, features)
    x, y = vm.arrays(frame)
    train, test = splits(frame)[split]
    rows = np.random.default_rng(42).choice(train, min(size, len(train)), replace=False)
    rss_before = _max_rss_mb()
    started = time.perf_counter()
    rf = RandomForestRegressor(**RF_PARAMS).fit(x[rows], y[rows])
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    predicted = rf.predict(x[test])
    predict_s = time.perf_counter() - started
    rss = _max_rss_mb()
    with tempfile.NamedTemporaryFile(dir="/tmp", suffix=".pkl") as f:
        pickle.dump(rf, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        size_mb = os.path.getsize(f.name) / 1e6
    return {
        "rows_train_sample": len(rows), "rows_train_available": len(train),
        "rows_test": len(test), "fit_s": round(fit_s, 1), "predict_s": round(predict_s, 1),
        "predict_us_per_row": round(predict_s / len(test) * 1e6, 2),
        "max_rss_mb": round(rss), "rss_before_fit_mb": round(rss_before),
        "pickle_mb": round(size_mb, 1),
        "nodes": int(sum(t.tree_.node_count for t in rf.estimators_)),
        "metrics": vm.metrics(y[test], predicted),
    }


def child_hgb(lake: str, features: str, split: str) -> dict[str, Any]:
    """A plain HistGradientBoostingRegressor of Volume (the ONNX reference's model)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from cryptodudez.transforms import volume_model as vm

    frame = load(lake, features)
    x, y = vm.arrays(frame)
    train, test = splits(frame)[split]
    started = time.perf_counter()
    model = HistGradientBoostingRegressor(random_state=42).fit(x[train], y[train])
    fit_s = time.perf_counter() - started
    return {"rows_train": len(train), "rows_test": len(test), "fit_s": round(fit_s, 1),
            "max_rss_mb": round(_max_rss_mb()),
            "metrics": vm.metrics(y[test], model.predict(x[test]))}


def run_child(args: list[str], quiet_max: float, lake: str, features: str = "brief",
              timeout: float = 3600) -> dict[str, Any]:
    load_before = wait_quiet(max_busy=quiet_max)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--lake", lake, "--features", features,
                           "--child", *args],
                          capture_output=True,
                          text=True, check=False, timeout=timeout, cwd=Path(__file__).parent)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr[-3000:], "load": load_before}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(load=load_before, child_wall_s=round(wall, 1))
    return out


# ------------------------------------------------------------------------------ main
def trained_model(lake: str) -> dict[str, Any]:
    """metrics.json and file sizes of the model ``cryptodudez ingest`` published."""
    from cryptodudez.resources.lake import MODELS, Lake

    lk = Lake(uri=lake)
    version = lk.read_bytes(lk.path(MODELS, "volume_model", "LATEST")).decode().strip()
    folder = Path(lk.path(MODELS, "volume_model", version))
    metrics = json.loads((folder / "metrics.json").read_text())
    return {
        "version": version, **{k: metrics.get(k) for k in (
            "rows", "rows_read", "train_seconds", "evaluate_seconds", "shrinkage",
            "evaluation")},
        "files_mb": {p.name: round(p.stat().st_size / 1e6, 3) for p in sorted(folder.iterdir())},
    }


def naive(lake: str, features: str = "brief") -> dict[str, Any]:
    from cryptodudez.transforms import volume_model as vm

    frame = load(lake, features)
    x, y = vm.arrays(frame)
    return {name: {"rows_test": len(te), "metrics": vm.metrics(y[te], x[te, 0])}
            for name, (_, te) in splits(frame).items()}


def naive_brief_same_rows(lake: str, features: str) -> dict[str, Any]:
    """The naive forecast with the brief's ``vol_moving_avg`` on ``features``'s rows and splits.

    Isolates what the row's own volume in the feature is worth: same test rows as
    :func:`naive` with ``features``, only the forecast's feature differs.
    """
    from cryptodudez.resources.lake import FEATURES, Lake
    from cryptodudez.transforms import volume_model as vm

    frame = load(lake, features)
    brief = Lake(uri=lake).scan_table(
        FEATURES, "stock_features", ["Symbol", "Date", "vol_moving_avg"]).collect()
    joined = frame.select("Symbol", "Date", vm.TARGET).join(
        brief, on=["Symbol", "Date"], how="left", maintain_order="left")
    if joined.height != frame.height or joined["vol_moving_avg"].null_count():
        raise ValueError("the brief's features are missing on some of these rows")
    y = joined[vm.TARGET].to_numpy().astype(np.float64)
    base = joined["vol_moving_avg"].to_numpy().astype(np.float64)
    return {name: {"rows_test": len(te), "metrics": vm.metrics(y[te], base[te])}
            for name, (_, te) in splits(frame).items()}


SPLITS = ("held_out_symbols", "time_holdout", "random_80_20")


def table(result: dict[str, Any]) -> str:
    """A markdown table of every contender on every split, with % change against naive."""
    lines = ["| split | model | MAE | MSE | MAE log1p | MAE vs naive | MSE vs naive | "
             "log-MAE vs naive |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for split in SPLITS:
        base = result["naive"][split]["metrics"]
        rows: list[tuple[str, dict[str, float]]] = []
        ours = result.get("ours", {}).get("evaluate", {}).get(split)
        if ours and "model" in ours:
            rows.append((f"ours (s={ours['shrinkage']})", ours["model"]))
        rows.append(("naive", base))
        same_rows = result.get("naive_brief_features_same_rows", {}).get(split)
        if same_rows:
            rows.append(("naive, brief's features (row included)", same_rows["metrics"]))
        for key, value in result.get("rf", {}).items():
            if key.startswith(split) and "metrics" in value:
                rows.append((f"rf {key.split('/')[1]}", value["metrics"]))
        hgb = result.get("hgb_volume", {}).get(split, {})
        if "metrics" in hgb:
            rows.append(("hgb_volume", hgb["metrics"]))
        for name, m in rows:
            change = {k: 100 * (m[k] / base[k] - 1) for k in base}
            lines.append(f"| {split} | {name} | {m['mae']:,.0f} | {m['mse']:.4e} | "
                         f"{m['mae_log1p']:.4f} | {change['mae']:+.2f} % | "
                         f"{change['mse']:+.2f} % | {change['mae_log1p']:+.2f} % |")
    return "\n".join(lines)


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lake", default=None)
    parser.add_argument("--rf-sizes", default="")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--hgb", action="store_true")
    parser.add_argument("--quiet-max", type=float, default=0.5)
    parser.add_argument("--out", default="bench_model", help="results file name")
    parser.add_argument("--features", choices=FEATURE_SETS, default="brief",
                        help="brief: the served features (the row included); trailing: the "
                             "previous 30 rows only (see the module docstring)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    lake = lake_uri(args.lake)
    if args.child:
        kind, *rest = args.child
        if kind == "ours":
            out = child_ours(lake, args.features)
        elif kind == "rf":
            out = child_rf(lake, args.features, rest[0], int(rest[1]))
        else:
            out = child_hgb(lake, args.features, rest[0])
        print(json.dumps(out, default=float))
        return 0

    result: dict[str, Any] = {"machine": machine_info(), "targets": TARGETS,
                              "command": " ".join(["python", *sys.argv]),
                              "features": args.features}
    result["trained_model"] = trained_model(lake)
    result["naive"] = naive(lake, args.features)
    if args.features != "brief":
        result["naive_brief_features_same_rows"] = naive_brief_same_rows(lake, args.features)
    print(f"trained model: {json.dumps(result['trained_model'])}", flush=True)
    if not args.skip_ours:
        result["ours"] = run_child(["ours", "-"], args.quiet_max, lake, args.features)
        print(f"ours: {json.dumps(result['ours'])}", flush=True)
    split_names = [s for s in args.splits.split(",") if s]
    if args.hgb:
        result["hgb_volume"] = {s: run_child(["hgb", s], args.quiet_max, lake, args.features)
                                for s in split_names}
        print(f"hgb_volume: {json.dumps(result['hgb_volume'])}", flush=True)
    result["rf"] = {}
    for size in [int(s) for s in args.rf_sizes.split(",") if s]:
        for split in split_names:
            key = f"{split}/{size}"
            result["rf"][key] = run_child(["rf", split, str(size)], args.quiet_max, lake,
                                          args.features)
            print(f"rf {key}: {json.dumps(result['rf'][key])}", flush=True)
            save(args.out, result)
    tm = result["trained_model"]
    model_mb = tm["files_mb"].get("lookup.json", 0) + tm["files_mb"].get("booster.pkl", 0)
    result["verdicts"] = {"model_files<50MB": model_mb < TARGETS["model_file_mb"]}
    held_out = result.get("ours", {}).get("evaluate", {}).get("held_out_symbols", {})
    if "change_pct" in held_out:
        result["verdicts"]["held_out_log_mae<=-4%"] = held_out["change_pct"]["mae_log1p"] <= -4
        result["verdicts"]["held_out_mae<naive"] = held_out["change_pct"]["mae"] < 0
    result["table"] = table(result)
    print(result["table"])
    print(json.dumps(result["verdicts"]))
    print(f"results: {save(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
