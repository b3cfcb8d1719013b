"""Rebuild samples/ (the demo's and default tests' small data) from ../shared/data.

The samples are slices of the real archives, corruptions included: the blanked BEP bar,
the CVX bar whose high is below its low, the blanked Ethereum row and trailing comma line,
and the corrupted 2021 tweets file (truncated rows, comma rows, ``banana``).
"""

import csv
import io
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "samples"

# member -> (first line, last line) of data to keep (1-based, inclusive); None keeps all.
STOCK_SLICES = {
    "stocks/BEP.csv": (2850, 2950),
    "stocks/CVX.csv": (1200, 1300),
    "stocks/AAPL.csv": (-800, None),
    "etfs/ACWI.csv": (-800, None),
    "etfs/AAA.csv": (1, None),
    "etfs/AADR.csv": (-800, None),
    "stocks/AACIW.csv": (1, None),
    "stocks/DWACW.csv": (1, None),
}


def _slice(lines: list[str], bounds: tuple[int, int | None]) -> list[str]:
    start, end = bounds
    body = lines[1:]
    body = body[start:] if start < 0 else body[start - 1 : end]
    return [lines[0], *body]


def main() -> int:
    """Write the three sample archives; 1 when ../shared/data is missing."""
    if not DATA.exists():
        sys.stderr.write(f"{DATA} not found\n")
        return 1
    OUT.mkdir(exist_ok=True)
    stock = zipfile.ZipFile(DATA / "stock-market-dataset" / "archive.zip")
    with zipfile.ZipFile(OUT / "stock_market_sample.zip", "w", zipfile.ZIP_DEFLATED) as z:
        symbols = {Path(m).stem for m in STOCK_SLICES}
        meta = stock.read("symbols_valid_meta.csv").decode().splitlines()
        keep = [meta[0]] + [line for line in meta[1:] if next(csv.reader([line]))[1] in symbols]
        z.writestr("symbols_valid_meta.csv", "\n".join(keep) + "\n")
        for member, bounds in STOCK_SLICES.items():
            lines = stock.read(member).decode().splitlines()
            z.writestr(member, "\n".join(_slice(lines, bounds)) + "\n")
    crypto = zipfile.ZipFile(DATA / "teraflow" / "first-delivery" /
                             "cryptocurrency_historical_prices.zip")
    with zipfile.ZipFile(OUT / "cryptocurrency_sample.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name in crypto.namelist():
            wanted = name.endswith(("/coin_Ethereum.csv", "/coin_Bitcoin.csv",
                                    "/coin_Cardano.csv", "/._coin_Ethereum.csv"))
            if wanted:
                z.writestr(name, crypto.read(name))
    tweets = zipfile.ZipFile(DATA / "teraflow" / "first-delivery" / "elon_musk_tweets.zip")
    with zipfile.ZipFile(OUT / "elon_musk_tweets_sample.zip", "w", zipfile.ZIP_DEFLATED) as z:
        rows = list(csv.reader(io.StringIO(tweets.read("elon_musk_tweets/2020.csv").decode())))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows[:1500])
        z.writestr("elon_musk_tweets/2020.csv", buf.getvalue())
        z.writestr("elon_musk_tweets/2021.csv", tweets.read("elon_musk_tweets/2021.csv"))
        z.writestr("elon_musk_tweets/.DS_Store", tweets.read("elon_musk_tweets/.DS_Store"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
