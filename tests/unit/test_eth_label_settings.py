"""The ETH training set's run config: checked up front, and which runs are served."""

import dagster as dg
import polars as pl
import pytest

from cryptodudez.assets.eth import LabelSettings
from cryptodudez.checks import features as fchecks
from cryptodudez.features import evaluation as ev
from cryptodudez.features.labels import LabelConfig


@pytest.mark.parametrize(("settings", "says"), [
    ({"horizon": 365}, "eth_training_set config: horizon must be 1..364 days for the "
                       "walk-forward evaluation, got 365: the first fold trains on the first "
                       "365 rows (min_train)"),
    # one range told whatever the side: 0 was told 1..365, then 365 refused (QA)
    ({"horizon": 400}, "eth_training_set config: horizon must be 1..364 days for the "
                       "walk-forward evaluation, got 400"),
    ({"horizon": 0}, "eth_training_set config: horizon must be 1..364 days for the "
                     "walk-forward evaluation, got 0"),
    ({"band": -0.5}, "eth_training_set config: band must be >= 0, got -0.5"),
])
def test_a_config_the_evaluation_cannot_use_is_refused_naming_field_value_and_bound(
        settings: dict[str, float], says: str) -> None:
    with pytest.raises(dg.Failure) as raised:
        LabelSettings(**settings).label_config()  # type: ignore[arg-type]
    assert str(raised.value.description).startswith(says)


def test_the_bound_is_the_evaluations_own() -> None:
    """The longest horizon the walk-forward accepts is accepted, one day more is refused."""
    longest = ev.max_horizon()
    assert longest == ev.MIN_TRAIN_DAYS - 1
    assert LabelSettings(horizon=longest).label_config().horizon == longest
    assert len(ev.walk_forward_splits(ev.min_rows(), horizon=longest)) == 5
    with pytest.raises(dg.Failure, match=rf"horizon must be 1\.\.{longest} days"):
        LabelSettings(horizon=longest + 1).label_config()


@pytest.mark.parametrize(("settings", "served"), [
    ({}, True),                                         # the production definition
    ({"serve": False}, False),                          # asked not to
    ({"horizon": 7, "band": 0.03}, False),              # another definition: an experiment
    ({"method": "triple_barrier"}, False),
    ({"band_kind": "volatility", "band": 0.5}, False),
    ({"horizon": 7, "band": 0.03, "serve": True}, True),  # explicitly served
])
def test_only_the_production_labels_or_an_explicit_serve_are_served(
        settings: dict[str, object], served: bool) -> None:
    assert LabelSettings(**settings).serves() is served  # type: ignore[arg-type]


def test_a_label_check_that_was_not_recomputed_says_so() -> None:
    skipped = fchecks.labels_check(None, LabelConfig(method="triple_barrier"))
    assert skipped.metadata["recomputed"].value is False  # type: ignore[union-attr]
    assert "nothing was compared" in str(skipped.metadata["not_recomputed"].value)
    assert skipped.description is not None
    assert skipped.description.startswith("not recomputed for triple_barrier/fixed labels")
    assert skipped.severity == dg.AssetCheckSeverity.WARN
    compared = fchecks.labels_check(pl.DataFrame({"date": [], "label": []}), LabelConfig())
    assert compared.passed
    assert compared.metadata["recomputed"].value is True  # type: ignore[union-attr]
