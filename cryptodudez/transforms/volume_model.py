"""The volume model: a shrunken multiplicative correction of the 30-day average volume.

The naive forecast ``Volume = vol_moving_avg`` is hard to beat (it already rivals the brief's
random forest) because volume is heavy-tailed and scale matters more than anything else.
So the model keeps the scale exactly and learns only a correction factor::

    Volume ~ k * vol_moving_avg * exp(s * h(vol_moving_avg, adj_close_rolling_med))

``h`` is a histogram gradient-boosting regressor of ``log(Volume / vol_moving_avg)``; the
shrinkage ``s`` in [0, 1] is chosen on a time-based validation period inside the training
data (never on the test split), as the value with the best worst-case gain over the naive
forecast across the measures.

Both features are binned into at most 256 quantile bins of our own (public ``searchsorted``
edges) and the booster is trained on the bin codes, so the fitted model is exactly a table
over the 256 x 256 code pairs: the API evaluates it with two binary searches in microseconds,
and the table is checked against the booster before it is saved. The table itself,
:class:`~cryptodudez.transforms.lookup.LookupModel`, lives in a module of its own (standard
library only) so the API can load it without numpy or scikit-learn; it is imported here too.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import train_test_split

from cryptodudez.transforms.lookup import LookupModel

FEATURES = ("vol_moving_avg", "adj_close_rolling_med")
TARGET = "Volume"
TRAINING_COLUMNS = ("Symbol", "Date", *FEATURES, TARGET)  # what training_frame reads
SHRINKAGE_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
HGB_PARAMS: dict[str, Any] = {
    "loss": "squared_error", "learning_rate": 0.2, "max_iter": 50, "max_leaf_nodes": 15,
    "min_samples_leaf": 2000, "l2_regularization": 1.0, "early_stopping": False,
    "random_state": 0,
}
_RATIO_FLOOR = 1e-3


def metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE and MSE (the brief's measures) and MAE of log1p volume (for heavy tails)."""
    err = actual - predicted
    return {
        "mae": float(np.mean(np.abs(err))),
        "mse": float(np.mean(err * err)),
        "mae_log1p": float(np.mean(np.abs(np.log1p(actual) - np.log1p(np.maximum(predicted, 0))))),
    }


def beats(candidate: dict[str, float], reference: dict[str, float]) -> bool:
    """True when ``candidate`` is strictly better on every measure."""
    return all(candidate[k] < reference[k] for k in reference)


def training_frame(features: pl.DataFrame) -> pl.DataFrame:
    """Rows usable for training (both features present, volume known), in a fixed order.

    Sorted by symbol and date, so the brief's seeded random split draws the same rows
    however the feature table happens to be stored (fragments, batches and year files
    change the read order).
    """
    return features.sort("Symbol", "Date").select("Date", *FEATURES, TARGET).drop_nulls()


