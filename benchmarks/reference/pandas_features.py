"""Reference for ``rolling_features``: the straightforward pandas implementation.

Per symbol, in date order, the mean of ``Volume`` and the median of ``Adj Close`` over the
30 most recent rows including the current one; NaN until a symbol has 30 rows (pandas'
default ``min_periods`` equals the window).
"""

import pandas as pd

WINDOW = 30


def rolling_features_pandas(bars: pd.DataFrame, window: int = WINDOW) -> pd.DataFrame:
    """``bars`` sorted by symbol and date, with ``vol_moving_avg`` and ``adj_close_rolling_med``."""
    df = bars.sort_values(["Symbol", "Date"], kind="stable")
    grouped = df.groupby("Symbol", sort=False)
    df["vol_moving_avg"] = (
        grouped["Volume"].rolling(window).mean().reset_index(level=0, drop=True)
    )
    df["adj_close_rolling_med"] = (
        grouped["Adj Close"].rolling(window).median().reset_index(level=0, drop=True)
    )
    return df
