"""The volume model: a learned multiplicative correction of the 30-day average volume.

The naive forecast ``Volume = vol_moving_avg`` is hard to beat because volume is heavy-tailed
and scale matters more than anything else. So the model keeps the scale exactly and learns
only a correction factor::

    Volume ~ vol_moving_avg * exp(s * h(vol_moving_avg, adj_close_rolling_med))

``h`` is a histogram gradient-boosting regressor of ``log(Volume / vol_moving_avg)`` with the
absolute loss, i.e. the conditional *median* of the log ratio. Medians commute with the
monotone ``exp``, so ``s = 1`` predicts the conditional median of Volume itself, which is what
both MAE and MAE of log volume reward. The shrinkage ``s`` is chosen on validation symbols
(symbols the booster was not fitted on) by :func:`select_shrinkage`: the lowest MAE of
``log1p`` volume among the candidates whose MAE is no worse than the naive forecast's. MSE is
reported, never used to choose: a few extreme days of the largest names decide it.

Production fit (:func:`train`) and evaluation (:func:`evaluate`) are separate: the fit works
on a fixed-size, deterministic sample of rows (the served table has 256 x 256 cells; more
rows do not change it beyond noise), and never calls the evaluation, which refits the same
procedure on held-out splits of a sample (held-out symbols, a time hold-out, the brief's
random 80/20 split).

Both features are binned into at most 256 quantile bins of our own (public ``searchsorted``
edges) and the booster is trained on the bin codes, so the fitted model is exactly a table
over the 256 x 256 code pairs: the API evaluates it with two binary searches in microseconds,
and the table is checked against the booster before it is saved. The table itself,
:class:`~cryptodudez.transforms.lookup.LookupModel`, lives in a module of its own (standard
library only) so the API can load it without numpy or scikit-learn; it is imported here too.
"""

import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

# scikit-learn is imported where a model is fitted or split: about 1.8 s that every process
# loading the Dagster definitions (each run and step, the code server) paid otherwise.
if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor

from cryptodudez.transforms.lookup import LookupModel

FEATURES = ("vol_moving_avg", "adj_close_rolling_med")
TARGET = "Volume"
TRAINING_COLUMNS = ("Symbol", "Date", *FEATURES, TARGET)  # what training_frame reads
UNIFORM = "_u"  # a row's deterministic uniform draw in [0, 1): the sample key
SAMPLE_ROWS = 250_000  # rows the production fit uses (at most)
LOAD_ROWS = 2_500_000  # rows read for training and evaluation (at most)
VALIDATION_SYMBOLS = 0.2  # share of the training symbols that choose the shrinkage
HELD_OUT_SYMBOLS = 0.2  # share of the symbols the held-out evaluation never trains on
SHRINKAGE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
HGB_PARAMS: dict[str, Any] = {
    "loss": "absolute_error", "learning_rate": 0.2, "max_iter": 50, "max_leaf_nodes": 15,
    "min_samples_leaf": 500, "l2_regularization": 1.0, "early_stopping": False,
    "random_state": 0,
}
FIT_THREADS = 1  # OpenMP threads of a fit; see fit()
_RATIO_FLOOR = 1e-3
_HASH_SEED = 20241124


def metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE and MSE (the brief's measures) and MAE of log1p volume (for heavy tails)."""
    err = actual - predicted
    return {
        "mae": float(np.mean(np.abs(err))),
        "mse": float(np.mean(err * err)),
        "mae_log1p": float(np.mean(np.abs(np.log1p(actual) - np.log1p(np.maximum(predicted, 0))))),
    }


def gains(candidate: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """Relative change of each measure against ``reference``, in % (negative is better)."""
    return {k: 100.0 * (candidate[k] / reference[k] - 1.0) if reference[k] else 0.0
            for k in reference}


def beats(candidate: dict[str, float], reference: dict[str, float]) -> bool:
    """The selection criterion out of sample: lower log-MAE, and MAE no worse."""
    return (candidate["mae_log1p"] < reference["mae_log1p"]
            and candidate["mae"] <= reference["mae"])


def select_shrinkage(scores: dict[float, dict[str, float]], naive: dict[str, float]) -> float:
    """The served shrinkage: lowest log-MAE among candidates with MAE no worse than naive.

    ``scores`` maps each candidate ``s`` to its validation metrics. MSE is not consulted.
    Returns ``0.0`` (the naive forecast itself) when no candidate is eligible; ties go to
    the smaller ``s``.
    """
    eligible = {s: m for s, m in scores.items() if m["mae"] <= naive["mae"]}
    if not eligible:
        return 0.0
    return min(eligible, key=lambda s: (eligible[s]["mae_log1p"], s))


def has_training_rows(features: pl.LazyFrame | pl.DataFrame) -> bool:
    """Whether at least two symbols have rows with both features and a volume.

    What :func:`train` needs: one symbol to fit on, another to choose the shrinkage on.
    """
    if not set(TRAINING_COLUMNS) <= set(features.lazy().collect_schema().names()):
        return False
    symbols = (features.lazy().select(TRAINING_COLUMNS).drop_nulls().select("Symbol")
               .unique().head(2).collect())
    return symbols.height >= 2


def training_frame(features: pl.LazyFrame | pl.DataFrame, *,
                   rows: int = LOAD_ROWS) -> pl.DataFrame:
    """Rows usable for training (both features, volume known): a deterministic sample.

    A row is kept when its uniform draw (a hash of its symbol and date, column ``_u``) is
    below ``rows / usable rows``, so the sample holds about ``rows`` rows, is the same
    however the table is stored (fragments, batches, year files, read order), and a smaller
    sample taken with :func:`subsample` is nested in it. Sorted by symbol and date. Reads the
    table lazily: only the sample is ever in memory.
    """
    if not set(TRAINING_COLUMNS) <= set(features.lazy().collect_schema().names()):
        return pl.DataFrame(schema={"Symbol": pl.String, "Date": pl.String,
                                    **dict.fromkeys(FEATURES, pl.Float64),
                                    TARGET: pl.Int64, UNIFORM: pl.Float64})  # no table yet
    usable = features.lazy().select(TRAINING_COLUMNS).drop_nulls()
    # Counted on the numeric columns only (symbol and date are never null in the table).
    total = int(features.lazy().select(*FEATURES, TARGET).drop_nulls().select(pl.len())
                .collect().item())
    keep = min(1.0, rows / total) if total else 1.0
    uniform = (pl.struct("Symbol", "Date").hash(seed=_HASH_SEED).cast(pl.Float64)
               / 2.0 ** 64).alias(UNIFORM)
    return (usable.with_columns(uniform).filter(pl.col(UNIFORM) < keep)
            .collect(engine="streaming").sort("Symbol", "Date"))


def subsample(frame: pl.DataFrame, rows: int) -> pl.DataFrame:
    """The ``rows`` rows of ``frame`` with the smallest uniform draws (all when fewer)."""
    if frame.height <= rows:
        return frame
    return frame.filter(pl.col(UNIFORM) <= pl.col(UNIFORM).bottom_k(rows).max())


def held_out_symbols(symbols: Iterable[str], *, share: float, salt: str) -> set[str]:
    """A stable ``share`` of ``symbols``: those whose CRC-32 of salt and symbol is lowest.

    The same symbols whatever polars version or row order; when there are two or more, at
    least one held out and at least one not, so a small table can still be split.
    """
    draw = {s: zlib.crc32(f"{salt}:{s}".encode()) / 2.0 ** 32 for s in set(symbols)}
    chosen = {s for s, u in draw.items() if u < share}
    if not chosen and len(draw) >= 2:
        chosen = {min(draw, key=lambda s: (draw[s], s))}
    if len(chosen) == len(draw) >= 2:  # and at least one left to fit on
        chosen.discard(max(draw, key=lambda s: (draw[s], s)))
    return chosen


def symbol_split(frame: pl.DataFrame, *, share: float, salt: str) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Row indices (train, test): the test rows are every row of a ``share`` of symbols."""
    test = held_out_symbols(frame["Symbol"].unique().to_list(), share=share, salt=salt)
    mask = frame["Symbol"].is_in(sorted(test)).to_numpy()
    idx = np.arange(frame.height)
    return idx[~mask], idx[mask]


def arrays(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (both features) and ``y`` (volume) as float arrays."""
    return (frame.select(FEATURES).to_numpy().astype(np.float64),
            frame[TARGET].to_numpy().astype(np.float64))


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
    booster: "HistGradientBoostingRegressor"
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


def fit(x: np.ndarray, y: np.ndarray, *, shrinkage: float) -> VolumeModel:
    """Fit the correction booster on log volume ratios (bins from these rows too).

    One OpenMP thread: on the shared 2-core machine, two threads were 5-10 times slower than
    one whenever other processes held the cores (spinning workers), and at most 1.6 times
    faster when it was quiet.
    """
    ratio = np.where(x[:, 0] > 0, y / np.where(x[:, 0] > 0, x[:, 0], 1.0), 1.0)
    target = np.log(np.maximum(ratio, _RATIO_FLOOR))
    edges = [bin_edges(x[:, k]) for k in range(x.shape[1])]
    from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: PLC0415 - see top

    with threadpool_limits(limits=FIT_THREADS, user_api="openmp"):
        booster = HistGradientBoostingRegressor(**HGB_PARAMS).fit(encode(x, edges), target)
    return VolumeModel(edges, booster, shrinkage)


def train(frame: pl.DataFrame, *, rows: int = SAMPLE_ROWS) -> tuple[VolumeModel, dict[str, Any]]:
    """The production fit: choose ``s`` on validation symbols, then fit on the whole sample.

    ``frame`` is :func:`training_frame`'s output (or any subset of it); at most ``rows`` of
    it are used (:func:`subsample`). The booster is first fitted on the rows of the other
    symbols, ``s`` is chosen on the validation symbols' rows (:func:`select_shrinkage`), and
    the served booster is then fitted on every sampled row. Nothing here evaluates.
    """
    sample = subsample(frame, rows)
    x, y = arrays(sample)
    fit_rows, valid_rows = symbol_split(sample, share=VALIDATION_SYMBOLS, salt="validation")
    if len(fit_rows) == 0 or len(valid_rows) == 0:  # one symbol (or none)
        raise ValueError("training needs rows of at least two symbols")
    probe = fit(x[fit_rows], y[fit_rows], shrinkage=1.0)
    raw = probe.correction(x[valid_rows])
    actual, base = y[valid_rows], x[valid_rows, 0]
    naive = metrics(actual, base)
    scores = {s: metrics(actual, base * np.exp(s * raw)) for s in SHRINKAGE_GRID}
    shrinkage = select_shrinkage(scores, naive)
    model = fit(x, y, shrinkage=shrinkage)
    report = {
        "rule": "lowest validation log-MAE with MAE no worse than naive",
        "rows_sampled": sample.height, "rows_available": frame.height,
        "validation_rows": len(valid_rows),
        "validation_symbols": int(sample[valid_rows]["Symbol"].n_unique()),
        "naive": naive, "grid": {str(s): m for s, m in scores.items()}, "chosen": shrinkage,
    }
    return model, report


def evaluation_splits(frame: pl.DataFrame, *,
                      holdout_days: int = 182) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Row indices (train, test) of the three evaluations on ``frame``.

    ``held_out_symbols``: every row of 20 % of the symbols is tested, and no row of theirs
    is trained on. ``time_holdout``: the last ``holdout_days`` are tested. ``random_80_20``:
    the brief's ``train_test_split(test_size=0.2, random_state=42)`` of the rows.
    """
    idx = np.arange(frame.height)
    dates = frame["Date"].to_numpy()
    cut = str(np.datetime64(str(dates.max())) - np.timedelta64(holdout_days, "D"))
    from sklearn.model_selection import train_test_split  # noqa: PLC0415 - see top

    tr, te = train_test_split(idx, test_size=0.2, random_state=42)
    return {
        "held_out_symbols": symbol_split(frame, share=HELD_OUT_SYMBOLS, salt="evaluation"),
        "time_holdout": (idx[dates < cut], idx[dates >= cut]),
        "random_80_20": (np.sort(tr), np.sort(te)),
    }


def evaluate(frame: pl.DataFrame, *, rows: int = SAMPLE_ROWS,
             holdout_days: int = 182) -> dict[str, Any]:
    """Scores of the production procedure (:func:`train`) on three held-out splits.

    Everything, the shrinkage choice included, is fitted on each split's training rows
    only; the model and the naive forecast are scored on all of the split's test rows.
    """
    out: dict[str, Any] = {}
    for name, (train_rows, test_rows) in evaluation_splits(
            frame, holdout_days=holdout_days).items():
        if len(test_rows) == 0:
            out[name] = {"skipped": "no test rows"}
            continue
        try:
            model, report = train(frame[train_rows], rows=rows)
        except ValueError as exc:  # too few training symbols
            out[name] = {"skipped": str(exc)}
            continue
        x, y = arrays(frame[test_rows])
        scores, naive = metrics(y, model.predict(x)), metrics(y, x[:, 0])
        out[name] = {
            "rows_train": len(train_rows), "rows_fitted": report["rows_sampled"],
            "rows_test": len(test_rows),
            "symbols_train": int(frame[train_rows]["Symbol"].n_unique()),
            "symbols_test": int(frame[test_rows]["Symbol"].n_unique()),
            "shrinkage": model.shrinkage, "model": scores, "naive": naive,
            "change_pct": gains(scores, naive), "beats_naive": beats(scores, naive),
        }
    return out


def check_exact(model: VolumeModel, table: LookupModel, x: np.ndarray) -> float:
    """Largest relative difference between the booster and its lookup table on ``x``.

    Infinite when ``x`` has no rows: nothing compared is never a match.
    """
    if not len(x):
        return math.inf
    expected = model.predict(x)
    got = np.array([table.predict_one(a, b) for a, b in x])
    scale = np.maximum(np.abs(expected), 1.0)
    return float(np.max(np.abs(got - expected) / scale))


def validate_inputs(vol_moving_avg: float, adj_close_rolling_med: float) -> str | None:
    """Why a pair of API inputs is unusable, or None."""
    for name, value in (("vol_moving_avg", vol_moving_avg),
                        ("adj_close_rolling_med", adj_close_rolling_med)):
        if not math.isfinite(value):
            return f"{name} must be a finite number"
        if value < 0:
            return f"{name} must be >= 0"
    return None
