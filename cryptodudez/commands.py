"""The commands that run the pipelines, each in this process and without the daemon.

``land``, ``ingest``, ``demo``, ``summary``, ``kpi``, ``backfill-events`` and ``coingecko``.

:mod:`cryptodudez.cli` parses the command line and imports this module only when one of these
commands is asked for (it loads Dagster and every pipeline).
"""

import argparse
import json
import os
import posixpath
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from cryptodudez.assets import events as event_assets
from cryptodudez.assets.eth import (
    ETH_SIGNAL,
    FIRST_DAY,
    data_end,
    missing_inputs,
    servable_training_set,
)
from cryptodudez.assets.events import KPIS
from cryptodudez.assets.mood import SENTIMENTS, TRADES
from cryptodudez.assets.stocks import FIRST_YEAR, STOCK_FEATURES, VOLUME_MODEL
from cryptodudez.cli import (
    CHART_FOLDER,
    MAX_BACKFILL_DAYS,
    CliError,
    DataError,
    check_lake_folder,
    echo,
    ensure_dagster_home,
    not_a_folder,
    one_line,
    prefix_problem,
    this_command,
)
from cryptodudez.coingecko.cli_command import run_coingecko_cli
from cryptodudez.datasets.specs import DATASETS
from cryptodudez.definitions import build_definitions
from cryptodudez.features import evaluation as ev
from cryptodudez.ingest import ingest_members, unpack
from cryptodudez.jobs import (
    ETH_MODEL_JOB,
    EVENT_DAILY_JOB,
    FEATURE_STORE_JOB,
    MOOD_JOB,
    STOCK_PIPELINE_JOB,
)
from cryptodudez.lake import kpi
from cryptodudez.lake.event_table import EventTable
from cryptodudez.lake.id_index import INDEXES
from cryptodudez.lake.layout import CATALOG_FILE, STAGING
from cryptodudez.lake.rollups import ROLLUPS, day_folder, rollup_files
from cryptodudez.mood import results as mood_results
from cryptodudez.resources import build_resources
from cryptodudez.resources.lake import (
    FEATURES,
    MODELS,
    QUARANTINE,
    RAW,
    VALIDATED,
    Lake,
    partition_key_for,
)
from cryptodudez.run_outcome import QUIET, outcome
from cryptodudez.sensors.changes import changes_of
from cryptodudez.sensors.feature_store import range_tags, touched_days
from cryptodudez.sensors.landing import not_ingested, route, run_tags
from cryptodudez.sensors.stock_pipeline import changed_stock_dates, pipeline_tags
from cryptodudez.settings import PROJECT_DIR, WAREHOUSE_FILE, Settings
from cryptodudez.transforms import volume_model as vm
from cryptodudez.unreadable import count_rows, reading, shown, unreadable_log, unreadable_parquet

SAMPLES_DIR = PROJECT_DIR / "samples"
# The CLI prints its own progress and what failed (run_outcome); the runs keep the rest.


