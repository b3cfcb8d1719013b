"""Honest evaluation of the ETH buy/sell/HODL daily model against simple baselines.

The input is a training set: one row per ETH daily close, sorted by date, with ``date``,
``close``, ``next_return`` (``log(close[t+1] / close[t])``, null on the last row), ``label``
(``"buy"``, ``"sell"`` or ``"hodl"``, null where the label horizon runs past the data) and
Float64 feature columns computed from data known at the close of day ``t``.

Validation is purged walk-forward, and the final year is held out and scored once:

- the last :data:`HOLDOUT_DAYS` rows are the hold-out; the model is fitted once on the rows
  before it, minus the purge gap, and scored once;
- the rows before the hold-out form expanding-window folds: the first ``min_train`` rows
  only ever train, the rest is cut into ``n_folds`` contiguous test blocks, and every fold
  trains on the rows before its test block except the last ``horizon`` of them, whose label
  windows ``[t, t + horizon]`` reach into the test block (the purge);
- training rows never follow a test row, so no embargo length can be violated: the
  embargo is infinite by construction, and :func:`check_splits` refuses any split (for
  example a shuffled K-fold) that trains after, inside or too close before its test block.

Every report carries four baselines beside the model: ``majority`` (the most frequent label
of the fold's training rows), ``always_hodl``, ``buy_and_hold`` and ``momentum_20d``. Each
gets the same classification measures (accuracy beside the majority prior, macro-F1,
balanced accuracy) and the same strategy measures after :data:`FEE` (10 bp) per unit of
position change (annualised Sharpe ratio, maximum drawdown, turnover). The verdict
(:data:`CRITERION`) says whether the model has an edge; without one, the served signal is the
best baseline, named as such. "No edge" is a valid result; a leaked edge is a defect.
"""

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from cryptodudez.features.labels import TARGET_COLUMNS

# scikit-learn is imported where a model is fitted or scored: about 1.8 s that every process
# loading the Dagster definitions (each run and step, the code server) paid otherwise.
if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier

CLASSES = ("buy", "hodl", "sell")  # the fixed order of every probability vector
BASELINES = ("majority", "always_hodl", "buy_and_hold", "momentum_20d")
# Equal hold-out Sharpe ratios (always_hodl and a "buy" majority trade exactly like buy and
# hold) go to the simplest rule, in this order.
TIE_ORDER = ("buy_and_hold", "always_hodl", "momentum_20d", "majority")
FEE = 0.001  # 10 bp of the traded notional per unit of position change
PERIODS_PER_YEAR = 365  # crypto trades every day
HOLDOUT_DAYS = 365  # the final year, scored once
MIN_TRAIN_DAYS = 365  # rows that only ever train (the first fold's minimum history)
MOMENTUM_DAYS = 20
INITIAL_POSITION = 1.0  # the start-up holds ETH before the first signal
FORBIDDEN_FEATURES = ("date", *TARGET_COLUMNS)  # the target and its ingredients
HGB_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05, "max_iter": 200, "max_leaf_nodes": 15, "min_samples_leaf": 40,
    "l2_regularization": 1.0, "early_stopping": False,
}
FIT_THREADS = 1  # one OpenMP thread: reproducible sums and no oversubscription on 2 cores
CRITERION = (
    "edge if, on the pooled walk-forward test rows AND on the final-year hold-out, the "
    "model's macro-F1 is above every baseline's macro-F1 AND its Sharpe ratio after fees is "
    "above every baseline's Sharpe ratio; otherwise no edge, and the served signal is the "
    "baseline with the highest hold-out Sharpe ratio (ties go to the simplest rule)"
)

Split = tuple[np.ndarray, np.ndarray]


class LeakageError(ValueError):
    """A split or feature set would let the future leak into training."""


# ---------------------------------------------------------------------------- splits
def min_rows(n_folds: int = 5, *, min_train: int = MIN_TRAIN_DAYS,
             holdout: int = HOLDOUT_DAYS) -> int:
    """The fewest rows :func:`walk_forward_splits` can split (one test row per fold)."""
    return min_train + n_folds + holdout


