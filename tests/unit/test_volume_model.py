"""The volume model's shrinkage choice, on synthetic volumes with a known correction."""

import numpy as np
import polars as pl
import pytest

from cryptodudez.transforms import volume_model as vm


def _data(*, signal: float, rows: int = 40_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Volumes ``vma * exp(signal * g(price) + noise)`` over two years of ISO date strings."""
    rng = np.random.default_rng(7)
    vma = np.exp(rng.uniform(5, 15, rows))
    price = rng.lognormal(3, 1, rows)
    log_ratio = signal * np.where(price > np.median(price), 0.5, -0.5)
    y = vma * np.exp(log_ratio + rng.normal(0, 0.3, rows))
    days = np.datetime64("2021-01-01") + rng.integers(0, 730, rows).astype("timedelta64[D]")
    dates = np.datetime_as_string(days).astype(object)  # as the features table gives them
    return np.column_stack([vma, price]), y, dates


@pytest.mark.parametrize("rule", ["maximin", "mse_constrained"])
def test_a_real_correction_is_kept(rule: str) -> None:
    x, y, dates = _data(signal=1.0)
    s, report = vm.choose_shrinkage(x, y, dates, rule=rule)
    assert s >= 0.7
    assert report["rule"] == rule
    assert report["chosen"] == s
    assert set(report["grid"]) == {str(v) for v in vm.SHRINKAGE_GRID}


@pytest.mark.parametrize("rule", ["maximin", "mse_constrained"])
def test_the_chosen_shrinkage_is_on_the_grid(rule: str) -> None:
    x, y, dates = _data(signal=0.0)
    s, _ = vm.choose_shrinkage(x, y, dates, rule=rule)
    assert s in vm.SHRINKAGE_GRID


def test_mse_constrained_never_takes_a_worse_validation_mse() -> None:
    x, y, dates = _data(signal=0.2)
    s, report = vm.choose_shrinkage(x, y, dates, rule="mse_constrained")
    assert s == 0.0 or report["grid"][str(s)]["mse"] <= report["naive"]["mse"]


def test_unknown_rule_is_refused() -> None:
    x, y, dates = _data(signal=0.0, rows=100)
    with pytest.raises(ValueError, match="unknown shrinkage rule"):
        vm.choose_shrinkage(x, y, dates, rule="best_on_test")


def test_beats_needs_every_measure() -> None:
    reference = {"mae": 1.0, "mse": 1.0, "mae_log1p": 1.0}
    assert vm.beats({"mae": 0.9, "mse": 0.9, "mae_log1p": 0.9}, reference)
    assert not vm.beats({"mae": 0.9, "mse": 1.0, "mae_log1p": 0.9}, reference)


def test_training_rows_do_not_depend_on_how_the_table_is_stored() -> None:
    """The brief's seeded split must draw the same rows whatever the read order."""
    rng = np.random.default_rng(3)
    n = 500
    features = pl.DataFrame({
        "Symbol": rng.choice(["A", "B", "C"], n),
        "Date": [f"2020-01-{d:02d}" for d in rng.integers(1, 29, n)],
        "vol_moving_avg": rng.uniform(1, 10, n),
        "adj_close_rolling_med": rng.uniform(1, 10, n),
        "Volume": rng.integers(0, 100, n),
    }).unique(["Symbol", "Date"])
    stored_one_way = vm.training_frame(features)
    stored_another = vm.training_frame(features.sample(fraction=1.0, shuffle=True, seed=1))
    assert stored_one_way.equals(stored_another)
