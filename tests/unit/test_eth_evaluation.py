"""ETH signal evaluation: leak-proof splits, strategy P&L, baselines, verdict and charts."""

import datetime as dt
import json
import math
import re
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.model_selection import KFold, TimeSeriesSplit

from cryptodudez.checks import features as fchecks
from cryptodudez.features import charts
from cryptodudez.features import evaluation as ev
from serving.signal_store import ServedSignals, SignalRow

# Its tests stay on one xdist worker (./run test uses --dist loadgroup), so the module's
# evaluations are computed once.
pytestmark = pytest.mark.xdist_group("eth_evaluation")

ROWS = 1_500
NOISE = [f"noise_{k}" for k in range(5)]


def _training_set(n: int = ROWS, *, horizon: int = 1, seed: int = 3) -> pl.DataFrame:
    """A seeded random-walk ETH with +-1 % band labels, noise features and a leaked one.

    ``leak`` is the label's own forward return: known only after ``horizon`` more closes.
    """
    rng = np.random.default_rng(seed)
    close = 1_000.0 * np.exp(np.concatenate([[0.0], np.cumsum(rng.normal(0, 0.035, n - 1))]))
    next_return = np.append(np.log(close[1:] / close[:-1]), np.nan)
    forward = np.full(n, np.nan)
    forward[: n - horizon] = np.log(close[horizon:] / close[:-horizon])
    label = np.where(forward > 0.01, "buy", np.where(forward < -0.01, "sell", "hodl"))
    start = dt.date(2019, 1, 1)
    return pl.DataFrame({
        "date": [start + dt.timedelta(days=i) for i in range(n)],
        "close": close,
        "next_return": pl.Series(next_return, nan_to_null=True),
        "label": pl.Series([None if np.isnan(f) else str(x) for f, x in zip(forward, label,
                                                                              strict=True)],
                           dtype=pl.String),
        **{name: rng.normal(size=n) for name in NOISE},
        "leak": pl.Series(forward, nan_to_null=True),
    })


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return _training_set()


@pytest.fixture(scope="module")
def noise_report(frame: pl.DataFrame) -> dict[str, Any]:
    return ev.evaluate(frame, NOISE, horizon=1)


@pytest.fixture(scope="module")
def leak_report(frame: pl.DataFrame) -> dict[str, Any]:
    return ev.evaluate(frame, ["leak"], horizon=1)


# ---------------------------------------------------------------------------- splits
@pytest.mark.parametrize("horizon", [1, 7])
def test_every_fold_is_purged_by_exactly_the_horizon(horizon: int) -> None:
    splits = ev.walk_forward_splits(2_000, horizon=horizon, n_folds=5)
    assert len(splits) == 5
    for train, test in splits:
        assert train[0] == 0 and np.all(np.diff(train) == 1)        # expanding window
        assert train[-1] == test[0] - horizon - 1                   # gap = horizon rows
        assert train.max() < test.min()


def test_the_final_year_is_in_no_fold_and_test_blocks_tile_the_rest() -> None:
    n = 2_000
    splits = ev.walk_forward_splits(n, horizon=7, n_folds=5, min_train=365)
    tested = np.concatenate([test for _, test in splits])
    assert np.array_equal(tested, np.arange(365, n - ev.HOLDOUT_DAYS))
    for train, test in splits:
        assert np.all(np.diff(test) == 1)
        assert max(train.max(), test.max()) < n - ev.HOLDOUT_DAYS
    train, test = ev.holdout_split(n, horizon=7)
    assert np.array_equal(test, np.arange(n - 365, n))
    assert train[-1] == n - 365 - 7 - 1


def test_hold_out_final_year_is_the_last_365_rows(frame: pl.DataFrame) -> None:
    development, holdout = ev.hold_out_final_year(frame)
    assert holdout.height == 365 and development.height == frame.height - 365
    assert holdout["date"][0] > development["date"][-1]
    with pytest.raises(ValueError, match="sorted"):
        ev.hold_out_final_year(frame.reverse())


def test_which_columns_reach_the_model_is_decided_before_the_hold_out(
        frame: pl.DataFrame) -> None:
    n = frame.height
    first_holdout_row = pl.int_range(pl.len()) >= n - ev.HOLDOUT_DAYS
    marked = frame.with_columns(
        # known only in the hold-out year: the hold-out must not decide it is usable
        only_in_holdout=pl.when(first_holdout_row).then(1.0),
        # known on the last development day alone: enough
        last_development_day=pl.when(pl.int_range(pl.len()) == n - ev.HOLDOUT_DAYS - 1)
        .then(1.0),
        never=pl.lit(None, dtype=pl.Float64))
    columns = ["only_in_holdout", "last_development_day", "never", *NOISE]
    assert ev.usable_features(marked, columns) == ["last_development_day", *NOISE]
    assert ev.usable_features(marked, []) == []


