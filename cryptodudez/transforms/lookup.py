"""The compiled volume model as the API serves it: a lookup table, standard library only.

:mod:`cryptodudez.transforms.volume_model` trains the model and compiles it into this form;
the serving workers import only this module, so they never load numpy or scikit-learn.
"""

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LookupModel:
    """The compiled model: bin edges of both features and the correction factor per cell.

    ``predict`` needs no numpy and no scikit-learn: two binary searches and a multiply.
    """

    edges_volume: list[float]
    edges_price: list[float]
    factors: list[list[float]]

    def predict_one(self, vol_moving_avg: float, adj_close_rolling_med: float) -> float:
        """Predicted volume for one pair of feature values."""
        i = bisect_left(self.edges_volume, vol_moving_avg)
        j = bisect_left(self.edges_price, adj_close_rolling_med)
        return vol_moving_avg * self.factors[i][j]

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"edges_volume": self.edges_volume, "edges_price": self.edges_price,
                "factors": self.factors}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LookupModel":
        """Inverse of :meth:`to_json`."""
        return cls(list(map(float, data["edges_volume"])), list(map(float, data["edges_price"])),
                   [list(map(float, row)) for row in data["factors"]])