def _instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance in ``DAGSTER_HOME`` (created on first use)."""
    ensure_dagster_home(settings)
    return dg.DagsterInstance.get()


def _lake(settings: Settings) -> Lake:
    """The lake of ``settings``; a local one must be (or be able to become) a folder.

    An S3 lake's bucket must exist: a typo in ``CRYPTODUDEZ_LAKE`` is a bad setting (exit 2)
    whatever the command, not a Delta log that cannot be read (``summary``, ``ingest``: exit
    1) or a file that cannot be landed (``land``), as each said before. Buckets are made by
    the infrastructure (``infra/pulumi``), never by a command.
    """
    check_lake_folder(settings)
    lake = Lake(uri=settings.lake, endpoint_url=settings.endpoint_url,
                region_name=settings.region)
    if lake.storage.missing_bucket():
        where = f" at {settings.endpoint_url}" if settings.endpoint_url else ""
        msg = f"CRYPTODUDEZ_LAKE={settings.lake}: no bucket {lake.storage.bucket!r}{where}"
        raise CliError(msg)
    return lake


def _existing_lake(settings: Settings) -> Lake:
    """The lake of ``settings`` for a command that only reads it.

    A local lake that does not exist is refused: read as empty, a typo in
    ``CRYPTODUDEZ_LAKE`` would pass for a lake without data (and ``kpi --out`` would write
    an empty part that merges as valid).
    """
    lake = _lake(settings)
    if not lake.is_s3 and not Path(settings.lake).is_dir():
        msg = f"CRYPTODUDEZ_LAKE={settings.lake}: no such folder"
        raise CliError(msg)
    # On S3 a prefix with nothing under it is the missing folder; a folder that holds things
    # but nothing a lake holds is no lake (``s3://bucket/lake/raw``: backfill-events wrote
    # its KPIs into raw/, where the next ingest took them for a delivery).
    held = {posixpath.basename(p.rstrip("/")) for p in lake.storage.ls(lake.storage.root)}
    if (lake.is_s3 and not held) or (held and not held & _LAKE_ENTRIES):
        msg = (f"CRYPTODUDEZ_LAKE={settings.lake}: no lake there (nothing under it)" if not held
               else f"CRYPTODUDEZ_LAKE={settings.lake}: no lake there (none of its entries "
                    f"is a lake's: {RAW}/, {VALIDATED}/, catalog.duckdb, ...)")
        raise CliError(msg)
    return lake


# What a lake's root may hold, whichever command made it (ingest leaves catalog.duckdb
# alone on a lake of unreadable files, coingecko warehouse.duckdb, a run quarantine/ only).
_LAKE_ENTRIES = {RAW, VALIDATED, QUARANTINE, FEATURES, MODELS, ROLLUPS, STAGING, INDEXES, KPIS,
                 CHART_FOLDER, "catalog", CATALOG_FILE, WAREHOUSE_FILE}


def land(paths: Sequence[Path], *, settings: Settings, prefix: str = "",
         progress: bool = False) -> list[str]:
    """Copy local files (or every file in local folders) into the lake's ``raw/``.

    Every source and every resulting key is checked before anything is copied, so a bad
    argument lands nothing: ``prefix`` must name a folder under ``raw/``
    (:func:`cryptodudez.cli.prefix_problem`), a source must be a regular file or a folder
    holding some, and the keys must fit together and in the lake
    (:meth:`Lake.check_land_keys`). Hidden files and folders inside a folder (``.DS_Store``,
    ``.git/``) are skipped: the lake never lists hidden names, so they would never be
    ingested. With ``progress``, each file is said as it lands (``landed URI``), then the
    skipped ones (``skipped 2 hidden files: ...``).
    """
    if (problem := prefix_problem(prefix)) is not None:
        msg = f"--prefix {prefix!r}: {problem}"
        raise CliError(msg)
    prefix = prefix.rstrip("/")
    lake = _lake(settings)
    if not lake.is_s3:
        _refuse_the_lake_itself(paths, Path(lake.root))
    sources = [_land_sources(path) for path in paths]
    # The same file named twice lands once; two different files at one key are refused.
    plan = list(dict.fromkeys((file, f"{prefix}/{rel}" if prefix else rel)
                              for found, _ in sources for file, rel in found))
    try:
        lake.check_land_keys([key for _, key in plan])
    except ValueError as exc:
        raise CliError(str(exc)) from None
    landed = []
    for file, key in plan:
        try:
            landed.append(lake.land(file, key))
        except OSError as exc:  # reading it (a device, a lost disk) or writing the lake
            done = f"; {len(landed)} landed before it" if landed else ""
            msg = f"{file}: could not be landed ({exc.strerror or exc}){done}"
            raise CliError(msg) from None
        if progress:
            echo(f"landed {landed[-1]}")
    hidden = list(dict.fromkeys(name for _, skipped in sources for name in skipped))
    if progress and hidden:
        echo(skipped_hidden(hidden))
    return landed


def skipped_hidden(hidden: Sequence[str], *, shown: int = 5) -> str:
    """``skipped 2 hidden files: a/.DS_Store, a/.git/ (...)``: what ``land`` left out.

    A hidden folder is named once, with a trailing ``/``, and not looked into.
    """
    folders = sum(name.endswith("/") for name in hidden)
    files = len(hidden) - folders
    counted = " and ".join(f"{n} hidden {what}{'' if n == 1 else 's'}"
                           for n, what in ((files, "file"), (folders, "folder")) if n)
    names = ", ".join(hidden[:shown])
    more = f" and {len(hidden) - shown} more" if len(hidden) > shown else ""
    return (f"skipped {counted}: {names}{more} (the lake never lists hidden names, so they "
            "would never be ingested)")


def _refuse_the_lake_itself(paths: Sequence[Path], lake: Path) -> None:
    """A source that is, holds or lies inside a local lake is refused.

    ``land .`` in the lake's parent copied the lake into its own ``raw/``, one level deeper
    at every run (a reviewer), and a file already under the lake is landed, not landed again.
    """
    root = lake.resolve()
    for path in paths:
        try:
            source = path.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
            msg = f"{path}: cannot follow this path ({exc})"
            raise CliError(msg) from None
        if source == root or source in root.parents or root in source.parents:
            where = ("is" if source == root else "holds" if source in root.parents
                     else "is in")
            msg = f"{path}: {where} the lake ({lake}); land files from outside it"
            raise CliError(msg)


def _land_sources(path: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """The files ``path`` lands, each with its key below the prefix, and what it skips.

    Only regular files: reading a pipe would block and a device is no delivery. What is
    skipped are the hidden files and folders inside a folder (a folder with ``/``), each
    as ``path`` joined with its name.
    """
    hidden: list[str] = []
    if path.is_dir():
        # os.walk reports a folder it cannot list (rglob skipped it: its files were lost)
        unlisted: list[OSError] = []
        found = []
        for root, dirs, files in os.walk(path, onerror=unlisted.append):
            hidden += [f"{Path(root) / d}/" for d in dirs if d.startswith(".")]
            hidden += [str(Path(root) / f) for f in files if f.startswith(".")]
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(root) / f for f in files if not f.startswith(".")]
        if unlisted:
            msg = f"{unlisted[0].filename}: cannot be listed ({unlisted[0].strerror})"
            raise CliError(msg)
        found.sort()
        hidden.sort()
        if not found:
            why = skipped_hidden(hidden) if hidden else "it holds none"
            msg = f"{path}: a folder with no files to land ({why})"
            raise CliError(msg)
    elif path.exists():
        found = [path]
    else:
        msg = f"no such file or directory: {path}"
        raise CliError(msg)
    if odd := next((p for p in found if not p.is_file()), None):
        msg = f"{odd}: not a regular file (a pipe, device, socket or broken link)"
        raise CliError(msg)
    for file in found:  # every source readable before any is copied
        try:
            file.open("rb").close()
        except OSError as exc:
            msg = f"{file}: cannot be read ({exc.strerror})"
            raise CliError(msg) from None
    return [(p, p.relative_to(path).as_posix() if p != path else p.name)
            for p in found], hidden


def ingest(*, settings: Settings, progress: bool = True) -> dict[str, int]:
    """Bring everything downstream of the landed files up to date, synchronously.

    Registers whatever has landed and materialises each new or changed file (one recorded run
    per file version), then, if stock prices changed or no model exists yet, recomputes the
    affected feature years and retrains the volume model: what the sensors and the daemon do.
    Returns counts of files ingested, already up to date and failed, and pipeline runs.
    """
    instance = _instance(settings)
    defs = build_definitions(settings)
    lake = _lake(settings)
    objects = lake.list_raw()
    for name in ("landed_files", "event_files"):
        instance.add_dynamic_partitions(name, [partition_key_for(o.key) for o in objects
                                               if route(o)[1].name == name])
    # The metastore's record of what was ingested is the one the landing sensor reads too.
    metastore = build_resources(settings)["metastore"]
    pending = not_ingested(objects, metastore.ingested_versions())
    todo = [(o, partition_key_for(o.key)) for o in pending]
    counts = {"landed": len(objects), "ingested": 0, "up_to_date": len(objects) - len(todo),
              "failed": 0, "stock_pipeline_runs": 0, "feature_store_runs": 0, "mood_runs": 0}
    earliest: str | None = None
    mood_changed = False
    touched: tuple[date, date] | None = None
    for i, (obj, key) in enumerate(todo, start=1):
        started = time.perf_counter()
        if progress:
            echo(f"[{i}/{len(todo)}] ingesting raw/{obj.key} ({obj.size / 1e6:.1f} MB) ...")
        result = defs.resolve_job_def(route(obj)[0]).execute_in_process(
            partition_key=key, instance=instance, raise_on_error=False,
            tags={**run_tags(obj), "cryptodudez/trigger": "cli"},
            run_config=QUIET if progress else None,
        )
        ok = result.success
        counts["ingested" if ok else "failed"] += 1
        changed = changed_stock_dates(instance, result.run_id)
        if changed is not None:
            earliest = changed if earliest is None else min(earliest, changed)
        mood_changed = mood_changed or bool(
            changes_of(instance, result.run_id, {TRADES, SENTIMENTS}))
        days = touched_days(instance, result.run_id)
        if days is not None:
            touched = days if touched is None else (min(touched[0], days[0]),
                                                     max(touched[1], days[1]))
        if progress:
            echo(f"      {outcome(result, started)}")
    ran, ok = _stock_pipeline(defs, instance, lake, earliest, progress)
    counts["stock_pipeline_runs"] += ran
    counts["failed"] += 0 if ok else 1
    touched = _feature_days(lake, touched, progress)
    if touched is not None:
        counts["feature_store_runs"] = 1
        counts["failed"] += 0 if _run_feature_store(defs, instance, lake, touched,
                                                     progress) else 1
    if mood_changed or (lake.fragments(VALIDATED, TRADES) and not _mood_results(settings)):
        counts["mood_runs"] = 1
        counts["failed"] += 0 if _run_job(defs, instance, MOOD_JOB, "price / sentiment "
                                          "correlation", progress) else 1
    return counts


def _feature_days(lake: Lake, touched: tuple[date, date] | None,
                  progress: bool) -> tuple[date, date] | None:
    """The days the feature store must recompute after the ingest runs, or None."""
    if touched is None and lake.fragments(VALIDATED, "crypto_prices") and not lake.exists(
            lake.path(MODELS, ETH_SIGNAL, "LATEST")):
        touched = (date.fromisoformat(FIRST_DAY), date.max)
    if touched is None:
        return None
    if missing := missing_inputs(lake):
        if progress:
            echo(f"feature store: skipped, the lake holds no {' and no '.join(missing)} yet")
        return None
    end = data_end(lake)  # never beyond the data: months after it would stay empty
    return (touched[0], min(touched[1], end)) if end else touched


def _mood_results(settings: Settings) -> int:
    """How many correlation results the warehouse holds (0 before the first)."""
    warehouse = build_resources(settings)["warehouse"]
    return int(warehouse.query("SELECT count(*) AS n FROM mood_results",
                               ddl=mood_results.TABLES_DDL)["n"][0])


def _run_job(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, what: str,
             progress: bool) -> bool:
    """Run one unpartitioned job in this process as a recorded run; True on success."""
    started = time.perf_counter()
    if progress:
        echo(f"{what} ...")
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, tags={"cryptodudez/trigger": "cli"},
        run_config=QUIET if progress else None)
    if progress:
        echo(f"      {outcome(result, started)}")
    return result.success


def _run_feature_store(defs: dg.Definitions, instance: dg.DagsterInstance, lake: Lake,
                       days: tuple[date, date], progress: bool) -> bool:
    """What the feature-store and ETH-model sensors request, in this process.

    A training set too short to evaluate is not a failure: the features and the training
    set are built, the signal waits for more days (as the volume model waits).
    """
    tags = range_tags(days)
    span = (f"{tags['dagster/asset_partition_range_start']}..."
            f"{tags['dagster/asset_partition_range_end']}")
    ok = True
    for job, what in ((FEATURE_STORE_JOB, f"feature store: days {span}"),
                      (ETH_MODEL_JOB, "ETH model: training set, online row, evaluation, signal")):
        started = time.perf_counter()
        if progress:
            echo(f"{what} ...")
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, raise_on_error=False,
            tags={**(tags if job == FEATURE_STORE_JOB else {}), "cryptodudez/trigger": "cli"},
            run_config=QUIET if progress else None)
        if progress:
            echo(f"      {outcome(result, started)}")
        if not result.success and job == ETH_MODEL_JOB and {
                e.step_key for e in result.get_step_failure_events()} == {ETH_SIGNAL} and (
                    why := _eth_too_short(lake)):
            if progress:
                echo(f"      no ETH signal yet: {why}")
            continue
        ok = ok and result.success
        if not ok:
            break
    return ok


def _eth_too_short(lake: Lake) -> str | None:
    """Why the ETH training set eth_signal evaluates is too short, or None."""
    try:
        _, frame, _ = servable_training_set(lake)
    except dg.Failure:
        return None
    need = ev.min_rows()
    if frame.height >= need:
        return None
    days = f"{frame.height} day{'' if frame.height == 1 else 's'}"
    return (f"the training set holds {days} of ETH; the walk-forward "
            f"evaluation needs at least {need} (a year that only trains, the folds, and a "
            f"hold-out year); the signal waits for more data")


NOT_TRAINABLE = ("the model trains on rows with both 30-day features and a volume (a symbol "
                 "needs 30 trading days) of at least two symbols; the features are built, "
                 "the model waits for more data")


def _trainable(lake: Lake) -> bool:
    """Whether the stock features hold a row the volume model can train on."""
    return vm.has_training_rows(
        lake.scan_table(FEATURES, STOCK_FEATURES, list(vm.TRAINING_COLUMNS)))


def _stock_pipeline(defs: dg.Definitions, instance: dg.DagsterInstance, lake: Lake,
                    earliest: str | None, progress: bool) -> tuple[int, bool]:
    """Run the stock pipeline from ``earliest`` (or, with no model yet, from the start).

    Returns the runs launched (0 or 1) and whether the step succeeded. Too few feature rows
    for a first model is not a failure: the features are built and the model waits.
    """
    # Any validated bar (footers, stopping at the first file with rows): a file whose every
    # row was quarantined leaves an empty fragment, and features of no rows fail their
    # checks by design (nothing checked is never a pass).
    has_stocks = any(lake.count_rows([path]) for path in lake.fragments(VALIDATED,
                                                                         "stock_prices"))
    no_model = not lake.exists(lake.path(MODELS, VOLUME_MODEL, "LATEST"))
    if earliest is None and has_stocks and no_model:
        # Run again whenever there is no model: the features may be older than the prices
        # (an interrupted or failed earlier run), and on data too short for a model the run
        # is cheap.
        earliest = f"{FIRST_YEAR}-01-01"
    if earliest is None:
        return 0, True
    result = _run_stock_pipeline(defs, instance, earliest, progress)
    if not result.success and no_model and _only_the_model_failed(result) \
            and not _trainable(lake):
        if progress:
            echo(f"      no volume model yet: {NOT_TRAINABLE}")
        return 1, True
    return 1, result.success


def _only_the_model_failed(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a stock pipeline run failed in the volume model's step alone."""
    return {e.step_key for e in result.get_step_failure_events()} == {VOLUME_MODEL}