def test_shuffled_kfold_is_refused_by_evaluate(frame: pl.DataFrame) -> None:
    development = np.arange(frame.height - ev.HOLDOUT_DAYS)
    shuffled = list(KFold(5, shuffle=True, random_state=0).split(development))
    with pytest.raises(ev.LeakageError, match="contiguous"):
        ev.evaluate(frame, NOISE, horizon=1, splits=shuffled)


def test_unshuffled_kfold_trains_after_its_test_block_and_is_refused(frame: pl.DataFrame) -> None:
    development = np.arange(frame.height - ev.HOLDOUT_DAYS)
    with pytest.raises(ev.LeakageError, match="purge"):
        ev.evaluate(frame, NOISE, horizon=1, splits=list(KFold(5).split(development)))


def test_training_after_the_test_block_is_refused() -> None:
    test = np.arange(500, 600)
    train = np.concatenate([np.arange(0, 490), np.arange(700, 800)])
    with pytest.raises(ev.LeakageError):
        ev.check_splits([(train, test)], horizon=1)
    ev.check_splits([(np.arange(0, 490), test)], horizon=1)     # the same fold, forward only


@pytest.mark.parametrize("horizon", [1, 7])
def test_the_purge_gap_is_enforced_to_the_row(horizon: int) -> None:
    unpurged = list(TimeSeriesSplit(4, gap=horizon - 1).split(np.arange(1_000)))
    with pytest.raises(ev.LeakageError, match="purge"):
        ev.check_splits(unpurged, horizon)
    ev.check_splits(list(TimeSeriesSplit(4, gap=horizon).split(np.arange(1_000))), horizon)


def test_splits_reaching_into_the_hold_out_are_refused(frame: pl.DataFrame) -> None:
    end = frame.height - ev.HOLDOUT_DAYS
    splits = [(np.arange(0, 800), np.arange(802, end + 1))]
    with pytest.raises(ev.LeakageError, match="hold-out"):
        ev.evaluate(frame, NOISE, horizon=1, splits=splits)


@pytest.mark.parametrize("column", ["next_return", "label", "forward_return"])
def test_the_target_cannot_be_a_feature(frame: pl.DataFrame, column: str) -> None:
    with pytest.raises(ev.LeakageError):
        ev.evaluate(frame, [*NOISE, column], horizon=1)


# --------------------------------------------------------------------- strategy P&L
def _brute_force(actions: list[str], returns: list[float], fee: float) -> list[float]:
    position, out = 1.0, []
    for action, r in zip(actions, returns, strict=True):
        if math.isnan(r):
            continue
        new = {"buy": 1.0, "sell": 0.0}.get(action, position)
        out.append(new * r + math.log(1.0 - fee * abs(new - position)))
        position = new
    return out


ACTIONS = ["hodl", "sell", "hodl", "buy", "buy", "hodl", "sell", "sell"]
RETURNS = [0.02, -0.03, 0.01, 0.05, -0.02, 0.04, -0.01, math.nan]


def test_strategy_returns_match_a_brute_force_loop() -> None:
    got = ev.strategy_returns(ACTIONS, RETURNS, fee=0.001)
    fee = math.log(0.999)
    by_hand = [0.02, fee, 0.0, 0.05 + fee, -0.02, 0.04, fee]   # start long; hodl keeps position
    np.testing.assert_allclose(got, by_hand, atol=1e-15)
    np.testing.assert_allclose(got, _brute_force(ACTIONS, RETURNS, 0.001), atol=1e-15)
    rng = np.random.default_rng(0)
    actions = list(rng.choice(list(ev.CLASSES), 300))
    returns = list(rng.normal(0, 0.03, 300))
    np.testing.assert_allclose(ev.strategy_returns(actions, returns, fee=0.001),
                               _brute_force(actions, returns, 0.001), atol=1e-15)


def test_the_first_day_pays_for_leaving_the_initial_position() -> None:
    np.testing.assert_allclose(ev.strategy_returns(["sell"], [0.05]), [math.log(0.999)])
    np.testing.assert_allclose(ev.strategy_returns(["buy"], [0.05]), [0.05])


