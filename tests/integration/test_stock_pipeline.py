"""Features, partial backfills and the model through Dagster, on the samples and real data."""

import json
import os
import pickle
import zipfile
from collections.abc import Callable

import dagster as dg
import numpy as np
import polars as pl
import pytest

from cryptodudez.assets.stocks import feature_path, stock_features
from cryptodudez.resources.compute import Compute
from cryptodudez.resources.lake import FEATURES, MODELS, VALIDATED
from cryptodudez.resources.spark_jobs import LocalSparkJobs
from cryptodudez.sensors.stock_pipeline import changed_stock_dates, pipeline_tags
from cryptodudez.transforms import stock_features as transforms
from cryptodudez.transforms import volume_model as vm
from cryptodudez.transforms.stock_features import FEATURES as FEATURE_COLUMNS
from cryptodudez.transforms.stock_features import rolling_features
from cryptodudez.transforms.volume_model import SAMPLE_ROWS, LookupModel
from tests.conftest import SAMPLES, shared
from tests.helpers import QUIET, land_and_ingest

STOCKS = {"samples/stock_market_sample.zip": SAMPLES / "stock_market_sample.zip"}
FEATURE_CHECKS = ("stock_features_nulls_are_first_29_rows",
                  "stock_features_match_independent_recomputation",
                  "stock_features_one_row_per_validated_bar")


def _run_pipeline(defs, instance, start: str, end: str):
    return defs.resolve_job_def("stock_pipeline").execute_in_process(
        instance=instance, run_config=QUIET, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": start,
              "dagster/asset_partition_range_end": end})


def _pandas_features(bars: pl.DataFrame) -> pl.DataFrame:
    pdf = bars.select("Symbol", "Date", "Volume", "Adj Close").to_pandas()
    pdf = pdf.sort_values(["Symbol", "Date"])
    grouped = pdf.groupby("Symbol")
    pdf["ref_vol"] = grouped["Volume"].rolling(30).mean().reset_index(level=0, drop=True)
    pdf["ref_med"] = grouped["Adj Close"].rolling(30).median().reset_index(level=0, drop=True)
    return pl.from_pandas(pdf[["Symbol", "Date", "ref_vol", "ref_med"]])


def _assert_same(features: pl.DataFrame, reference: pl.DataFrame) -> None:
    merged = features.join(reference, on=["Symbol", "Date"], how="inner")
    assert merged.height == features.height == reference.height
    for ours, ref in zip(FEATURE_COLUMNS, ("ref_vol", "ref_med"), strict=True):
        assert (merged[ours].is_null() == merged[ref].is_null()).all()
        both = merged.drop_nulls([ours, ref])
        np.testing.assert_allclose(both[ours].to_numpy(), both[ref].to_numpy(), rtol=1e-9)


def test_ingest_then_pipeline_end_to_end_on_samples(defs, instance) -> None:
    results = land_and_ingest(defs, instance, STOCKS)
    run = next(iter(results.values()))
    earliest = changed_stock_dates(instance, run.run_id)
    assert earliest is not None
    tags = pipeline_tags(earliest)
    result = _run_pipeline(defs, instance, tags["dagster/asset_partition_range_start"],
                           tags["dagster/asset_partition_range_end"])
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["stock_features_nulls_are_first_29_rows"]
    assert checks["stock_features_match_independent_recomputation"]
    assert checks["volume_model_lookup_matches_booster"]
    lake = defs.resources["lake"]
    features = lake.read_table(FEATURES, "stock_features")
    bars = lake.read_table(VALIDATED, "stock_prices")
    assert features.height == bars.height
    assert set(bars.columns) - {"_landed_at", "_partition", "_line"} <= set(features.columns)
    _assert_same(features, _pandas_features(bars))
    # The quarantined BEP and CVX rows are not in the features: they are not valid bars.
    assert features.filter((pl.col("Symbol") == "BEP") & (pl.col("Date") == "2017-05-29")
                           ).height == 0
    version = lake.read_bytes(lake.path(MODELS, "volume_model", "LATEST")).decode()
    folder = lake.path(MODELS, "volume_model", version)
    metrics = json.loads(lake.read_bytes(f"{folder}/metrics.json"))
    assert metrics["rows_read"] == features.drop_nulls(list(FEATURE_COLUMNS)).height
    assert metrics["rows"] == min(metrics["rows_read"], SAMPLE_ROWS)
    held_out = metrics["evaluation"]["held_out_symbols"]
    assert held_out["symbols_test"] >= 1 and held_out["rows_test"] > 0
    assert {"random_80_20", "time_holdout"} <= set(metrics["evaluation"])
    assert "training rows" in lake.read_bytes(f"{folder}/train.log").decode()
    table = LookupModel.from_json(json.loads(lake.read_bytes(f"{folder}/lookup.json")))
    booster = pickle.loads(lake.read_bytes(f"{folder}/booster.pkl"))
    x = features.drop_nulls(list(FEATURE_COLUMNS)).select(FEATURE_COLUMNS).to_numpy()[:500]
    np.testing.assert_allclose([table.predict_one(a, b) for a, b in x], booster.predict(x),
                               rtol=1e-12)