def max_horizon(*, min_train: int = MIN_TRAIN_DAYS) -> int:
    """The longest label horizon the walk-forward can purge: the first fold must train.

    Training rows end ``horizon`` rows before each test block, and the first block starts at
    row ``min_train``, so ``horizon`` must stay below ``min_train``.
    """
    return min_train - 1


def check_horizon(horizon: int, *, min_train: int = MIN_TRAIN_DAYS) -> None:
    """A ValueError naming ``horizon``, its value and the bound, if the folds cannot purge it."""
    longest = max_horizon(min_train=min_train)
    if not 1 <= horizon <= longest:
        raise ValueError(
            f"horizon must be 1..{longest} days for the walk-forward evaluation, got "
            f"{horizon}: the first fold trains on the first {min_train} rows (min_train) "
            f"and drops the last horizon rows before each test block (the purge)")


def walk_forward_splits(
    n_rows: int,
    *,
    horizon: int,
    n_folds: int = 5,
    min_train: int = MIN_TRAIN_DAYS,
    holdout: int = HOLDOUT_DAYS,
) -> list[Split]:
    """Purged expanding-window folds over the rows before the final hold-out.

    Args:
        n_rows: Rows of the whole (date-sorted) frame, hold-out included.
        horizon: Label horizon in rows (days); the purge gap before every test block.
        n_folds: Number of contiguous test blocks.
        min_train: Rows at the start that only ever train.
        holdout: Rows at the end that no fold touches.

    Returns:
        ``(train_idx, test_idx)`` integer arrays per fold, in time order. Training rows are
        ``[0, test_start - horizon)``; test blocks tile ``[min_train, n_rows - holdout)``.

    Raises:
        ValueError: If the rows cannot hold ``n_folds`` non-empty test blocks.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    check_horizon(horizon, min_train=min_train)
    need = min_rows(n_folds, min_train=min_train, holdout=holdout)
    if n_rows < need:
        raise ValueError(
            f"too few rows for the walk-forward evaluation: {n_folds} folds need at least "
            f"{need} rows ({min_train} that only train, one test row per fold and "
            f"{holdout} held out), got {n_rows}"
        )
    development = n_rows - holdout
    blocks = np.array_split(np.arange(min_train, development), n_folds)
    splits = [(np.arange(0, block[0] - horizon), block) for block in blocks]
    check_splits(splits, horizon, limit=development)
    return splits


def holdout_split(n_rows: int, *, horizon: int, holdout: int = HOLDOUT_DAYS) -> Split:
    """The one final-year split: train on every earlier row but the purge gap.

    Raises:
        ValueError: If the rows before the hold-out cannot cover the purge gap.
    """
    start = n_rows - holdout
    if start - horizon < 1:
        raise ValueError(f"{n_rows} rows cannot hold a {holdout}-row hold-out and training")
    split = (np.arange(0, start - horizon), np.arange(start, n_rows))
    check_splits([split], horizon)
    return split


def check_splits(splits: Sequence[Split], horizon: int, *, limit: int | None = None) -> None:
    """Refuse any split that could leak: the guard behind externally supplied splits.

    A split passes when its test indices are one contiguous increasing block and every
    training index lies before ``test_start - horizon`` (purged, and never after a test
    row). Shuffled K-fold splits fail both rules.

    Args:
        splits: ``(train_idx, test_idx)`` pairs.
        horizon: Label horizon in rows (the purge gap).
        limit: If given, no index may reach it (the hold-out starts there).

    Raises:
        LeakageError: On the first split that breaks a rule.
    """
    for k, (train, test) in enumerate(splits, start=1):
        train_idx, test_idx = np.asarray(train), np.asarray(test)
        if test_idx.size == 0 or train_idx.size == 0:
            raise LeakageError(f"fold {k}: empty training or test rows")
        if not np.all(np.diff(test_idx) == 1):
            raise LeakageError(
                f"fold {k}: test rows are not one contiguous time block (shuffled CV?)"
            )
        start = int(test_idx[0])
        if int(train_idx.max()) >= start - horizon:
            raise LeakageError(
                f"fold {k}: training row {int(train_idx.max())} is not before test start "
                f"{start} minus the {horizon}-row purge gap (shuffled or unpurged CV?)"
            )
        if limit is not None and max(int(train_idx.max()), int(test_idx[-1])) >= limit:
            raise LeakageError(f"fold {k}: reaches row {limit}, the start of the hold-out")


def hold_out_final_year(
    frame: pl.DataFrame, *, days: int = HOLDOUT_DAYS
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a date-sorted frame into development rows and the final-year hold-out.

    Returns:
        ``(development, holdout)``: all rows but the last ``days``, and those ``days`` rows.
    """
    _check_sorted(frame)
    return frame.head(frame.height - days), frame.tail(days)


