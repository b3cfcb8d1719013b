"""Which ``eth_model`` runs move the served pointers, on the repository's sample archives.

A run with the production label definition is served once it passes its checks; a run with
another definition is an experiment (written, checked and reported, never served) unless its
config says ``serve: true``; a config the evaluation cannot use fails before anything is
written; a training set that fails a blocking check never becomes ``LATEST``.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import polars as pl
import pytest
from litestar.testing import TestClient

from cryptodudez.assets import eth
from cryptodudez.checks import features as fchecks
from cryptodudez.definitions import build_definitions
from cryptodudez.resources.lake import MODELS, Lake
from cryptodudez.sensors.stock_pipeline import RANGE_END, RANGE_START
from cryptodudez.settings import Settings
from serving.app import ServingSettings, create_app
from serving.signal_store import latest_signal_version, read_signals
from tests.conftest import SAMPLES
from tests.helpers import QUIET, land_and_ingest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("eth_label_runs")]

NEXT_DAY = {"method": "horizon", "horizon": 1, "band": 0.01, "band_kind": "fixed"}
WEEKLY = {"method": "horizon", "horizon": 7, "band": 0.03, "band_kind": "fixed"}


@dataclass
class Served:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    lake: Lake


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The sample coins and tweets, the feature store, and one production ``eth_model`` run."""
    root = tmp_path_factory.mktemp("eth_labels")
    defs = build_definitions(Settings(lake=str(root / "lake"), dagster_home=str(root / "dh")))
    with dg.instance_for_test() as instance:
        ingests = land_and_ingest(defs, instance, {
            "samples/cryptocurrency_sample.zip": SAMPLES / "cryptocurrency_sample.zip",
            "samples/elon_musk_tweets_sample.zip": SAMPLES / "elon_musk_tweets_sample.zip",
        })
        assert all(r.success for r in ingests.values())
        store = defs.resolve_job_def("feature_store").execute_in_process(
            instance=instance, run_config=QUIET, raise_on_error=False,
            tags={RANGE_START: eth.FIRST_YEAR, RANGE_END: "2023"})
        assert store.success
        production = _model_run(defs, instance)
        assert production.success
        yield Served(defs, instance, defs.resources["lake"])


def _model_run(defs: dg.Definitions, instance: dg.DagsterInstance,
               labels: dict[str, Any] | None = None,
               selection: list[str] | None = None) -> dg.ExecuteInProcessResult:
    config: dict[str, Any] = {**QUIET}
    if labels is not None:
        config["ops"] = {eth.ETH_TRAINING_SET: {"config": labels}}
    return defs.resolve_job_def("eth_model").execute_in_process(
        instance=instance, run_config=config, raise_on_error=False,
        asset_selection=None if selection is None else [dg.AssetKey(s) for s in selection])


def _pointers(lake: Lake) -> tuple[str | None, str | None]:
    """(training-set LATEST, signal LATEST)."""
    pointer = eth.snapshot_folder(lake, "LATEST")
    training = lake.read_bytes(pointer).decode() if lake.exists(pointer) else None
    return training, latest_signal_version(lake.storage)


