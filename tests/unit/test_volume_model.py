"""The volume model: selection rule, held-out-symbol split, sampling and the production fit."""

import numpy as np
import polars as pl
import pytest

from cryptodudez.transforms import volume_model as vm

NAIVE = {"mae": 100.0, "mse": 1e6, "mae_log1p": 1.0}


def _frame(*, signal: float, symbols: int = 60, days: int = 400, seed: int = 7) -> pl.DataFrame:
    """``training_frame``-shaped rows: volume ``vma * exp(signal * g(price) + noise)``."""
    rng = np.random.default_rng(seed)
    n = symbols * days
    vma = np.exp(rng.uniform(5, 15, n))
    price = rng.lognormal(3, 1, n)
    log_ratio = signal * np.where(price > np.median(price), 0.5, -0.5)
    volume = np.rint(vma * np.exp(log_ratio + rng.normal(0, 0.3, n))).astype(np.int64)
    dates = np.datetime64("2021-01-01") + np.tile(np.arange(days), symbols).astype(
        "timedelta64[D]")
    features = pl.DataFrame({
        "Symbol": np.repeat([f"S{i:03d}" for i in range(symbols)], days),
        "Date": np.datetime_as_string(dates),
        "vol_moving_avg": vma, "adj_close_rolling_med": price, "Volume": volume,
    })
    return vm.training_frame(features)


# ------------------------------------------------------------------ the selection rule
def test_the_rule_picks_the_lowest_log_mae_even_when_mse_is_worse() -> None:
    scores = {
        0.0: NAIVE,
        0.5: {"mae": 95.0, "mse": 0.9e6, "mae_log1p": 0.95},   # best MAE and MSE
        1.0: {"mae": 99.0, "mse": 2.0e6, "mae_log1p": 0.90},   # best log-MAE, MSE far worse
    }
    assert vm.select_shrinkage(scores, NAIVE) == 1.0


def test_mae_worse_than_naive_rejects_the_log_mae_winner() -> None:
    scores = {
        0.0: NAIVE,
        0.5: {"mae": 100.0, "mse": 1e6, "mae_log1p": 0.97},    # MAE equal to naive: allowed
        1.0: {"mae": 100.1, "mse": 1e6, "mae_log1p": 0.80},    # best log-MAE, MAE worse
    }
    assert vm.select_shrinkage(scores, NAIVE) == 0.5


def test_no_eligible_candidate_means_the_naive_forecast() -> None:
    scores = {0.5: {"mae": 101.0, "mse": 1.0, "mae_log1p": 0.5}}
    assert vm.select_shrinkage(scores, NAIVE) == 0.0


def test_beats_is_the_selection_criterion_out_of_sample() -> None:
    assert vm.beats({"mae": 100.0, "mse": 9e9, "mae_log1p": 0.9}, NAIVE)
    assert not vm.beats({"mae": 100.1, "mse": 1.0, "mae_log1p": 0.5}, NAIVE)
    assert not vm.beats({"mae": 50.0, "mse": 1.0, "mae_log1p": 1.0}, NAIVE)


# ------------------------------------------------------------- held-out-symbol split
def test_held_out_symbols_share_no_symbol_with_training() -> None:
    frame = _frame(signal=0.0, symbols=200, days=5)
    train, test = vm.evaluation_splits(frame)["held_out_symbols"]
    train_symbols = set(frame[train]["Symbol"].to_list())
    test_symbols = set(frame[test]["Symbol"].to_list())
    assert not train_symbols & test_symbols
    assert len(train) + len(test) == frame.height
    assert 20 <= len(test_symbols) <= 60  # about 20 % of 200
    # Every row of a held-out symbol is tested: all its dates.
    assert frame[test].height == frame.filter(pl.col("Symbol").is_in(test_symbols)).height


def test_the_held_out_evaluation_never_trains_on_a_test_symbol(monkeypatch) -> None:
    """Everything the held-out evaluation fits (shrinkage choice included) sees no test symbol."""
    frame = _frame(signal=1.0, symbols=40, days=300)
    seen: list[set[str]] = []
    real_train = vm.train

    def spy(subset: pl.DataFrame, **kwargs):
        seen.append(set(subset["Symbol"].to_list()))
        return real_train(subset, **kwargs)

    monkeypatch.setattr(vm, "train", spy)
    out = vm.evaluate(frame)
    _, test = vm.evaluation_splits(frame)["held_out_symbols"]
    test_symbols = set(frame[test]["Symbol"].to_list())
    assert len(seen) == 3  # one production-procedure fit per split
    assert not seen[0] & test_symbols  # the held-out split is evaluated first
    assert out["held_out_symbols"]["symbols_test"] == len(test_symbols)


def test_validation_symbols_are_not_fitted_by_the_probe(monkeypatch) -> None:
    frame = _frame(signal=1.0, symbols=40, days=60)
    fitted: list[int] = []
    real_fit = vm.fit

    def spy(x, y, **kwargs):
        fitted.append(len(y))
        return real_fit(x, y, **kwargs)

    monkeypatch.setattr(vm, "fit", spy)
    _, report = vm.train(frame)
    assert fitted == [frame.height - report["validation_rows"], frame.height]