def _run_stock_pipeline(defs: dg.Definitions, instance: dg.DagsterInstance, earliest: str,
                        progress: bool) -> dg.ExecuteInProcessResult:
    tags = pipeline_tags(earliest)
    years = f"{tags['dagster/asset_partition_range_start']}..." \
            f"{tags['dagster/asset_partition_range_end']}"
    started = time.perf_counter()
    if progress:
        echo(f"stock pipeline: features for {years}, then the volume model ...")
    result = defs.resolve_job_def(STOCK_PIPELINE_JOB).execute_in_process(
        instance=instance, raise_on_error=False, tags={**tags, "cryptodudez/trigger": "cli"},
        run_config=QUIET if progress else None,
    )
    if progress:
        echo(f"      {outcome(result, started)}")
    return result


def sample_prediction(settings: Settings) -> str:
    """Call ``GET /predict`` on the API in-process with a real feature row of the lake."""
    from litestar.testing import TestClient  # noqa: PLC0415 - demo only

    from serving.app import ServingSettings, create_app  # noqa: PLC0415

    lake = _lake(settings)
    rows = lake.scan_table(FEATURES, STOCK_FEATURES).drop_nulls(
        ["vol_moving_avg", "adj_close_rolling_med"]).sort("Date").tail(1).collect()
    if rows.height == 0:
        return "no feature rows yet: no prediction"
    row = rows.row(0, named=True)
    query = (f"vol_moving_avg={row['vol_moving_avg']:.2f}"
             f"&adj_close_rolling_med={row['adj_close_rolling_med']:.4f}")
    app = create_app(ServingSettings(lake=settings.lake, endpoint_url=settings.endpoint_url,
                                     region=settings.region, poll_seconds=3600))
    with TestClient(app=app) as client:
        answer = client.get(f"/predict?{query}")
        version = client.get("/health").json()["version"]
    return (f"GET /predict?{query}\n  -> {answer.status_code} {answer.text}  "
            f"(model {version}; {row['Symbol']} on {row['Date']} actually traded "
            f"{row['Volume']:,})")