def test_a_model_that_fails_its_blocking_check_is_not_served(defs, instance,
                                                             monkeypatch) -> None:
    """A lookup that disagrees with the booster fails the run and leaves LATEST alone: the
    version was published before its check failed, and the API served it (session 23)."""
    land_and_ingest(defs, instance, STOCKS)
    lake = defs.resources["lake"]
    latest = lake.path(MODELS, "volume_model", "LATEST")
    served = b"20260101T000000-served"  # what the API serves before the run
    lake.write_bytes(latest, served)
    monkeypatch.setattr(vm, "check_exact", lambda *_: 0.5)
    failed = _run_pipeline(defs, instance, "2023", "2023")
    assert not failed.success
    checks = {e.check_name: e.passed for e in failed.get_asset_check_evaluations()}
    assert checks["volume_model_lookup_matches_booster"] is False
    assert lake.read_bytes(latest) == served
    rejected = next(m for m in failed.get_asset_materialization_events()
                    if m.asset_key.path[-1] == "volume_model").materialization.metadata
    assert rejected["published"].value is False
    assert lake.exists(lake.path(MODELS, "volume_model", rejected["version"].value,
                                 "booster.pkl"))  # kept for inspection


def test_partial_backfill_recomputes_only_its_years_correctly(defs, instance) -> None:
    land_and_ingest(defs, instance, STOCKS)
    assert _run_pipeline(defs, instance, "1960", "2026").success
    lake = defs.resources["lake"]
    full = lake.read_table(FEATURES, "stock_features")
    untouched = feature_path(lake, "2021")
    touched = feature_path(lake, "2022")
    before_untouched = os.stat(untouched).st_mtime_ns
    os.remove(touched)
    result = _run_pipeline(defs, instance, "2022", "2022")
    assert result.success
    assert os.stat(untouched).st_mtime_ns == before_untouched
    again = lake.read_table(FEATURES, "stock_features")
    cols = ["Symbol", "Date", *FEATURE_COLUMNS]
    assert again.select(cols).sort("Symbol", "Date").equals(full.select(cols).sort("Symbol",
                                                                                   "Date"))
    year_2022 = pl.read_parquet(touched)
    # AAPL's first rows of 2022 need 2021's last 29 rows: not null across the boundary.
    first = year_2022.filter(pl.col("Symbol") == "AAPL").sort("Date").head(1)
    assert first[FEATURE_COLUMNS[0]][0] is not None


def test_a_reversed_year_range_is_refused_naming_it(defs, instance) -> None:
    """Dagster accepts 2023...2020 and gives an empty window: it was an IndexError (QA)."""
    land_and_ingest(defs, instance, STOCKS)
    result = _run_pipeline(defs, instance, "2023", "2020")
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1
    assert "the year range 2023...2020 is reversed: ask for 2020...2023" in str(
        failures[0].event_specific_data)


@pytest.mark.realdata
@pytest.mark.slow
def test_features_on_the_real_archive_match_pandas(defs, instance) -> None:
    path = shared("stock-market-dataset", "archive.zip")
    land_and_ingest(defs, instance, {"stocks/archive.zip": path})
    lake = defs.resources["lake"]
    bars = lake.read_table(VALIDATED, "stock_prices")
    features = rolling_features(bars)
    reference = _pandas_features(bars)
    _assert_same(features.select("Symbol", "Date", *FEATURE_COLUMNS), reference)
    short = features.group_by("Symbol").len().filter(pl.col("len") < 30)["Symbol"]
    assert short.len() > 0  # warrants and rights with a handful of rows
    assert features.filter(pl.col("Symbol").is_in(short.implode()))[
        FEATURE_COLUMNS[0]].null_count() == features.filter(
        pl.col("Symbol").is_in(short.implode())).height



def _range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end}


def _latest_row_count(instance: dg.DagsterInstance, year: str) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("stock_features"), asset_partitions=[year]),
        limit=1,
    ).records
    mat = records[0].asset_materialization
    assert mat is not None
    return int(mat.metadata["dagster/row_count"].value)


def test_each_year_of_a_range_run_records_its_own_row_count(defs, instance) -> None:
    """One range run, four years: each partition's row count is that year's, not the run's."""
    land_and_ingest(defs, instance, STOCKS)
    lake = defs.resources["lake"]
    result = dg.materialize([stock_features], instance=instance,
                            resources={"lake": lake, "compute": Compute(),
                                       "spark_jobs": LocalSparkJobs()},
                            tags=_range_tags("2019", "2024"), run_config=QUIET)
    assert result.success
    # Independent counts: the validated input and the written year files, by year of Date.
    by_year = pl.col("Date").str.slice(0, 4).alias("year")
    bars = dict(lake.read_table(VALIDATED, "stock_prices").group_by(by_year).len().rows())
    written = dict(lake.read_table(FEATURES, "stock_features").group_by(by_year).len().rows())
    assert len({bars.get(str(y), 0) for y in range(2020, 2024)}) > 1  # years really differ
    for year in map(str, range(2019, 2025)):
        assert _latest_row_count(instance, year) == bars.get(year, 0) == written.get(year, 0)