def test_strategy_metrics_of_the_hand_made_case() -> None:
    m = ev.strategy_metrics(ACTIONS, RETURNS, fee=0.001)
    assert m["n_days"] == 7
    assert m["total_turnover"] == 3.0 and m["turnover"] == pytest.approx(3 / 7)
    expected = sum(_brute_force(ACTIONS, RETURNS, 0.001))
    assert m["total_return"] == pytest.approx(math.expm1(expected))


def test_max_drawdown_of_a_known_curve() -> None:
    assert ev.max_drawdown(np.array([1.0, 2.0, 1.5, 3.0, 0.75, 1.0])) == pytest.approx(0.75)
    assert ev.max_drawdown(np.array([1.0, 1.1, 1.2])) == 0.0
    np.testing.assert_allclose(ev.equity_curve(np.log([2.0, 0.5])), [1.0, 2.0, 1.0])


def test_sharpe_ratio_of_a_known_series() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0])
    expected = 0.005 / math.sqrt(0.0005 / 3) * math.sqrt(365)
    assert ev.sharpe_ratio(r) == pytest.approx(expected)
    assert ev.sharpe_ratio(np.zeros(10)) == 0.0


def test_classification_metrics_of_a_known_case() -> None:
    labels = ["buy", "buy", "buy", "sell", "hodl", None]
    actions = ["buy", "buy", "sell", "sell", "buy", "sell"]
    m = ev.classification_metrics(labels, actions, majority="sell")
    assert m["n_labelled"] == 5
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["majority_prior"] == pytest.approx(0.2)
    assert m["macro_f1"] == pytest.approx(4 / 9)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)


# ------------------------------------------------------------------------ baselines
def test_momentum_uses_only_past_closes(frame: pl.DataFrame) -> None:
    close = frame["close"].to_numpy()
    full = ev.momentum_actions(close)
    for t in (0, 19, 20, 21, 100, 777, len(close) - 2):
        assert ev.momentum_actions(close[: t + 1])[t] == full[t]


def test_momentum_rule_on_a_hand_made_series() -> None:
    close = np.concatenate([np.linspace(100, 120, 21), [130.0, 90.0]])
    actions = ev.momentum_actions(close)
    assert list(actions[:20]) == ["hodl"] * 20              # no 20-day history yet
    assert list(actions[20:]) == ["buy", "buy", "sell"]    # 90 < close 20 days earlier


@pytest.mark.parametrize("missing", [float("nan"), None])
def test_momentum_holds_when_a_close_is_missing(missing: float | None) -> None:
    # a steadily rising series: every known 20-day return is positive
    close: list[float | None] = [100.0 + i for i in range(60)]
    close[25] = missing  # a blanked close, as NaN or as null
    actions = ev.momentum_actions(pl.Series(close, dtype=pl.Float64).to_numpy())
    assert actions[25] == "hodl"        # today's close is missing
    assert actions[45] == "hodl"        # the close 20 days earlier is missing: not a sell
    assert set(actions[20:25]) | set(actions[26:45]) | set(actions[46:]) == {"buy"}


def test_the_majority_baseline_learns_from_training_rows_only() -> None:
    n = 40
    frame = pl.DataFrame({
        "date": [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(n)],
        "close": np.linspace(100, 140, n),
        "next_return": np.full(n, 0.01),
        "label": ["sell"] * 15 + ["buy"] * 25,                  # the whole frame's majority: buy
    })
    base = ev.baseline_actions(frame, np.arange(0, 14), np.arange(30, 40))
    assert set(base["majority"]) == {"sell"}
    assert set(base["always_hodl"]) == {"hodl"} and set(base["buy_and_hold"]) == {"buy"}
    assert set(base["momentum_20d"]) == {"buy"}


# ----------------------------------------------------------------- evaluate, verdict
@pytest.mark.slow
def test_a_leaked_feature_shows_up_as_a_huge_edge(leak_report: dict[str, Any]) -> None:
    verdict = leak_report["verdict"]
    assert verdict["edge"] is True and verdict["served"] == "model"
    holdout = leak_report["holdout"]["scores"]
    assert holdout["model"]["macro_f1"] > 0.9
    assert holdout["model"]["sharpe"] > 5 * max(1.0, *(holdout[b]["sharpe"] for b in ev.BASELINES))