def _metadata(run: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    [event] = [e for e in run.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _snapshots(lake: Lake) -> set[str]:
    folder = Path(eth.snapshot_folder(lake))
    return {p.name for p in folder.iterdir() if p.is_dir()}


def test_the_production_run_serves_its_label_definition(served: Served) -> None:
    training, version = _pointers(served.lake)
    assert training is not None and version is not None
    signals = read_signals(served.lake.storage, version)
    assert signals.label_definition == NEXT_DAY
    manifest = json.loads(served.lake.read_bytes(eth.snapshot_folder(served.lake, training,
                                                                     "manifest.json")))
    assert manifest["labels"] == NEXT_DAY


def test_another_label_definition_is_an_experiment_that_leaves_the_served_signal(
        served: Served) -> None:
    """The README's "a training set of its own" run: written and evaluated, never served."""
    before = _pointers(served.lake)
    try:
        run = _model_run(served.defs, served.instance, {"horizon": 7, "band": 0.03})
        assert run.success
        assert _pointers(served.lake) == before  # neither pointer moved
    finally:
        _restore(served.lake, before)  # the next tests start from the served pointers
    training = _metadata(run, eth.ETH_TRAINING_SET)
    assert (training["serve"], training["candidate"]) == (False, False)
    signal = _metadata(run, eth.ETH_SIGNAL)
    assert (signal["published"], signal["experiment"]) == (False, True)
    assert signal["training_set"] == training["snapshot"] != before[0]
    # the experiment's version is kept beside the served one, saying what its labels are
    experiment = read_signals(served.lake.storage, signal["version"])
    assert experiment.label_definition == WEEKLY
    report = json.loads(served.lake.read_bytes(served.lake.path(
        MODELS, eth.ETH_SIGNAL, signal["version"], "report.json")))
    assert (report["labels"], report["horizon"], report["serve"]) == (WEEKLY, 7, False)


def test_an_experiment_asked_to_serve_is_served_and_says_what_its_labels_are(
        served: Served) -> None:
    before = _pointers(served.lake)
    try:
        run = _model_run(served.defs, served.instance,
                         {"horizon": 7, "band": 0.03, "serve": True})
        assert run.success
        training, version = _pointers(served.lake)
        assert training == _metadata(run, eth.ETH_TRAINING_SET)["snapshot"] != before[0]
        assert version == _metadata(run, eth.ETH_SIGNAL)["version"] != before[1]
        app = create_app(ServingSettings(lake=served.lake.uri, poll_seconds=3600))
        with TestClient(app=app) as client:
            answer = client.get("/signal/eth").json()
            first = client.get("/signal/eth", params={"date": "2015-08-08"}).json()
        assert answer["model_version"] == version
        assert answer["label_definition"] == WEEKLY
        # the last 7 days have no 7-day label: never fitted on, whatever is served
        assert answer["in_sample"] is False
        assert isinstance(first["in_sample"], bool)
    finally:
        _restore(served.lake, before)


def test_a_horizon_the_evaluation_cannot_use_fails_before_anything_is_written(
        served: Served) -> None:
    before, snapshots = _pointers(served.lake), _snapshots(served.lake)
    run = _model_run(served.defs, served.instance, {"horizon": 365})
    assert not run.success
    [failure] = run.get_step_failure_events()
    assert failure.step_key == eth.ETH_TRAINING_SET
    message = str(failure.event_specific_data.error.message)  # type: ignore[union-attr]
    assert ("eth_training_set config: horizon must be 1..364 days for the walk-forward "
            "evaluation, got 365") in message
    assert _pointers(served.lake) == before
    assert _snapshots(served.lake) == snapshots
    assert [e.asset_key for e in run.get_asset_materialization_events()] == [
        dg.AssetKey(eth.ETH_ONLINE)]  # no training set, no signal
    # the served signal is evaluated again as before: nothing was left on a bad snapshot
    again = _model_run(served.defs, served.instance, selection=[eth.ETH_SIGNAL])
    assert again.success


def test_a_training_set_failing_a_blocking_check_never_becomes_latest(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A label planted wrong by the SQL twin: no pointer names the training set."""
    before = _pointers(served.lake)
    pointer = eth.snapshot_folder(served.lake, "LATEST")
    candidate = eth.snapshot_folder(served.lake, eth.CANDIDATE)

    def one_wrong(frame: pl.DataFrame, *_: Any) -> pl.DataFrame:
        return frame.select("date", "label").head(1).with_columns(sql_label=pl.lit("sell"))
    monkeypatch.setattr(fchecks, "labels_against_sql", one_wrong)
    try:
        served.lake.delete(pointer)  # a store whose first training set fails its check
        served.lake.delete(candidate)
        run = _model_run(served.defs, served.instance, selection=[eth.ETH_TRAINING_SET])
        assert not run.success
        checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
        assert checks["eth_training_set_labels_match_sql"] is False
        assert not served.lake.exists(pointer)
        assert not served.lake.exists(candidate)
        assert _metadata(run, eth.ETH_TRAINING_SET)["candidate"] is False
    finally:
        _restore(served.lake, before)


def test_the_training_set_latest_moves_only_with_a_published_signal(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A served run whose training set passes and whose eth_signal then fails: LATEST named
    the new training set while the signal stayed on the old one (its CLI message and its
    readers took a set no signal came from). The set is the candidate instead, which
    eth_signal run alone serves; then both pointers move together."""
    before = _pointers(served.lake)
    labels = {"horizon": 7, "band": 0.03, "serve": True}

    def planted(*_: Any, **__: Any) -> Any:
        raise ValueError("planted evaluation fault")

    try:
        with monkeypatch.context() as mp:
            mp.setattr(eth.ev, "evaluate", planted)
            failed = _model_run(served.defs, served.instance, labels)
        assert not failed.success
        new_set = _metadata(failed, eth.ETH_TRAINING_SET)["snapshot"]
        assert new_set != before[0]
        assert _pointers(served.lake) == before  # neither pointer moved
        assert eth.servable_snapshot(served.lake) == new_set
        alone = _model_run(served.defs, served.instance, selection=[eth.ETH_SIGNAL])
        assert alone.success
        assert _metadata(alone, eth.ETH_SIGNAL)["training_set"] == new_set
        assert _pointers(served.lake) == (new_set, _metadata(alone, eth.ETH_SIGNAL)["version"])
    finally:
        _restore(served.lake, before)


def test_a_re_executed_experiment_evaluates_its_own_training_set(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """An experiment whose eth_signal failed, re-executed from failure: the new run holds
    no training set of its own, and looking at it alone evaluated the CANDIDATE as a served
    run (a reviewer). The run it re-executes names the experiment's."""
    before = _pointers(served.lake)

    def planted(*_: Any, **__: Any) -> Any:
        raise ValueError("planted evaluation fault")

    try:
        with monkeypatch.context() as mp:
            mp.setattr(eth.ev, "evaluate", planted)
            failed = _model_run(served.defs, served.instance, {"horizon": 7, "band": 0.03})
        assert not failed.success
        experiment = _metadata(failed, eth.ETH_TRAINING_SET)["snapshot"]
        assert experiment != eth.servable_snapshot(served.lake)
        # what a re-execution from failure records: a run whose parent is the failed one
        retry = dg.DagsterRun(job_name="eth_model", run_id="re-execution-of-the-experiment",
                              parent_run_id=failed.run_id, root_run_id=failed.run_id,
                              status=dg.DagsterRunStatus.STARTED)
        served.instance.add_run(retry)
        context = SimpleNamespace(run_id=retry.run_id, instance=served.instance)
        assert eth.run_training_set(context, served.lake) == (experiment, False)  # type: ignore[arg-type]
        alone = SimpleNamespace(run_id="no-such-run", instance=served.instance)
        assert eth.run_training_set(alone, served.lake) == (  # type: ignore[arg-type]
            eth.servable_snapshot(served.lake), True)
        assert _pointers(served.lake) == before
    finally:
        _restore(served.lake, before)


def _restore(lake: Lake, pointers: tuple[str | None, str | None]) -> None:
    training, version = pointers
    assert training is not None and version is not None
    lake.write_bytes(eth.snapshot_folder(lake, "LATEST"), training.encode())
    lake.write_bytes(eth.snapshot_folder(lake, eth.CANDIDATE), training.encode())
    lake.write_bytes(lake.path(MODELS, eth.ETH_SIGNAL, "LATEST"), version.encode())