def sample_signal(settings: Settings) -> str:
    """Call ``GET /signal/eth`` in-process, with the evaluation's verdict beside it."""
    from litestar.testing import TestClient  # noqa: PLC0415 - demo only

    from serving.app import ServingSettings, create_app  # noqa: PLC0415

    lake = _lake(settings)
    pointer = lake.path(MODELS, ETH_SIGNAL, "LATEST")
    if not lake.exists(pointer):
        return "no ETH signal yet"
    version = lake.read_bytes(pointer).decode().strip()
    report = json.loads(lake.read_bytes(lake.path(MODELS, ETH_SIGNAL, version, "report.json")))
    app = create_app(ServingSettings(lake=settings.lake, endpoint_url=settings.endpoint_url,
                                     region=settings.region, poll_seconds=3600))
    with TestClient(app=app) as client:
        answer = client.get("/signal/eth")
    return (f"ETH model: {report['verdict']['summary']}\n"
            f"GET /signal/eth\n  -> {answer.status_code} {answer.text}\n"
            f"  (report and charts: {lake.url(MODELS, ETH_SIGNAL, version)}/)")


def sample_correlation(settings: Settings) -> str:
    """Call ``GET /correlation`` in-process: each coin's lag-0 line at the default grid."""
    from litestar.testing import TestClient  # noqa: PLC0415 - demo only

    from serving.app import ServingSettings, create_app  # noqa: PLC0415

    if not _lake(settings).fragments(VALIDATED, TRADES):
        return "no coin trades yet: no correlation"
    app = create_app(ServingSettings(lake=settings.lake, endpoint_url=settings.endpoint_url,
                                     region=settings.region, poll_seconds=3600,
                                     warehouse=settings.warehouse_path))
    path = "/correlation?bucket=PT10S,PT1M&max_lag=2"  # the mood asset's default grid
    with TestClient(app=app) as client:
        answer = client.get(path)
    if answer.status_code != 200:
        return f"GET {path}\n  -> {answer.status_code} {answer.text}"
    body = answer.json()
    lines = [f"GET {path}\n  -> 200 ({body['source']}; data {body['data_version']}), lag 0:"]
    for row in body["results"]:
        if row["lag"] == 0:
            r = "null" if row["pearson_r"] is None else f"{row['pearson_r']:+.3f}"
            q = "" if row["q_value"] is None else f" q={row['q_value']:.3f}"
            boot = ("" if row["bootstrap_lo"] is None else
                    f" bootstrap [{row['bootstrap_lo']:+.2f}, {row['bootstrap_hi']:+.2f}]")
            lines.append(f"     {row['coin']} {row['bucket']} n={row['n']} r={r}{boot}{q}"
                         + (f" ({row['null_reason']})" if row["null_reason"] else ""))
    significant = [r for r in body["results"] if r["q_value"] is not None and r["q_value"] < 0.05]
    lines.append(f"  {len(significant)} of {len(body['results'])} coin x lag rows have "
                 "q < 0.05 (Benjamini-Hochberg across all of them)")
    return "\n".join(lines)