def usable_features(frame: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """The ``columns`` with at least one known value before the hold-out year.

    Engagement snapshots are unknown before their delivery, so over history they are all
    null: a column the model could never see a value of is left out (and listed in the
    report's ``features``, by absence). Only the rows before the hold-out decide, so the
    year scored once informs nothing about the model, not even which columns it reads (it
    decided on every row until session 23). A frame too short for a hold-out decides on
    all its rows; ``evaluate`` refuses such a frame anyway.
    """
    development = (hold_out_final_year(frame)[0] if frame.height > HOLDOUT_DAYS else frame)
    if not columns:
        return []
    known = development.select(pl.col(list(columns)).is_not_null().any()).row(0)
    return [c for c, k in zip(columns, known, strict=True) if k]


# -------------------------------------------------------------------- input contract
def _check_sorted(frame: pl.DataFrame) -> None:
    if frame["date"].null_count() or not frame["date"].is_sorted() or (
        frame["date"].n_unique() != frame.height
    ):
        raise ValueError("the frame must have one row per date, sorted by date")


def validate_frame(frame: pl.DataFrame, feature_columns: Sequence[str], horizon: int) -> None:
    """Check the training-set contract and refuse features that are the target.

    Raises:
        LeakageError: If a feature column is ``date`` or one of the label's
            :data:`~cryptodudez.features.labels.TARGET_COLUMNS`.
        ValueError: On missing columns, unsorted dates, unknown labels or a bad horizon.
    """
    leaked = sorted(set(feature_columns) & set(FORBIDDEN_FEATURES))
    if leaked:
        raise LeakageError(f"feature columns include the target or its parts: {leaked}")
    missing = [c for c in ("date", "close", "next_return", "label", *feature_columns)
               if c not in frame.columns]
    if missing:
        raise ValueError(f"missing columns: {missing}")
    if not feature_columns:
        raise ValueError("no feature columns")
    if horizon < 1:
        raise ValueError("horizon must be at least 1 day")
    _check_sorted(frame)
    unknown = set(frame["label"].drop_nulls().unique().to_list()) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown labels: {sorted(unknown)}")


def feature_matrix(frame: pl.DataFrame, feature_columns: Sequence[str]) -> np.ndarray:
    """Features as a float64 matrix; nulls and non-finite values become NaN (missing)."""
    x = frame.select(pl.col(c).cast(pl.Float64) for c in feature_columns).to_numpy()
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(x), x, np.nan)


def _labels(frame: pl.DataFrame) -> np.ndarray:
    """Labels as an object array (``None`` where unlabelled)."""
    return np.asarray(frame["label"].to_list(), dtype=object)


def _next_returns(frame: pl.DataFrame) -> np.ndarray:
    return np.asarray(frame["next_return"].cast(pl.Float64).to_numpy(), dtype=np.float64)