@pytest.mark.slow
def test_noise_features_have_no_edge_and_the_best_baseline_is_served(
    noise_report: dict[str, Any],
) -> None:
    verdict = noise_report["verdict"]
    holdout = noise_report["holdout"]["scores"]
    best = max(ev.BASELINES, key=lambda b: holdout[b]["sharpe"])
    assert verdict["edge"] is False
    assert verdict["served"] == f"baseline:{verdict['best_baseline']}"
    assert holdout[verdict["best_baseline"]]["sharpe"] == holdout[best]["sharpe"]
    assert verdict["summary"].startswith("no edge")
    pooled = noise_report["walk_forward"]["pooled"]["scores"]["model"]
    assert abs(pooled["accuracy"] - pooled["majority_prior"]) < 0.1


@pytest.mark.slow
def test_the_report_structure(noise_report: dict[str, Any], frame: pl.DataFrame) -> None:
    json.dumps(noise_report, allow_nan=False)
    assert {"walk_forward", "holdout", "predictions", "verdict", "horizon", "fee_bp"} <= set(
        noise_report)
    folds = noise_report["walk_forward"]["folds"]
    assert len(folds) == 5
    for block in [*folds, noise_report["walk_forward"]["pooled"], noise_report["holdout"]]:
        assert set(block["scores"]) == {"model", *ev.BASELINES}
        for scores in block["scores"].values():
            assert {"accuracy", "majority_prior", "macro_f1", "balanced_accuracy", "sharpe",
                    "max_drawdown", "turnover"} <= set(scores)
    for fold in folds:
        assert fold["test"]["start"] > fold["train"]["end"]
    assert noise_report["holdout"]["test"]["start"] == str(frame["date"][-365])
    predictions = noise_report["predictions"]
    assert len(predictions) == frame.height - 365
    assert len({p["date"] for p in predictions}) == len(predictions)
    for p in predictions[:50]:
        assert p["p_buy"] + p["p_hodl"] + p["p_sell"] == pytest.approx(1.0)


@pytest.mark.slow
def test_evaluate_is_deterministic(noise_report: dict[str, Any], frame: pl.DataFrame) -> None:
    assert ev.evaluate(frame, NOISE, horizon=1) == noise_report


@pytest.mark.slow
def test_equity_curves_agree_with_the_scores(noise_report: dict[str, Any]) -> None:
    for segment, block in (("holdout", noise_report["holdout"]),
                           ("walk_forward", noise_report["walk_forward"]["pooled"])):
        curves = ev.report_equity(noise_report, segment=segment)
        assert set(curves) == {"model", *ev.BASELINES}
        for name, (dates, equity) in curves.items():
            assert len(dates) == len(equity) == block["scores"][name]["n_days"] + 1
            assert equity[-1] - 1 == pytest.approx(block["scores"][name]["total_return"])


def _published(signals: pl.DataFrame) -> ServedSignals:
    """The final signals as the API would read them back."""
    rows = {r["date"]: SignalRow(date=r["date"], action=r["action"],
                                 probabilities={c: r[f"p_{c}"] for c in ev.CLASSES},
                                 features_as_of=dt.datetime.combine(r["date"], dt.time(),
                                                                    dt.UTC),
                                 in_sample=r["in_sample"])
            for r in signals.iter_rows(named=True)}
    return ServedSignals(version="v1", served=signals["source"][0], rows=rows,
                         first=min(rows), latest=max(rows))


def _baseline_by_hand(frame: pl.DataFrame, name: str) -> list[str]:
    """Each row's action of a baseline by a plain loop (not the evaluation's code)."""
    close = frame["close"].to_list()
    if name == "momentum_20d":
        return ["hodl" if t < 20 else "buy" if close[t] > close[t - 20] else "sell"
                for t in range(len(close))]
    counts = {c: frame["label"].to_list().count(c) for c in ev.CLASSES}
    majority = max(ev.CLASSES, key=lambda c: (counts[c], -ev.CLASSES.index(c)))
    return [{"always_hodl": "hodl", "buy_and_hold": "buy", "majority": majority}[name]
            ] * frame.height


@pytest.mark.slow
@pytest.mark.parametrize("name", ev.BASELINES)
def test_served_baseline_signals_are_one_hot_named_and_the_baselines(
    noise_report: dict[str, Any], frame: pl.DataFrame, name: str,
) -> None:
    verdict = {**noise_report["verdict"], "edge": False, "best_baseline": name,
               "served": f"baseline:{name}"}
    signals = ev.final_signals(frame, NOISE, {**noise_report, "verdict": verdict}, horizon=1)
    source = fchecks.verdict_actions(frame, verdict, feature_columns=NOISE, seed=0)
    assert fchecks.served_verdict_check(verdict, _published(signals), source).passed
    assert signals["action"].to_list() == _baseline_by_hand(frame, name)
    assert signals.height == frame.height
    assert set(signals["source"]) == {f"baseline:{name}"}
    probs = signals.select("p_buy", "p_hodl", "p_sell").to_numpy()
    assert set(np.unique(probs)) <= {0.0, 1.0} and np.all(probs.sum(axis=1) == 1.0)
    picked = np.array(ev.CLASSES)[probs.argmax(axis=1)]
    assert list(picked) == signals["action"].to_list()