def sample_stream() -> str:
    """Replay the sample through a private NATS JetStream broker; compare with the batch."""
    from cryptodudez.stream.demo import run_stream_demo  # noqa: PLC0415 - demo only

    started = time.perf_counter()
    result = run_stream_demo(SAMPLES_DIR / "cryptomood_sample.zip", timeout=120.0)
    ingested = ingest_members(unpack("file:///sample.zip",
                                     (SAMPLES_DIR / "cryptomood_sample.zip").read_bytes()),
                              DATASETS)
    trades = mood_results.trades_frame(ingested.tables[TRADES])
    moods = mood_results.sentiments_frame(ingested.tables[SENTIMENTS])
    batch = mood_results.correlation(trades, moods, mood_results.MoodParams(
        coins=tuple(sorted(trades["coin"].unique().to_list())), buckets=("PT10S", "PT1M"),
        max_lag=2))
    same = result.correlation.select("coin", "bucket", "lag", "n", "pearson_r").equals(
        batch.select("coin", "bucket", "lag", "n", "pearson_r"))
    return (f"stream: {result.published.lines} lines as {result.published.messages} messages "
            "(a tweet once per coin it names) through NATS JetStream "
            f"(127.0.0.1, private server), {result.consumed.applied} applied, "
            f"{result.consumed.quarantined} quarantined{_not_published(result.published)}, in "
            f"{time.perf_counter() - started:.1f} s; the streamed correlation "
            f"{'equals' if same else 'DIFFERS FROM'} the batch one ({batch.height} rows)")


def _not_published(report: Any) -> str:
    """``, N lines not published (first: origin: reason)`` when a replay skipped any."""
    if not report.skipped:
        return ""
    origin, reason = report.skipped[0]
    return f", {len(report.skipped)} lines not published (first: {origin}: {reason})"