def bin_edges(values: np.ndarray, *, bins: int = 256) -> np.ndarray:
    """At most ``bins - 1`` distinct quantile edges of ``values``."""
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def encode(x: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """Bin codes of each feature: code ``i`` means ``edges[i-1] < x <= edges[i]``."""
    return np.column_stack(
        [np.searchsorted(e, x[:, k], side="left") for k, e in enumerate(edges)]
    ).astype(np.float64)


@dataclass
class VolumeModel:
    """A fitted correction model over binned features, and its shrinkage."""

    edges: list[np.ndarray]
    booster: HistGradientBoostingRegressor
    shrinkage: float
    scale: float = 1.0

    def correction(self, x: np.ndarray) -> np.ndarray:
        """The booster's log-ratio prediction for raw feature rows."""
        return self.booster.predict(encode(x, self.edges))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted volume for rows of (vol_moving_avg, adj_close_rolling_med)."""
        return self.scale * x[:, 0] * np.exp(self.shrinkage * self.correction(x))

    def compile(self) -> "LookupModel":
        """The exact lookup-table form of this model (see :class:`LookupModel`)."""
        codes = [np.arange(len(e) + 1, dtype=np.float64) for e in self.edges]
        grid = np.array(np.meshgrid(codes[0], codes[1], indexing="ij")).reshape(2, -1).T
        factors = self.scale * np.exp(self.shrinkage * self.booster.predict(grid)).reshape(
            len(codes[0]), len(codes[1])
        )
        return LookupModel(self.edges[0].tolist(), self.edges[1].tolist(), factors.tolist())


def least_squares_scale(base: np.ndarray, y: np.ndarray) -> float:
    """The factor ``k`` minimising ``sum((y - k * base) ** 2)``: the MSE-optimal calibration.

    Volume is heavy-tailed, so squared error is decided by the largest names; a log-space
    model is calibrated for the median, and this one number re-aims it at the mean.
    """
    denominator = float(np.dot(base, base))
    return float(np.dot(base, y)) / denominator if denominator > 0 else 1.0


def fit(x: np.ndarray, y: np.ndarray, *, shrinkage: float) -> VolumeModel:
    """Fit the correction booster on log volume ratios, then the MSE calibration."""
    ratio = np.where(x[:, 0] > 0, y / np.where(x[:, 0] > 0, x[:, 0], 1.0), 1.0)
    target = np.log(np.maximum(ratio, _RATIO_FLOOR))
    edges = [bin_edges(x[:, k]) for k in range(x.shape[1])]
    booster = HistGradientBoostingRegressor(**HGB_PARAMS).fit(encode(x, edges), target)
    model = VolumeModel(edges, booster, shrinkage)
    model.scale = least_squares_scale(model.predict(x), y)
    return model


def choose_shrinkage(x: np.ndarray, y: np.ndarray, dates: np.ndarray, *,
                     validation_days: int = 182,
                     rule: str = "maximin") -> tuple[float, dict[str, Any]]:
    """Pick ``s`` on the last ``validation_days`` of the training rows (time-based).

    Each candidate is calibrated by its least-squares scale on the training rows and scored
    against the naive forecast on the validation rows. ``rule`` decides:

    ``"maximin"`` (the default)
        the grid value with the largest *smallest* relative gain across the measures
        (``s = 0`` is the calibrated naive forecast).
    ``"mse_constrained"``
        the largest mean MAE and log-MAE gain among the values whose validation MSE is no
        worse than the naive forecast's (``s = 0`` when none is).

    The default beat the naive forecast on every measure more often (5 of 7, against 3 or 4
    of 7 depending on the row order) in back-tests that use only training rows
    (``benchmarks/bench_model.py --rules``; docs/model.md): MSE
    gains are tiny and noisy, and the constrained rule takes the largest ``s`` that just
    passes on validation, so out of sample it tends to give the MSE back. It gains far more
    log-error, though. Returns ``s`` and the per-candidate report.
    """
    if rule not in ("maximin", "mse_constrained"):
        raise ValueError(f"unknown shrinkage rule {rule!r}")
    last = np.datetime64(str(dates.max()))
    cut = str(last - np.timedelta64(validation_days, "D"))
    train, valid = dates < cut, dates >= cut
    model = fit(x[train], y[train], shrinkage=1.0)
    naive = metrics(y[valid], x[valid, 0])
    raw_train, raw_valid = model.correction(x[train]), model.correction(x[valid])
    report: dict[str, Any] = {"validation_from": cut, "rule": rule, "naive": naive, "grid": {}}
    best, best_score = 0.0, -np.inf
    for s in SHRINKAGE_GRID:
        scale = least_squares_scale(x[train, 0] * np.exp(s * raw_train), y[train])
        scores = metrics(y[valid], scale * x[valid, 0] * np.exp(s * raw_valid))
        report["grid"][str(s)] = {**scores, "scale": scale}
        gain = {k: 1 - scores[k] / naive[k] for k in naive}
        if rule == "maximin":
            score = min(gain.values())
        else:
            score = (gain["mae"] + gain["mae_log1p"]) / 2 if gain["mse"] >= 0 else -np.inf
        if score > best_score:
            best, best_score = s, score
    report["chosen"] = best
    return best, report


def evaluate(x: np.ndarray, y: np.ndarray, dates: np.ndarray, *,
             holdout_days: int = 182) -> dict[str, Any]:
    """Scores on the brief's random 80/20 split and on a time-based hold-out.

    Each evaluation chooses its own shrinkage on data before its test rows, exactly as the
    production fit does, and reports the naive forecast on the same rows.
    """
    out: dict[str, Any] = {}
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.2, random_state=42)
    last = np.datetime64(str(dates.max()))
    cut = str(last - np.timedelta64(holdout_days, "D"))
    splits = {"random_80_20": (tr, te), "time_holdout": (idx[dates < cut], idx[dates >= cut])}
    for name, (train, test) in splits.items():
        s, _ = choose_shrinkage(x[train], y[train], dates[train])
        model = fit(x[train], y[train], shrinkage=s)
        out[name] = {
            "rows_train": len(train), "rows_test": len(test), "shrinkage": s,
            "model": metrics(y[test], model.predict(x[test])),
            "naive": metrics(y[test], x[test, 0]),
        }
        if name == "time_holdout":
            out[name]["test_from"] = cut
    return out


def check_exact(model: VolumeModel, table: LookupModel, x: np.ndarray) -> float:
    """Largest relative difference between the booster and its lookup table on ``x``."""
    expected = model.predict(x)
    got = np.array([table.predict_one(a, b) for a, b in x])
    scale = np.maximum(np.abs(expected), 1.0)
    return float(np.max(np.abs(got - expected) / scale)) if len(x) else 0.0


def validate_inputs(vol_moving_avg: float, adj_close_rolling_med: float) -> str | None:
    """Why a pair of API inputs is unusable, or None."""
    for name, value in (("vol_moving_avg", vol_moving_avg),
                        ("adj_close_rolling_med", adj_close_rolling_med)):
        if not math.isfinite(value):
            return f"{name} must be a finite number"
        if value < 0:
            return f"{name} must be >= 0"
    return None
