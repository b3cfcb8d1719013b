"""The price / sentiment correlation of the real CryptoMood files, as a committed result.

Reads the shipped sample (every real line; ``tests/unit/test_cryptomood_datasets.py`` proves
it equals ``../shared/data/cryptomood/``) through the lake engine, computes the default grid
of the ``mood_correlation`` asset and a wider one, and the pooled artefacts of the public
solution, and writes ``benchmarks/results/mood_correlation_real.json``. ``--check`` fails
when the committed file differs (a test runs it). Usage::

    python scripts/mood_report.py [--check]
"""

import json
from pathlib import Path
from typing import Any

from cryptodudez.datasets.specs import DATASETS
from cryptodudez.generated import write_or_check
from cryptodudez.ingest import ingest_members, unpack
from cryptodudez.mood import results
from cryptodudez.mood.series import backward_pooled_r, nearest_pooled_r

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT / "samples" / "cryptomood_sample.zip"
OUT = PROJECT / "benchmarks" / "results" / "mood_correlation_real.json"
GRIDS = {
    "default": results.MoodParams(coins=("BTC", "ETH", "LTC"), buckets=("PT10S", "PT1M"),
                                  max_lag=2),
    "wide": results.MoodParams(coins=("BTC", "ETH", "LTC"),
                               buckets=("PT5S", "PT10S", "PT30S", "PT1M"), max_lag=3,
                               tolerance_buckets=1),
}


def report() -> dict[str, Any]:
    """Everything the docs quote about the real data."""
    ingested = ingest_members(unpack(f"file://{SAMPLE}", SAMPLE.read_bytes()), DATASETS)
    trades = results.trades_frame(ingested.tables["coin_trades"])
    moods = results.sentiments_frame(ingested.tables["tweet_sentiments"])
    out: dict[str, Any] = {
        "command": "python scripts/mood_report.py",
        "trades": trades.height, "sentiments": moods.height,
        "trades_span": [str(trades["ts"].min()), str(trades["ts"].max())],
        "sentiments_span": [str(moods["ts"].min()), str(moods["ts"].max())],
        "data_version": results.data_version(trades, moods),
        "pooled_nearest_r": round(nearest_pooled_r(trades, moods) or 0.0, 6),
        "pooled_backward_r": round(backward_pooled_r(trades, moods) or 0.0, 6),
        "grids": {},
    }
    for name, params in GRIDS.items():
        table = results.correlation(trades, moods, params)
        numeric = table.filter(table["pearson_r"].is_not_null())
        out["grids"][name] = {
            "params": json.loads(params.as_json()), "rows": table.height,
            "numeric_rows": numeric.height,
            "min_q_value": round(float(numeric["q_value"].min()), 6),  # type: ignore[arg-type]
            "rows_q_below_0_05": int((numeric["q_value"] < 0.05).sum()),
            "rows_p_below_0_05": int((numeric["pearson_p"] < 0.05).sum()),
            "results": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
                        for row in table.to_dicts()],
        }
    return out


def main() -> int:
    """Write the report, or with ``--check`` compare it with the committed one."""
    return write_or_check(OUT, lambda: json.dumps(report(), indent=1) + "\n",
                          description=__doc__.split("\n\n")[0],
                          command="python scripts/mood_report.py")


if __name__ == "__main__":
    raise SystemExit(main())