def _planted(keep: Callable[[pl.DataFrame], pl.DataFrame]):
    real = transforms.features_by_period

    def features_by_period(*args, **kwargs):
        for frame in real(*args, **kwargs):
            yield keep(frame)
    return features_by_period


def _check_results(defs, instance) -> dict[str, bool]:
    result = dg.materialize([stock_features], instance=instance,
                            resources={"lake": defs.resources["lake"], "compute": Compute(),
                                       "spark_jobs": LocalSparkJobs()},
                            tags=_range_tags("2019", "2024"), run_config=QUIET,
                            raise_on_error=False)
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_feature_checks_fail_when_a_run_writes_no_rows(defs, instance, monkeypatch) -> None:
    """A planted empty result: no feature check may pass over zero rows."""
    land_and_ingest(defs, instance, STOCKS)
    monkeypatch.setattr(transforms, "features_by_period", _planted(lambda f: f.clear()))
    checks = _check_results(defs, instance)
    assert checks and not any(checks.values()), checks


def test_feature_checks_fail_when_rows_are_lost(defs, instance, monkeypatch) -> None:
    """A planted loss of the last row of every year fails the row-count check."""
    land_and_ingest(defs, instance, STOCKS)
    monkeypatch.setattr(transforms, "features_by_period", _planted(lambda f: f.head(-1)))
    checks = _check_results(defs, instance)
    assert checks["stock_features_one_row_per_validated_bar"] is False
    assert checks["stock_features_nulls_are_first_29_rows"] is True  # the loss is all it sees


def test_feature_checks_fail_on_features_of_a_20_row_window(defs, instance,
                                                            monkeypatch) -> None:
    """A planted 20-row window: the checks hold the features to the spec's 30 rows."""
    land_and_ingest(defs, instance, STOCKS)
    real = transforms.features_by_period
    monkeypatch.setattr(transforms, "features_by_period",
                        lambda *args, **kwargs: real(*args, **{**kwargs, "window": 20}))
    checks = _check_results(defs, instance)
    assert checks == {"stock_features_nulls_are_first_29_rows": False,
                      "stock_features_match_independent_recomputation": False,
                      "stock_features_one_row_per_validated_bar": True}, checks


def test_feature_checks_pass_on_a_correct_run(defs, instance) -> None:
    land_and_ingest(defs, instance, STOCKS)
    checks = _check_results(defs, instance)
    assert checks == dict.fromkeys(FEATURE_CHECKS, True), checks


def test_a_year_without_bars_is_an_empty_partition_whose_checks_pass(defs, instance,
                                                                    tmp_path) -> None:
    """1960 (before the sample's first bar) and 2012 (a gap between its years) failed their
    blocking checks with "nothing to check" (QA), where the feature store's empty years pass.
    With no validated table at all there is nothing to check, and they still fail."""
    lake = defs.resources["lake"]
    resources = {"lake": lake, "compute": Compute(), "spark_jobs": LocalSparkJobs()}

    def run(year: str) -> dg.ExecuteInProcessResult:
        return dg.materialize([stock_features], instance=instance, resources=resources,
                              partition_key=year, run_config=QUIET, raise_on_error=False)

    def failed_checks(result: dg.ExecuteInProcessResult) -> set[str]:
        assert not result.success
        return {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}

    assert failed_checks(run("1960")) == set(FEATURE_CHECKS)  # no validated table yet
    # a table of files whose every row was rejected holds no bar either (a reviewer)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("stocks/BAD.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n"
                                           "2020-01-02,10,9,11,10,10,100\n")  # High < Low
    land_and_ingest(defs, instance, {"samples/bad.zip": bad})
    assert lake.fragments(VALIDATED, "stock_prices")  # a validated file, and no row in it
    assert lake.read_table(VALIDATED, "stock_prices").height == 0
    assert failed_checks(run("2020")) == set(FEATURE_CHECKS)
    land_and_ingest(defs, instance, STOCKS)
    bars = lake.read_table(VALIDATED, "stock_prices")
    years = set(bars["Date"].str.slice(0, 4).unique().to_list())
    assert "1960" not in years and "2012" not in years and min(years) < "2012" < max(years)
    for year in ("1960", "2012"):
        result = run(year)
        assert result.success, year
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == set(FEATURE_CHECKS)
        assert all(e.passed for e in evaluations), year
        assert all(e.description.startswith(f"no validated bars in {year}..{year}")
                   for e in evaluations)
        assert not os.path.exists(feature_path(lake, year))
