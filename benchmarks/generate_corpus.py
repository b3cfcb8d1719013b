"""Generate a stock-market corpus at the full public dataset's scale, deterministically.

The real archive (``../shared/data/stock-market-dataset/archive.zip``) holds 971 price
files (2.09 M rows) and the full symbol directory (8,049 symbols). The full public dataset
has one price file per directory symbol, about 25 M rows in all. This script builds that
shape from the real files:

* one price file per symbol of ``symbols_valid_meta.csv`` (``stocks/`` for ``ETF=N``,
  ``etfs/`` for ``ETF=Y``); a scale factor above 1 adds copies of every symbol named
  ``<symbol>_<copy>`` (with a matching directory row), a factor below 1 keeps a prefix;
* each file clones a real file of the same asset class, chosen with a fixed seed: its
  length is the real length stretched so the corpus totals ``rows_per_scale * scale`` rows
  (capped at the business days since 1962), its dates are the business days ending on the
  real file's last date, and its prices are a bootstrap of the real file's daily log
  returns (clipped to +-50 %, de-meaned per file) from a perturbed starting price, with
  Open/High/Low/Adj Close kept in the real bar's proportion to Close and perturbed volumes;
* values are rounded through float32 like the real vendor files, volumes are integers,
  and blank bars (``2017-05-29,,,,,,``) appear at the real archive's rate, so the quarantine
  path is exercised too.

Everything is vectorised in polars, a batch of files at a time (bounded memory); the output
is ONE zip shaped like the real archive: ``symbols_valid_meta.csv``, ``etfs/*.csv``,
``stocks/*.csv``.

Usage::

    python benchmarks/generate_corpus.py --scale 1 --out benchmarks/out/corpus_x1.zip
"""

import argparse
import io
import json
import time
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

REAL_ARCHIVE = (Path(__file__).resolve().parents[2] / "shared" / "data"
                / "stock-market-dataset" / "archive.zip")  # ../shared/data of the project
OUT_DIR = Path(__file__).resolve().parent / "out"
META_NAME = "symbols_valid_meta.csv"
PRICE_COLUMNS = ("Open", "High", "Low", "Close", "Adj Close")
FIRST_DAY = date(1962, 1, 2)
BATCH_FILES = 400
SEED = 20240601
ZIP_DATE = (2020, 4, 1, 0, 0, 0)


@dataclass(frozen=True)
class Pool:
    """Real bars of one asset class, concatenated, with each file's slice."""

    bars: pl.DataFrame  # lr, o, h, l, a, v (one row per usable real bar)
    offsets: np.ndarray  # start row of each real file in ``bars``
    lengths: np.ndarray  # usable bars of each real file
    rows: np.ndarray  # rows of each real file (its length in the corpus before stretching)
    last_day: np.ndarray  # last date of each real file (days since epoch)
    first_close: np.ndarray  # first usable Close of each real file


def _read_real(archive: Path) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """The real price bars (with ``folder``, ``file``) and the symbol directory."""
    frames = []
    with zipfile.ZipFile(archive) as zf:
        meta = pl.read_csv(io.BytesIO(zf.read(META_NAME)), infer_schema=False)
        names = sorted(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".csv"))
        schema = {"Date": pl.String, **dict.fromkeys(PRICE_COLUMNS, pl.Float64),
                  "Volume": pl.Float64}
        for i, name in enumerate(names):
            frame = pl.read_csv(io.BytesIO(zf.read(name)), schema=schema)
            frames.append(frame.with_columns(
                folder=pl.lit(name.split("/", 1)[0]), file=pl.lit(i, dtype=pl.Int64),
            ))
    bars = pl.concat(frames).with_columns(pl.col("Date").str.to_date(strict=False))
    blank = bars["Close"].is_null().sum() / max(bars.height, 1)
    return bars, meta, float(blank)


def _pool(bars: pl.DataFrame) -> Pool:
    """Returns and bar shapes of one asset class's real files."""
    rows = bars.group_by("file", maintain_order=True).agg(
        n=pl.len(), last=pl.col("Date").max().cast(pl.Int64)
    )
    usable = bars.filter(pl.col("Close") > 0, pl.col("Date").is_not_null()).with_columns(
        lr=pl.col("Close").log().diff().over("file").fill_null(0.0).clip(-0.5, 0.5),
        o=pl.col("Open") / pl.col("Close"),
        h=pl.col("High") / pl.col("Close"),
        l=pl.col("Low") / pl.col("Close"),
        a=pl.col("Adj Close") / pl.col("Close"),
        v=pl.col("Volume").fill_null(0.0),
    ).with_columns(
        # A bar whose Open/High/Low is missing or inconsistent takes the Close for all four.
        pl.when(pl.col("h") >= pl.col("l")).then(pl.col(c)).otherwise(1.0).fill_null(1.0)
        .alias(c) for c in ("o", "h", "l", "a")
    )
    per_file = usable.group_by("file", maintain_order=True).agg(
        m=pl.len(), first_close=pl.col("Close").first()
    )
    stats = rows.join(per_file, on="file", how="inner", maintain_order="left")
    usable = usable.join(stats.select("file"), on="file", how="semi")
    lengths = stats["m"].to_numpy().astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return Pool(
        bars=usable.select("lr", "o", "h", "l", "a", "v"),
        offsets=offsets,
        lengths=lengths,
        rows=stats["n"].to_numpy().astype(np.int64),
        last_day=stats["last"].to_numpy(),
        first_close=stats["first_close"].to_numpy(),
    )