# ---------------------------------------------------------------------------- model
@dataclass(frozen=True)
class SignalModel:
    """A fitted booster and the feature columns it reads."""

    booster: "HistGradientBoostingClassifier"
    feature_columns: tuple[str, ...]

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        """Class probabilities, one row per frame row, columns in :data:`CLASSES` order."""
        with threadpool_limits(limits=FIT_THREADS, user_api="openmp"):
            raw = self.booster.predict_proba(feature_matrix(frame, self.feature_columns))
        proba = np.zeros((frame.height, len(CLASSES)))
        for j, cls in enumerate(self.booster.classes_):
            proba[:, CLASSES.index(str(cls))] = raw[:, j]
        return proba


def fit_model(frame: pl.DataFrame, feature_columns: Sequence[str], *, seed: int = 0) -> SignalModel:
    """Fit the gradient-boosting classifier on the frame's labelled rows.

    Deterministic: fixed ``random_state``, no early stopping, one OpenMP thread.

    Raises:
        ValueError: If the labelled rows hold fewer than two classes.
    """
    labelled = frame.filter(pl.col("label").is_not_null())
    if labelled["label"].n_unique() < 2:
        raise ValueError("training rows hold fewer than two classes")
    from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: PLC0415 - see top

    booster = HistGradientBoostingClassifier(**HGB_PARAMS, random_state=seed)
    with threadpool_limits(limits=FIT_THREADS, user_api="openmp"):
        booster.fit(feature_matrix(labelled, feature_columns), labelled["label"].to_numpy())
    return SignalModel(booster, tuple(feature_columns))


def actions_from_proba(proba: np.ndarray) -> np.ndarray:
    """The most probable class per row (ties go to the earlier class of :data:`CLASSES`)."""
    return np.asarray(CLASSES, dtype=object)[np.argmax(proba, axis=1)]


# ------------------------------------------------------------------------ baselines
def majority_class(labels: Sequence[Any] | np.ndarray) -> str:
    """The most frequent label (nulls ignored; ties go to the earlier class of CLASSES)."""
    counts = [sum(1 for v in labels if v == cls) for cls in CLASSES]
    return CLASSES[int(np.argmax(counts))]


def momentum_actions(
    close: Sequence[float] | np.ndarray, *, days: int = MOMENTUM_DAYS
) -> np.ndarray:
    """Buy when ``close[t] / close[t - days] - 1 > 0``, else sell; HODL without information.

    HODL (keep the position) without ``days`` of history and when either close is missing
    (null or NaN): no information is no trade, never a sell. Uses closes up to ``t`` only:
    the action of day ``t`` is final at its close.
    """
    c = np.asarray(close, dtype=np.float64)
    actions = np.full(c.size, "hodl", dtype=object)
    if c.size > days:
        now, then = c[days:], c[:-days]
        known = np.isfinite(now) & np.isfinite(then)
        with np.errstate(invalid="ignore", divide="ignore"):
            up = now / then - 1.0 > 0
        actions[days:] = np.where(known, np.where(up, "buy", "sell"), "hodl")
    return actions


def baseline_actions(
    frame: pl.DataFrame, train_idx: np.ndarray, test_idx: np.ndarray
) -> dict[str, np.ndarray]:
    """Each baseline's action on the test rows; ``majority`` learns from the training rows."""
    n = len(test_idx)
    majority = majority_class(_labels(frame)[train_idx])
    momentum = momentum_actions(frame["close"].to_numpy())[test_idx]
    return {
        "majority": np.full(n, majority, dtype=object),
        "always_hodl": np.full(n, "hodl", dtype=object),
        "buy_and_hold": np.full(n, "buy", dtype=object),
        "momentum_20d": momentum,
    }


# ---------------------------------------------------------------- strategy measures
def positions(
    actions: Sequence[str] | np.ndarray, *, initial: float = INITIAL_POSITION
) -> np.ndarray:
    """Position after each day's action: buy -> 1, sell -> 0, hodl keeps the previous one."""
    out = np.empty(len(actions))
    current = initial
    for i, action in enumerate(actions):
        if action == "buy":
            current = 1.0
        elif action == "sell":
            current = 0.0
        out[i] = current
    return out