@pytest.mark.slow
def test_served_model_marks_in_sample_rows(
    leak_report: dict[str, Any], frame: pl.DataFrame,
) -> None:
    signals = ev.final_signals(frame, ["leak"], leak_report, horizon=1)
    assert set(signals["source"]) == {"model"}
    assert signals["in_sample"].to_list() == frame["label"].is_not_null().to_list()
    assert not signals["in_sample"][-1]
    verdict = leak_report["verdict"]
    source = fchecks.verdict_actions(frame, verdict, feature_columns=["leak"], seed=0)
    assert fchecks.served_verdict_check(verdict, _published(signals), source).passed
    # a baseline's rows served under the model's name fail
    hodl = signals.with_columns(action=pl.lit("hodl"), p_buy=0.0, p_hodl=1.0, p_sell=0.0)
    assert not fchecks.served_verdict_check(verdict, _published(hodl), source).passed
    with pytest.raises(ValueError, match="another horizon"):
        ev.final_signals(frame, ["leak"], leak_report, horizon=7)


# --------------------------------------------------------------------------- charts
def test_price_chart_is_a_reproducible_png(frame: pl.DataFrame) -> None:
    head = frame.head(200)
    actions = ev.momentum_actions(head["close"].to_numpy())
    png = charts.price_with_signals(head["date"], head["close"], actions)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert charts.price_with_signals(head["date"], head["close"], actions) == png
    assert b"Software" not in png
    other = charts.price_with_signals(head["date"], head["close"], ["hodl"] * 200)
    assert other != png
    with pytest.raises(ValueError):
        charts.price_with_signals(head["date"], head["close"], actions[:10])


def test_equity_chart_is_a_reproducible_png() -> None:
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(100)]
    curves = {"model": (dates, np.exp(np.linspace(0, 0.3, 100))),
              "buy_and_hold": (dates, np.exp(np.linspace(0, -0.2, 100)))}
    png = charts.equity_curves(curves)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert charts.equity_curves(curves) == png
    assert charts.equity_curves({"model": curves["model"]}) != png
    with pytest.raises(ValueError):
        charts.equity_curves({})


@pytest.mark.parametrize("n_folds", [1, 5])
def test_min_rows_is_the_fewest_rows_the_folds_accept(n_folds: int) -> None:
    need = ev.min_rows(n_folds)
    assert len(ev.walk_forward_splits(need, horizon=7, n_folds=n_folds)) == n_folds
    with pytest.raises(ValueError, match=f"need at least {need} rows"):
        ev.walk_forward_splits(need - 1, horizon=7, n_folds=n_folds)


def test_too_few_rows_says_how_many_are_needed_not_a_negative_count() -> None:
    with pytest.raises(ValueError) as raised:
        ev.walk_forward_splits(100, horizon=1)
    assert str(raised.value) == (
        "too few rows for the walk-forward evaluation: 5 folds need at least 735 rows "
        "(365 that only train, one test row per fold and 365 held out), got 100")


@pytest.mark.parametrize("horizon", [0, 365, 366])
def test_a_horizon_the_folds_cannot_purge_is_named_with_its_bound(horizon: int) -> None:
    says = (f"horizon must be 1..364 days for the walk-forward evaluation, got {horizon}: "
            "the first fold trains on the first 365 rows (min_train)")
    with pytest.raises(ValueError, match=re.escape(says)):
        ev.check_horizon(horizon)
    with pytest.raises(ValueError, match=re.escape(says)):
        ev.walk_forward_splits(2000, horizon=horizon)


def test_the_longest_horizon_follows_min_train() -> None:
    """The longest horizon allowed is one the folds can purge, and one more is refused."""
    ev.check_horizon(ev.max_horizon())
    assert len(ev.walk_forward_splits(ev.min_rows(), horizon=ev.max_horizon())) == 5
    with pytest.raises(ValueError):
        ev.walk_forward_splits(ev.min_rows(), horizon=ev.max_horizon() + 1)
    with pytest.raises(ValueError, match=re.escape("horizon must be 1..99 days")):
        ev.check_horizon(100, min_train=100)