def summary(settings: Settings) -> str:
    """What the lake holds: rows validated and quarantined per table, and where.

    Where: the tables' folders, the metastore (``catalog.duckdb`` in a local lake, once an
    ingest made it; the Glue database of an S3 lake) and the warehouse of result tables
    (``CRYPTODUDEZ_WAREHOUSE``, else ``warehouse.duckdb`` in the lake), each said to be
    missing when it is. A file that cannot be read is named (:class:`DataError`).
    """
    lake = _lake(settings)
    lines = [f"lake: {lake.url()}", "",
             f"{'table':<15}{'validated rows':>16}{'quarantined':>13}  reasons"]
    tables = sorted({p.rsplit("/", 2)[-2] for layer in (VALIDATED, QUARANTINE)
                     for p in lake.fs.glob(lake.path(layer, "*", "*.parquet"))})
    for table in tables:
        if table == "events":
            continue  # the event lake's Delta table: its own line below
        # Row counts from the Parquet footers; of the quarantine only the reasons are read,
        # so the summary of a 25 M-row lake stays small.
        valid = count_rows(lake, lake.fragments(VALIDATED, table),
                            shown(lake, lake.table_dir(VALIDATED, table)))
        quarantine = lake.fragments(QUARANTINE, table)
        bad = pl.DataFrame(schema={"reason": pl.String})
        if quarantine:
            with reading(shown(lake, lake.table_dir(QUARANTINE, table)),
                          partial(unreadable_parquet, lake, quarantine, ["reason"])):
                bad = lake.read_parquet(quarantine, ["reason"])
        reasons = ""
        if bad.height:
            top = bad.select(
                pl.col("reason").str.extract(r"^([^:;]*)")
                .str.replace(r"^null in required field .*$", "null in required field")
                .str.replace(r", first at line \d+$", "")
            ).to_series()
            reasons = ", ".join(f"{r} x{n}" for r, n in top.value_counts(sort=True).rows()[:3])
        lines.append(f"{table:<15}{valid:>16,}{bad.height:>13,}  {reasons}")
    lines += _events_summary(lake)
    lines += ["", f"validated Parquet:  {lake.url(VALIDATED)}/<table>/",
              f"quarantine Parquet: {lake.url(QUARANTINE)}/<table>/ (source, line, raw, reason)",
              f"metastore:          {_metastore_place(settings, lake)}",
              f"warehouse:          {_warehouse_place(settings)}"]
    return "\n".join(lines)


def _metastore_place(settings: Settings, lake: Lake) -> str:
    """Where the metastore is (:func:`cryptodudez.resources.build_resources`), or will be."""
    if lake.is_s3:
        return f"AWS Glue database {settings.glue_database} (tables files, columns)"
    path = lake.path(CATALOG_FILE)
    if not lake.exists(path):  # a lake that only ever held the warehouse, or just landed files
        return f"none yet ({path} is created by the first ingest)"
    return f"{path} (tables files, columns)"


def _warehouse_place(settings: Settings) -> str:
    """Where the warehouse of result tables is, or will be."""
    path = settings.warehouse_path
    if not Path(path).is_file():
        return (f"none yet ({path} is created by the coingecko command or the correlation "
                "job)")
    return f"{path} (CoinGecko prices and their moving average, correlation results)"


def _events_summary(lake: Lake) -> list[str]:
    """The event lake's line of the summary, or none when it holds nothing at all.

    Quarantined lines are shown even before any event is valid (no Delta table yet): a
    first delivery that is all rejects must not look like no delivery.
    """
    events = EventTable(lake.storage)
    quarantined = count_rows(lake, lake.fs.glob(lake.path(QUARANTINE, "events", "*.parquet")),
                              shown(lake, lake.table_dir(QUARANTINE, "events")))
    log = shown(lake, posixpath.join(events.root, "_delta_log"))
    with reading(log, partial(unreadable_log, lake)):
        if events.exists():
            files = events.files()
            return [f"{'events':<15}{int(files['rows'].sum()):>16,}{quarantined:>13,}  "
                    f"Delta v{events.version()}, {files.height:,} files, "
                    f"{files['event_type'].n_unique()} types"]
    if not quarantined:
        return []
    return [f"{'events':<15}{0:>16,}{quarantined:>13,}  no valid event yet"]


def event_days(settings: Settings, first: date, last: date, *,
               progress: bool = True) -> dict[str, int]:
    """Compact each UTC day from ``first`` to ``last`` and compute its KPIs.

    A backfill run in this process: one recorded run per day, no daemon needed. The lake
    must exist (:func:`_existing_lake`): these runs only process what was ingested.
    """
    if last < first:
        msg = f"--to {last} is before --from {first}"
        raise CliError(msg)
    if (last - first).days >= MAX_BACKFILL_DAYS:
        msg = f"--from {first} --to {last}: at most {MAX_BACKFILL_DAYS} days at a time"
        raise CliError(msg)
    _check_event_days(first, last)
    _existing_lake(settings)  # a missing local lake has no events: refused, not created
    return _run_event_days(settings, [first + timedelta(days=n)
                                      for n in range((last - first).days + 1)],
                           progress=progress)


def _run_event_days(settings: Settings, days: Sequence[date], *,
                    progress: bool = True) -> dict[str, int]:
    """Run the daily event job on each of ``days`` (daily partitions, checked by the caller)."""
    instance = _instance(settings)
    job = build_definitions(settings).resolve_job_def(EVENT_DAILY_JOB)
    counts = {"days": 0, "failed": 0}
    for day in days:
        started = time.perf_counter()
        result = job.execute_in_process(
            partition_key=day.isoformat(), instance=instance, raise_on_error=False,
            tags={"cryptodudez/trigger": "cli"}, run_config=QUIET if progress else None)
        counts["days"] += 1
        counts["failed"] += 0 if result.success else 1
        if progress:
            echo(f"events {day}: compaction + KPIs {outcome(result, started)}")
    return counts