def strategy_returns(
    actions: Sequence[str] | np.ndarray,
    next_return: Sequence[float] | np.ndarray,
    *,
    fee: float = FEE,
    initial: float = INITIAL_POSITION,
) -> np.ndarray:
    """Net daily log returns of trading the actions at each close.

    The position set at the close of day ``t`` earns ``next_return[t]``; each day pays
    ``fee`` per unit of position change, the first day's change from ``initial`` included,
    as ``log(1 - fee * |change|)``. Days without a next return (the last row) are not traded.
    """
    r = np.asarray(next_return, dtype=np.float64)
    keep = np.isfinite(r)
    pos = positions(np.asarray(actions, dtype=object)[keep], initial=initial)
    change = np.abs(np.diff(pos, prepend=initial))
    return pos * r[keep] + np.log1p(-fee * change)


def sharpe_ratio(log_returns: np.ndarray, *, periods: int = PERIODS_PER_YEAR) -> float:
    """Annualised Sharpe ratio (zero rate): ``mean / std * sqrt(periods)``; 0 if flat."""
    r = np.asarray(log_returns, dtype=np.float64)
    if r.size < 2:
        return 0.0
    std = float(np.std(r, ddof=1))
    return 0.0 if std < 1e-12 else float(np.mean(r) / std * math.sqrt(periods))


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction of the peak (0.25 = -25 %)."""
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0:
        return 0.0
    peak = np.maximum.accumulate(e)
    return float(np.max(1.0 - e / peak))


def equity_curve(log_returns: np.ndarray) -> np.ndarray:
    """Equity from 1.0: the starting value followed by ``exp(cumsum(log_returns))``."""
    return np.exp(np.concatenate([[0.0], np.cumsum(np.asarray(log_returns, dtype=np.float64))]))


def strategy_metrics(
    actions: Sequence[str] | np.ndarray,
    next_return: Sequence[float] | np.ndarray,
    *,
    fee: float = FEE,
) -> dict[str, float | int]:
    """Sharpe, maximum drawdown, turnover and total return of trading the actions."""
    r = np.asarray(next_return, dtype=np.float64)
    keep = np.isfinite(r)
    pos = positions(np.asarray(actions, dtype=object)[keep])
    change = np.abs(np.diff(pos, prepend=INITIAL_POSITION))
    net = strategy_returns(actions, r, fee=fee)
    return {
        "sharpe": sharpe_ratio(net),
        "max_drawdown": max_drawdown(equity_curve(net)),
        "turnover": float(change.mean()) if change.size else 0.0,
        "total_turnover": float(change.sum()),
        "total_return": float(math.expm1(float(net.sum()))),
        "n_days": int(net.size),
    }


def classification_metrics(
    labels: Sequence[Any] | np.ndarray,
    actions: Sequence[str] | np.ndarray,
    *,
    majority: str | Sequence[str] | np.ndarray,
) -> dict[str, float | int | None]:
    """Accuracy beside the majority prior, macro-F1 and balanced accuracy on labelled rows.

    ``majority`` is the training rows' most frequent class (or one per row, when pooled
    folds had different majorities); its share of these rows is the prior. Balanced
    accuracy is the mean recall over the classes present in the labels.
    """
    y = np.asarray(labels, dtype=object)
    keep = np.array([v is not None for v in y], dtype=bool)
    prior = np.broadcast_to(np.asarray(majority, dtype=object), y.shape)[keep]
    y_true, y_pred = y[keep].astype(str), np.asarray(actions, dtype=object)[keep].astype(str)
    if y_true.size == 0:
        return {"accuracy": None, "majority_prior": None, "macro_f1": None,
                "balanced_accuracy": None, "n_labelled": 0}
    present = [c for c in CLASSES if c in set(y_true)]
    from sklearn.metrics import accuracy_score, f1_score, recall_score  # noqa: PLC0415

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "majority_prior": float(np.mean(y_true == prior.astype(str))),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "balanced_accuracy": float(
            recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "n_labelled": int(y_true.size),
    }


def class_balance(labels: Sequence[Any] | np.ndarray) -> dict[str, float]:
    """Share of each class among the labelled rows."""
    known = [v for v in labels if v is not None]
    return {c: (sum(1 for v in known if v == c) / len(known) if known else 0.0) for c in CLASSES}


# ------------------------------------------------------------------------ evaluation
def _segment(
    frame: pl.DataFrame, train_idx: np.ndarray, test_idx: np.ndarray,
    feature_columns: Sequence[str], seed: int,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fit on the training rows; model probabilities and every baseline's test actions."""
    model = fit_model(frame[train_idx], feature_columns, seed=seed)
    return model.predict_proba(frame[test_idx]), baseline_actions(frame, train_idx, test_idx)