# -------------------------------------------------------- production fit and sampling
def test_the_production_fit_never_calls_the_evaluation(monkeypatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("evaluation called on the production fit path")

    monkeypatch.setattr(vm, "evaluate", forbidden)
    monkeypatch.setattr(vm, "evaluation_splits", forbidden)
    model, report = vm.train(_frame(signal=1.0, symbols=30, days=60))
    assert report["chosen"] == model.shrinkage


def test_a_real_correction_is_kept_and_beats_naive() -> None:
    frame = _frame(signal=1.0)
    model, report = vm.train(frame)
    assert model.shrinkage >= 0.7
    assert set(report["grid"]) == {str(s) for s in vm.SHRINKAGE_GRID}
    held_out = vm.evaluate(frame)["held_out_symbols"]
    assert held_out["beats_naive"]


def test_the_fit_uses_at_most_the_sample_size() -> None:
    frame = _frame(signal=0.5, symbols=30, days=100)
    _, report = vm.train(frame, rows=1000)
    assert report["rows_sampled"] == 1000
    assert report["rows_available"] == frame.height


def test_samples_do_not_depend_on_how_the_table_is_stored_and_are_nested() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    features = pl.DataFrame({
        "Symbol": rng.choice(["A", "B", "C", "D"], n),
        "Date": [f"2020-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, n),
                                                         rng.integers(1, 29, n), strict=True)],
        "vol_moving_avg": rng.uniform(1, 10, n),
        "adj_close_rolling_med": rng.uniform(1, 10, n),
        "Volume": rng.integers(0, 100, n),
        "Extra": rng.uniform(0, 1, n),
    }).unique(["Symbol", "Date"])
    one_way = vm.training_frame(features, rows=500)
    another = vm.training_frame(features.sample(fraction=1.0, shuffle=True, seed=1), rows=500)
    assert one_way.equals(another)
    assert 350 < one_way.height < 650
    assert one_way.columns == [*vm.TRAINING_COLUMNS, vm.UNIFORM]
    smaller = vm.subsample(vm.training_frame(features), 500)
    assert smaller.height == 500
    everything = vm.training_frame(features, rows=10 * n)
    assert everything.height == features.height
    assert vm.subsample(one_way, 100).select("Symbol", "Date").join(
        smaller.select("Symbol", "Date"), on=["Symbol", "Date"], how="anti").height == 0


def test_training_rows_drop_missing_features_and_volume() -> None:
    features = pl.DataFrame({
        "Symbol": ["A", "A", "A"], "Date": ["2020-01-01", "2020-01-02", "2020-01-03"],
        "vol_moving_avg": [None, 1.0, 1.0], "adj_close_rolling_med": [1.0, 1.0, 1.0],
        "Volume": [1, None, 2],
    })
    assert vm.training_frame(features)["Date"].to_list() == ["2020-01-03"]


def test_the_exactness_check_never_passes_on_zero_rows() -> None:
    model, _ = vm.train(_frame(signal=1.0, symbols=30, days=60))
    assert vm.check_exact(model, model.compile(), np.empty((0, 2))) == np.inf


def test_training_needs_more_than_one_symbol() -> None:
    frame = _frame(signal=0.0, symbols=1, days=50)
    with pytest.raises(ValueError, match="at least two symbols"):
        vm.train(frame)


def test_no_feature_table_yet_gives_no_training_rows() -> None:
    empty = vm.training_frame(pl.LazyFrame())
    assert empty.height == 0
    assert empty.columns == [*vm.TRAINING_COLUMNS, vm.UNIFORM]


@pytest.mark.parametrize("symbols", [["A", "B"], ["A", "B", "C"], [f"S{i}" for i in range(9)]])
def test_a_split_of_two_or_more_symbols_keeps_one_on_each_side(symbols: list[str]) -> None:
    for share in (0.0, 0.2, 0.99, 1.0):
        held = vm.held_out_symbols(symbols, share=share, salt="validation")
        assert 1 <= len(held) < len(symbols), (share, held)


def test_training_needs_rows_of_two_symbols() -> None:
    row = {"Date": "2020-01-01", "vol_moving_avg": 1.0, "adj_close_rolling_med": 2.0,
           "Volume": 3}
    one = pl.DataFrame([{**row, "Symbol": "A"}, {**row, "Symbol": "A", "Date": "2020-01-02"}])
    two = pl.DataFrame([{**row, "Symbol": "A"}, {**row, "Symbol": "B"}])
    half = two.with_columns(pl.when(pl.col("Symbol") == "B").then(None)
                            .otherwise(pl.col("Volume")).alias("Volume"))
    assert not vm.has_training_rows(one)
    assert vm.has_training_rows(two)
    assert not vm.has_training_rows(half)  # B has no row with a volume