def _event_partition_bounds() -> tuple[date, date]:
    """The first and the last daily event partition (the last is today, UTC)."""
    partitions = event_assets.event_days
    start, end = partitions.get_first_partition_key(), partitions.get_last_partition_key()
    if start is None or end is None:
        msg = "the daily event partitions are empty"
        raise CliError(msg)
    return date.fromisoformat(start), date.fromisoformat(end)


def _check_event_days(first: date, last: date) -> None:
    """Refuse a range outside the daily event partitions before any run starts.

    Dagster would fail only at the first day it does not know: a range ending after today
    would run some days and then abort.
    """
    start, end = _event_partition_bounds()
    if first < start:
        msg = f"--from {first}: the daily event partitions start on {start}"
        raise CliError(msg)
    if last > end:
        msg = f"--to {last}: the last daily event partition is today (UTC), {end}"
        raise CliError(msg)


def _days_shown(days: Sequence[date]) -> str:
    """``days`` (sorted) for one line: the day, or the first and the last and how many."""
    return str(days[0]) if len(days) == 1 else f"{days[0]}...{days[-1]} ({len(days)} days)"


def partitioned_event_days(days: Sequence[date], *, start: date,
                           end: date) -> tuple[list[date], str | None]:
    """The days of ``days`` that are daily event partitions, and a line on those that are not.

    The demo compacts the days that hold events (never the empty days between them), and of
    those only the ones from ``start`` to ``end`` (today, UTC: a later day is not a
    partition yet); events may be dated up to 2099. Returns the days to run, sorted and
    without repeats, and the line that says which were skipped and why (None when none).
    """
    wanted = sorted(set(days))
    chosen = [day for day in wanted if start <= day <= end]
    skipped = []
    if before := [day for day in wanted if day < start]:
        skipped.append(f"{_days_shown(before)} before the first daily partition, {start}")
    if after := [day for day in wanted if day > end]:
        skipped.append(f"{_days_shown(after)} after today (UTC), {end}, the last daily "
                       "partition")
    if not skipped:
        return chosen, None
    return chosen, (f"not compacting {len(wanted) - len(chosen)} of {len(wanted)} days with "
                    f"events: {'; '.join(skipped)} (their KPIs are still computed by "
                    "`kpi --date`)")


def demo_event_days(settings: Settings, days: Sequence[date]) -> int:
    """The demo's event step: compact the days of ``days`` that can be; the runs failed.

    Each day with events that is a daily partition (:func:`partitioned_event_days`) gets its
    recorded run; the others are named in one line, and the demo goes on.
    """
    start, end = _event_partition_bounds()
    chosen, note = partitioned_event_days(days, start=start, end=end)
    if note is not None:
        echo(f"event lake: {note}")
    if not chosen:
        return 0
    echo(f"event lake: compacting the days with events, {_days_shown(chosen)}, and computing "
         "their KPIs ...")
    return _run_event_days(settings, chosen)["failed"]


def kpi_command(settings: Settings, *, day: date | None, shard: str, source: str,
                out: Path | None, merge_parts: Sequence[Path] | None) -> dict[str, Any]:
    """``cryptodudez kpi``: one machine's part of a day's KPIs, or the merge of parts.

    Every argument is checked before the KPIs are computed: ``--out`` must be a file that
    can be written, each part a KPI part (named in the error when it is not).
    """
    if out is not None:
        _check_out(out)
    if merge_parts:
        parts = []
        for path in merge_parts:
            try:
                parts.append(json.loads(path.read_text()))
            except (OSError, ValueError, RecursionError) as exc:
                msg = f"cannot read KPI part {path}: {exc}"
                raise CliError(msg) from None
        result = kpi.merge(parts, names=[str(path) for path in merge_parts])
    else:
        assert day is not None
        parsed = kpi.Shard.parse(shard)  # a bad --shard is reported whatever the lake
        result = compute_kpis(_existing_lake(settings), day, shard=parsed, source=source)
    text = kpi.dumps(result)
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n")
        except OSError as exc:  # a symlink loop, a read-only or special file system
            msg = f"--out {out}: cannot write it ({exc.strerror or exc})"
            raise CliError(msg) from None
    return result