def _scores(
    labels: np.ndarray, next_return: np.ndarray, strategies: Mapping[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """Classification and strategy measures of every strategy on the same rows."""
    return {
        name: {**classification_metrics(labels, actions, majority=strategies["majority"]),
               **strategy_metrics(actions, next_return)}
        for name, actions in strategies.items()
    }


def _block(
    frame: pl.DataFrame, train_idx: np.ndarray, test_idx: np.ndarray,
    strategies: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """The report entry of one evaluated block of test rows."""
    dates = frame["date"]
    labels, returns = _labels(frame)[test_idx], _next_returns(frame)[test_idx]
    return {
        "train": {"start": str(dates[int(train_idx[0])]), "end": str(dates[int(train_idx[-1])]),
                  "rows": len(train_idx)},
        "test": {"start": str(dates[int(test_idx[0])]), "end": str(dates[int(test_idx[-1])]),
                 "rows": len(test_idx)},
        "class_balance": class_balance(labels),
        "scores": _scores(labels, returns, strategies),
    }


def _beats_all(scores: Mapping[str, Mapping[str, Any]]) -> bool:
    """The model's macro-F1 and Sharpe are both above every baseline's."""
    model = scores["model"]
    if model["macro_f1"] is None:
        return False
    return all(
        model["macro_f1"] > (scores[b]["macro_f1"] or 0.0) and model["sharpe"] > scores[b]["sharpe"]
        for b in BASELINES
    )


def verdict(
    pooled: Mapping[str, Mapping[str, Any]], holdout: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Apply :data:`CRITERION` to the pooled walk-forward and hold-out scores."""
    best = max(TIE_ORDER, key=lambda b: (holdout[b]["sharpe"], -TIE_ORDER.index(b)))
    edge = _beats_all(pooled) and _beats_all(holdout)
    m, b = holdout["model"], holdout[best]
    f1 = "n/a" if m["macro_f1"] is None else f"{m['macro_f1']:.3f}"
    bf1 = "n/a" if b["macro_f1"] is None else f"{b['macro_f1']:.3f}"
    detail = (f"hold-out model macro-F1 {f1}, Sharpe {m['sharpe']:.2f}; best baseline "
              f"{best}: macro-F1 {bf1}, Sharpe {b['sharpe']:.2f}")
    summary = (
        f"edge: the model beats every baseline on walk-forward and hold-out ({detail}); "
        "serving the model"
        if edge else
        f"no edge: the model does not beat every baseline on both walk-forward and hold-out "
        f"({detail}); serving the best baseline, {best}"
    )
    return {"edge": edge, "served": "model" if edge else f"baseline:{best}",
            "best_baseline": best, "criterion": CRITERION, "summary": summary}


def _json_float(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def _prediction_rows(
    frame: pl.DataFrame, test_idx: np.ndarray, segment: str, proba: np.ndarray,
    baselines: Mapping[str, np.ndarray],
) -> list[dict[str, Any]]:
    """Out-of-sample rows: date, segment, label, model action and probabilities, baselines."""
    dates, labels, returns = frame["date"], _labels(frame), _next_returns(frame)
    actions = actions_from_proba(proba)
    rows = []
    for k, i in enumerate(test_idx):
        row: dict[str, Any] = {
            "date": str(dates[int(i)]), "segment": segment, "label": labels[i],
            "next_return": _json_float(returns[i]), "action": str(actions[k]),
        }
        row.update({f"p_{c}": float(proba[k, j]) for j, c in enumerate(CLASSES)})
        row.update({name: str(a[k]) for name, a in baselines.items()})
        rows.append(row)
    return rows


def evaluate(
    frame: pl.DataFrame,
    feature_columns: Sequence[str],
    *,
    horizon: int,
    n_folds: int = 5,
    splits: Sequence[Split] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Purged walk-forward and final-year evaluation of the model against the baselines.

    Verdict criterion (:data:`CRITERION`): the model has an edge only if, on the pooled
    walk-forward test rows and on the hold-out, its macro-F1 is above every baseline's and
    its Sharpe ratio after fees is above every baseline's. Otherwise the report says
    "no edge" and ``served`` names the baseline with the highest hold-out Sharpe ratio.

    Args:
        frame: The training set (see the module docstring), sorted by date.
        feature_columns: Columns the model reads.
        horizon: Label horizon in days (the purge gap).
        n_folds: Walk-forward folds when ``splits`` is not given.
        splits: Externally supplied ``(train_idx, test_idx)`` folds over the rows before the
            hold-out; they pass :func:`check_splits` or the call fails (shuffled CV does).
        seed: The booster's ``random_state``.

    Returns:
        A JSON-serialisable report with keys ``horizon``, ``fee_bp``, ``seed``, ``features``,
        ``classes``, ``baselines``, ``params``, ``data``, ``walk_forward`` (``folds``: one
        entry per fold, and ``pooled``), ``holdout`` (each entry: ``train``, ``test``,
        ``class_balance`` and ``scores`` per strategy, ``model`` and every baseline),
        ``predictions`` (one row per out-of-sample day) and ``verdict``.

    Raises:
        LeakageError: If a split could leak or a feature column is the target.
        ValueError: If the frame breaks the input contract or is too short.
    """
    validate_frame(frame, feature_columns, horizon)
    n = frame.height
    if splits is None:
        folds = walk_forward_splits(n, horizon=horizon, n_folds=n_folds)
    else:
        folds = [(np.asarray(tr), np.asarray(te)) for tr, te in splits]
        check_splits(folds, horizon, limit=n - HOLDOUT_DAYS)
    tested = np.concatenate([te for _, te in folds])
    if np.unique(tested).size != tested.size:
        raise ValueError("test blocks of different folds overlap")

    fold_reports, predictions, probas, pooled_base = [], [], [], []
    for k, (train_idx, test_idx) in enumerate(folds, start=1):
        proba, base = _segment(frame, train_idx, test_idx, feature_columns, seed)
        fold_reports.append({"fold": k, **_block(
            frame, train_idx, test_idx, {"model": actions_from_proba(proba), **base})})
        predictions += _prediction_rows(frame, test_idx, f"fold_{k}", proba, base)
        probas.append(proba)
        pooled_base.append(base)
    pooled_actions = {
        "model": actions_from_proba(np.concatenate(probas)),
        **{b: np.concatenate([p[b] for p in pooled_base]) for b in BASELINES},
    }
    labels, returns = _labels(frame)[tested], _next_returns(frame)[tested]
    pooled: dict[str, Any] = {
        "test": {"rows": int(tested.size)}, "class_balance": class_balance(labels),
        "scores": _scores(labels, returns, pooled_actions),
    }

    train_idx, test_idx = holdout_split(n, horizon=horizon)
    proba, base = _segment(frame, train_idx, test_idx, feature_columns, seed)
    holdout = _block(frame, train_idx, test_idx, {"model": actions_from_proba(proba), **base})
    predictions += _prediction_rows(frame, test_idx, "holdout", proba, base)

    return {
        "horizon": horizon, "fee_bp": round(FEE * 1e4, 6), "seed": seed,
        "features": list(feature_columns), "classes": list(CLASSES),
        "baselines": list(BASELINES), "params": dict(HGB_PARAMS),
        "data": {"start": str(frame["date"][0]), "end": str(frame["date"][-1]), "rows": n,
                 "holdout_rows": HOLDOUT_DAYS},
        "walk_forward": {"folds": fold_reports, "pooled": pooled},
        "holdout": holdout,
        "predictions": predictions,
        "verdict": verdict(pooled["scores"], holdout["scores"]),
    }


def report_equity(
    report: Mapping[str, Any], *, segment: str = "holdout"
) -> dict[str, tuple[list[dt.date], list[float]]]:
    """Equity curves after fees of the model and every baseline, from a report's predictions.

    Args:
        report: An :func:`evaluate` report.
        segment: ``"holdout"``, or ``"walk_forward"`` for the pooled fold rows (one run from
            the initial position, as in the pooled scores).

    Returns:
        ``name -> (dates, equity)``: 1.0 at the first test date, then the equity at each
        following close (a daily series: the return of day ``t`` is realised on ``t + 1``).
    """
    rows = [r for r in report["predictions"]
            if (r["segment"] == "holdout") == (segment == "holdout")]
    rows = [r for r in rows if r["next_return"] is not None]
    if not rows:
        return {}
    start = dt.date.fromisoformat(rows[0]["date"])
    dates = [start] + [dt.date.fromisoformat(r["date"]) + dt.timedelta(days=1) for r in rows]
    returns = np.array([r["next_return"] for r in rows], dtype=np.float64)
    fee = float(report["fee_bp"]) / 1e4
    return {
        name: (dates, equity_curve(strategy_returns([r[key] for r in rows], returns,
                                                    fee=fee)).tolist())
        for name, key in (("model", "action"), *((b, b) for b in BASELINES))
    }


# -------------------------------------------------------------------------- serving
def final_signals(
    frame: pl.DataFrame,
    feature_columns: Sequence[str],
    report: Mapping[str, Any],
    *,
    horizon: int,
    seed: int = 0,
) -> pl.DataFrame:
    """The served signal for every row: the model refitted on all labels, or the baseline.

    If the report serves the model, it is refitted on every labelled row (the last
    ``horizon`` rows are unlabelled and so left out) and predicts every row; rows whose
    label it was fitted on have ``in_sample`` true, and their probabilities are not
    out-of-sample. If a baseline is served, its actions are returned with one-hot
    probabilities (1.0 for the action) and ``source`` names it (``"baseline:<name>"``);
    only the majority baseline learns from labels, so only its labelled rows are in-sample.

    Returns:
        Columns ``date``, ``action``, ``p_buy``, ``p_hodl``, ``p_sell``, ``source`` and
        ``in_sample``, one row per frame row.

    Raises:
        ValueError: If the report was made for other features or another horizon.
    """
    validate_frame(frame, feature_columns, horizon)
    if report["horizon"] != horizon or list(report["features"]) != list(feature_columns):
        raise ValueError("the report was made for another horizon or other features")
    served = str(report["verdict"]["served"])
    labelled = frame["label"].is_not_null().to_numpy()
    if served == "model":
        proba = fit_model(frame, feature_columns, seed=seed).predict_proba(frame)
        actions, in_sample = actions_from_proba(proba), labelled
    else:
        name = served.removeprefix("baseline:")
        rows = np.arange(frame.height)
        actions = baseline_actions(frame, rows[labelled], rows)[name]
        proba = np.array([[float(a == c) for c in CLASSES] for a in actions]).reshape(-1, 3)
        in_sample = labelled if name == "majority" else np.zeros(frame.height, dtype=bool)
    return pl.DataFrame({
        "date": frame["date"],
        "action": [str(a) for a in actions],
        **{f"p_{c}": proba[:, j] for j, c in enumerate(CLASSES)},
        "source": [served] * frame.height,
        "in_sample": in_sample.astype(bool),
    })