def _plan(meta: pl.DataFrame, scale: float) -> pl.DataFrame:
    """One row per generated file: ``folder``, ``symbol``, ``copy``, ``base`` (meta row)."""
    base = meta.with_row_index("base").select(
        "base", "Symbol",
        folder=pl.when(pl.col("ETF") == "Y").then(pl.lit("etfs")).otherwise(pl.lit("stocks")),
    )
    n_files = max(round(base.height * scale), 1)
    copies = -(-n_files // base.height)
    plan = pl.concat([
        base.with_columns(copy=pl.lit(c, dtype=pl.Int64)) for c in range(copies)
    ]).head(n_files)
    plan = plan.with_columns(
        symbol=pl.when(pl.col("copy") == 0).then(pl.col("Symbol"))
        .otherwise(pl.format("{}_{}", pl.col("Symbol"), pl.col("copy")))
    )
    return plan.sort("folder", "symbol").drop("Symbol")


def _stretch(rows: np.ndarray, cap: np.ndarray, target: int) -> np.ndarray:
    """Lengths ``rows * k`` (at least 2, at most ``cap``) whose sum is about ``target``."""
    k = target / max(int(rows.sum()), 1)
    for _ in range(30):
        lengths = np.clip(np.rint(rows * k), 2, cap).astype(np.int64)
        total = int(lengths.sum())
        if abs(total - target) <= max(target // 10_000, 1):
            break
        k *= target / max(total, 1)
    return lengths


def _batch_frame(files: pl.DataFrame, pool: Pool, calendar: np.ndarray, blank_rate: float,
                 rng: np.random.Generator) -> pl.DataFrame:
    """Bars of a batch of generated files (``fid`` = row of ``files``), vectorised."""
    n = files.height
    lengths = files["length"].to_numpy()
    src = files["src"].to_numpy()
    fid = np.repeat(np.arange(n, dtype=np.int64), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    row = np.arange(fid.size, dtype=np.int64) - starts[fid]
    pick = pool.offsets[src[fid]] + (rng.random(fid.size) * pool.lengths[src[fid]]).astype(
        np.int64
    )
    end_idx = np.searchsorted(calendar, pool.last_day[src], side="right") - 1
    day = calendar[(end_idx - lengths + 1)[fid] + row]
    p0 = pool.first_close[src] * np.exp(rng.normal(0.0, 0.25, n))
    vol_factor = np.exp(rng.normal(0.0, 0.3, n))
    blank = rng.random(fid.size) < blank_rate
    bars = pool.bars.select(pl.all().gather(pl.Series(pick))).with_columns(
        fid=pl.Series(fid), day=pl.Series(day, dtype=pl.Int32).cast(pl.Date),
        blank=pl.Series(blank), p0=pl.Series(p0[fid]), vf=pl.Series(vol_factor[fid]),
    )
    close = pl.col("p0") * (
        pl.col("lr") - pl.col("lr").mean().over("fid")
    ).cum_sum().over("fid").exp()
    f32 = pl.Float32

    def price(expr: pl.Expr) -> pl.Expr:
        return pl.when(~pl.col("blank")).then(expr.cast(f32).cast(pl.Float64))

    return bars.with_columns(close=close).select(
        "fid",
        Date=pl.col("day"),
        Open=price(pl.col("close") * pl.col("o")),
        High=price(pl.col("close") * pl.col("h")),
        Low=price(pl.col("close") * pl.col("l")),
        Close=price(pl.col("close")),
        **{"Adj Close": price(pl.col("close") * pl.col("a"))},
        Volume=pl.when(~pl.col("blank")).then(
            (pl.col("v") * pl.col("vf")).round().cast(pl.Int64)
        ),
    )


def _member(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed timestamp, so the same arguments give the same bytes."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _meta_rows(meta: pl.DataFrame, plan: pl.DataFrame) -> pl.DataFrame:
    """The symbol directory of the generated files (copies get renamed clones)."""
    rows = plan.sort("copy", "base").join(
        meta.with_row_index("base"), on="base", how="left", maintain_order="left"
    )
    renamed = pl.col("copy") > 0
    suffix = pl.format("_{}", pl.col("copy"))
    return rows.with_columns(
        Symbol=pl.col("symbol"),
        **{
            "Security Name": pl.when(renamed)
            .then(pl.format("{} (synthetic copy {})", pl.col("Security Name"), pl.col("copy")))
            .otherwise(pl.col("Security Name")),
            "CQS Symbol": pl.when(renamed & pl.col("CQS Symbol").is_not_null())
            .then(pl.concat_str(pl.col("CQS Symbol"), suffix))
            .otherwise(pl.col("CQS Symbol")),
            "NASDAQ Symbol": pl.when(renamed)
            .then(pl.concat_str(pl.col("NASDAQ Symbol"), suffix))
            .otherwise(pl.col("NASDAQ Symbol")),
        },
    ).select(meta.columns)


def generate(out: Path, scale: float = 1.0, rows_per_scale: int = 25_000_000,
             source: Path = REAL_ARCHIVE, seed: int = SEED, compresslevel: int = 1) -> dict:
    """Write the corpus zip to ``out``; returns a summary (files, rows, bytes, seconds)."""
    t0 = time.perf_counter()
    bars, meta, blank_rate = _read_real(source)
    pools = {
        folder: _pool(bars.filter(pl.col("folder") == folder)) for folder in ("etfs", "stocks")
    }
    plan = _plan(meta, scale)
    last = max(int(p.last_day.max()) for p in pools.values())
    days = pl.date_range(FIRST_DAY, date.fromordinal(719163 + last), "1d", eager=True)
    calendar = days.filter(days.dt.weekday() <= 5).cast(pl.Int32).to_numpy()
    rng = np.random.default_rng(seed)
    parts = []
    for folder, pool in pools.items():
        sub = plan.filter(pl.col("folder") == folder)
        src = rng.integers(0, pool.rows.size, sub.height)
        caps = np.searchsorted(calendar, pool.last_day[src], side="right")
        parts.append(sub.with_columns(src=pl.Series(src), cap=pl.Series(caps)))
    plan = pl.concat(parts)
    target = round(rows_per_scale * scale)
    lengths = []
    for folder, pool in pools.items():  # split the rows in proportion to the real lengths
        sub = plan.filter(pl.col("folder") == folder)
        share = pool.rows[sub["src"].to_numpy()].sum() / sum(
            pools[f].rows[plan.filter(pl.col("folder") == f)["src"].to_numpy()].sum()
            for f in pools
        )
        lengths.append(_stretch(pool.rows[sub["src"].to_numpy()], sub["cap"].to_numpy(),
                                round(target * share)))
    plan = plan.with_columns(length=pl.Series(np.concatenate(lengths)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.part")
    csv_bytes = rows = blanks = 0
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        meta_csv = _meta_rows(meta, plan).write_csv().encode()
        zf.writestr(_member(META_NAME), meta_csv, compresslevel=compresslevel)
        csv_bytes += len(meta_csv)
        for folder, pool in pools.items():
            sub = plan.filter(pl.col("folder") == folder)
            for start in range(0, sub.height, BATCH_FILES):
                files = sub.slice(start, BATCH_FILES)
                frame = _batch_frame(files, pool, calendar, blank_rate, rng)
                rows += frame.height
                blanks += int(frame["Close"].null_count())
                symbols = files["symbol"].to_list()
                for (fid,), part in frame.partition_by("fid", as_dict=True,
                                                       maintain_order=True).items():
                    body = part.drop("fid").write_csv().encode()
                    csv_bytes += len(body)
                    zf.writestr(_member(f"{folder}/{symbols[fid]}.csv"), body,
                                compresslevel=compresslevel)
    tmp.replace(out)
    return {
        "path": str(out), "scale": scale, "seed": seed, "files": plan.height + 1,
        "price_files": plan.height, "rows": rows, "blank_rows": blanks,
        "csv_bytes": csv_bytes, "zip_bytes": out.stat().st_size,
        "compresslevel": compresslevel, "seconds": round(time.perf_counter() - t0, 2),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--scale``, ``--out``, ``--rows-per-scale``, ``--seed``, ``--source``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="1 = the full public dataset (8,049 files, ~25 M rows)")
    parser.add_argument("--out", type=Path, default=None,
                        help="zip to write (default benchmarks/out/corpus_x<scale>.zip)")
    parser.add_argument("--rows-per-scale", type=int, default=25_000_000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--source", type=Path, default=REAL_ARCHIVE)
    parser.add_argument("--compresslevel", type=int, default=1,
                        help="deflate level (1: fast; the corpus is bigger than at 6)")
    args = parser.parse_args(argv)
    out = args.out or OUT_DIR / f"corpus_x{args.scale:g}.zip"
    summary = generate(out, args.scale, args.rows_per_scale, args.source, args.seed,
                       args.compresslevel)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