def compute_kpis(lake: Lake, day: date, *, shard: kpi.Shard | None = None,
                 source: str = "rollups") -> dict[str, Any]:
    """:func:`kpi.compute` on ``lake``, its data's trouble a :class:`DataError`.

    A file it cannot read is named (a rollup or event file, or one of the Delta log's), and
    a day whose log and files disagree (:class:`kpi.KpiDataError`) is said as it is:
    neither is a bad argument.
    """
    shard = kpi.Shard() if shard is None else shard
    storage = lake.storage

    def rollups() -> str | None:
        return unreadable_parquet(lake, rollup_files(storage, day, None,
                                                      (shard.index, shard.count)),
                                   kpi.ROLLUP_COLUMNS)

    def events() -> str | None:
        table = EventTable(storage)
        day_files = table.files().filter(pl.col("date") == day)["path"].to_list()
        return unreadable_parquet(lake, [posixpath.join(table.root, p) for p in day_files],
                                   None)

    probes = ((rollups, partial(unreadable_log, lake)) if source == "rollups"
              else (partial(unreadable_log, lake), events))
    folder = shown(lake, day_folder(storage, day) if source == "rollups"
                    else EventTable(storage).root)
    try:
        with reading(folder, *probes):
            return kpi.compute(storage, day, shard=shard, source=source)
    except kpi.KpiDataError as exc:
        raise DataError(one_line(exc)) from exc


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a folder or lies below a file (one line, exit 2)."""
    if out.is_dir():
        msg = f"--out {out}: is a folder"
        raise CliError(msg)
    if blocker := not_a_folder(out.parent):
        msg = f"--out {out}: {blocker} is not a folder"
        raise CliError(msg)


def demo(*, settings: Settings) -> int:
    """Land the bundled samples, ingest them, and print what happened."""
    samples = sorted([*SAMPLES_DIR.glob("*.zip"), *SAMPLES_DIR.glob("*.jsonl.gz")])
    echo(f"landing {len(samples)} sample files into {settings.lake}/raw/samples/")
    land(samples, settings=settings, prefix="samples")
    counts = ingest(settings=settings)
    table = EventTable(_lake(settings).storage)
    days = sorted(table.files()["date"].unique().to_list()) if table.exists() else []
    if days:
        counts["failed"] += demo_event_days(settings, days)
    echo("")
    echo(summary(settings))
    echo("")
    if days:
        busiest = max(days, key=lambda d: int(
            table.files().filter(pl.col("date") == d)["rows"].sum()))
        result = compute_kpis(_lake(settings), busiest)
        top = sorted(result["types"].items(), key=lambda kv: -kv[1]["events"])[:3]
        echo(f"KPIs {busiest}: {result['totals']['events']:,} events of "
             f"{result['totals']['event_types']} types, about "
             f"{result['totals']['distinct_users']:,} users; top: "
             + ", ".join(f"{t} {v['events']:,}" for t, v in top))
        echo(f"  (any machine: {this_command()} kpi --date {busiest} "
             "[--shard 0/2] [--out part.json], then kpi --merge part0.json part1.json)")
        echo("")
    echo(sample_prediction(settings))
    echo("")
    echo(sample_signal(settings))
    echo("")
    echo(sample_correlation(settings))
    echo(sample_stream())
    echo("")
    counts["failed"] += run_coingecko_cli(settings, "bitcoin", "2022-01-01", "2022-03-31")
    echo("")
    echo(f"files: {counts}")
    echo(f"serve the model: {this_command()} serve --port 8000, then "
         "GET http://127.0.0.1:8000/predict?vol_moving_avg=12345&adj_close_rolling_med=25")
    return 0 if counts["failed"] == 0 else 1


def _cmd_land(settings: Settings, args: argparse.Namespace) -> int:
    land(args.paths, settings=settings, prefix=args.prefix, progress=True)
    return 0


def _cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    counts = ingest(settings=settings)
    echo(summary(settings))
    echo(f"files: {counts}")
    return 0 if counts["failed"] == 0 else 1


def _cmd_kpi(settings: Settings, args: argparse.Namespace) -> int:
    if args.merge and (given := [f"--{name}" for name in ("shard", "source")
                                 if getattr(args, name) is not None]):
        msg = (f"kpi --merge: {' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} "
               "to --date only (a merge takes the shards and the source from its parts)")
        raise CliError(msg)
    result = kpi_command(settings, day=args.date, shard=args.shard or "0/1",
                         source=args.source or "rollups", out=args.out,
                         merge_parts=args.merge)
    if args.out is None:
        echo(kpi.dumps(result))
    else:
        totals = result["totals"]
        echo(f"{args.out}: {result['date']} shards {result['shards']} of "
             f"{result['shard_count']}: {totals['events']:,} events, "
             f"{totals['event_types']} types")
    for note in kpi_notes(result, merged=bool(args.merge)):
        sys.stderr.write(f"cryptodudez kpi: note: {note}\n")
    return 0


def kpi_notes(result: dict[str, Any], *, merged: bool) -> list[str]:
    """What a reader of a KPI result could miss in its JSON: no events, shards left out."""
    notes = []
    if not result["types"]:
        where = ("these parts" if merged else "the lake" if result["shard_count"] == 1
                 else f"shard {result['shards'][0]}/{result['shard_count']}")
        notes.append(f"no events of {result['date']} in {where} (a mistyped --date, or a "
                     "day not ingested yet?)")
    if merged and not result["complete"]:
        missing = sorted(set(range(result["shard_count"])) - set(result["shards"]))
        notes.append(f"shards {missing} of {result['shard_count']} are missing: the totals "
                     "cover only the parts given")
    return notes


def _cmd_backfill_events(settings: Settings, args: argparse.Namespace) -> int:
    counts = event_days(settings, args.first, args.last)
    echo(f"days: {counts}")
    return 0 if counts["failed"] == 0 else 1


def _cmd_summary(settings: Settings, args: argparse.Namespace) -> int:
    _existing_lake(settings)
    echo(summary(settings))
    return 0


def _cmd_coingecko(settings: Settings, args: argparse.Namespace) -> int:
    _lake(settings)  # a lake that cannot be a folder is one line, before any run starts
    return run_coingecko_cli(settings, args.coin, args.first, args.last)


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "land": _cmd_land, "ingest": _cmd_ingest, "kpi": _cmd_kpi,
    "backfill-events": _cmd_backfill_events, "summary": _cmd_summary,
    "demo": lambda settings, args: demo(settings=settings),
    "coingecko": _cmd_coingecko,
}
