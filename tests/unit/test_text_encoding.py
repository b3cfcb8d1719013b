"""The tweet text encoding: cleaning, sentiment, hashed bag of words, daily features, offline."""

import datetime as dt
import io
import json
import os
import random
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import emoji
import numpy as np
import polars as pl
import pytest

from cryptodudez.features.text import (
    BOW_COLUMNS,
    HASH_FEATURES,
    SENTIMENT_COLUMNS,
    clean_text,
    daily_text_features,
    encode_tweets,
    hashed_bag,
    remove_emoji,
    sentiment,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TWEETS = PROJECT_ROOT / ".." / "shared" / "data" / "teraflow"


# --- clean_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("Launch 🚀 today", "launch today", id="emoji"),
        pytest.param("Mars 🇺🇸 team🇫🇷win", "mars team win", id="flags-separate-words"),
        pytest.param("family👨‍👩‍👧‍👦photo", "family photo", id="zwj-sequence"),
        pytest.param("nice👍🏽work", "nice work", id="skin-tone"),
        pytest.param("count 1️⃣ rockets", "count rockets", id="keycap"),
        # U+2139 is a letter to Unicode, so only the emoji step removes it (NFKC would give "i").
        pytest.param("ℹ️nfo", "nfo", id="emoji-that-is-a-letter"),
        pytest.param("@elonmusk great rocket", "great rocket", id="mention"),
        pytest.param("@SpaceX_ok", "", id="mention-with-underscore"),
        pytest.param(
            "see https://t.co/AbC123 and http://example.com/x?y=1 www.tesla.com t.co/xyz mars "
            "HTTPS://T.CO/Q",
            "mars",
            id="urls",
        ),
        pytest.param("#Tesla rocks", "tesla rocks", id="hashtag-keeps-word"),
        pytest.param("The rocket and the moon", "rocket moon", id="stopwords"),
        pytest.param("Tesla &amp; SpaceX &gt; &#39;", "tesla spacex", id="html-entities"),
        pytest.param("Model 3 sold 500k cars in 2020", "model sold cars", id="numbers"),
        pytest.param(
            "rocket line\nmoon line\r\nthird\tlaunch",
            "rocket line moon line launch",
            id="multiline",
        ),
        pytest.param("Tesla's booster", "tesla booster", id="possessive"),
        pytest.param("𝐇𝐞𝐥𝐥𝐨 ＭＡＲＳ", "hello mars", id="nfkc"),
        pytest.param("café naïve", "café naïve", id="accents-kept"),
        pytest.param(None, "", id="null"),
        pytest.param("    ", "", id="blank"),
        pytest.param("@a https://t.co/x 😀 the 42 &amp; !!", "", id="all-removed"),
    ],
)
def test_clean_text(raw: str | None, expected: str) -> None:
    out = clean_text(pl.Series("tweet", [raw, "rocket"], dtype=pl.String))
    assert out.to_list() == [expected, "rocket"]
    assert out.dtype == pl.String
    assert out.name == "tweet"


def test_clean_text_never_returns_null() -> None:
    out = clean_text(pl.Series([None, "", "😀", "the"], dtype=pl.String))
    assert out.null_count() == 0
    assert out.to_list() == ["", "", "", ""]


@pytest.mark.parametrize(
    "sequence",
    [
        "👨‍👩‍👧‍👦",  # ZWJ family
        "🇺🇸",  # flag: two regional indicators
        "👍🏽",  # skin tone modifier
        "1️⃣",  # keycap
        "❤️",  # with variation selector
        "🏴󠁧󠁢󠁳󠁣󠁴󠁿",  # tag sequence (Scotland)
        "🧑🏿‍🚀",  # ZWJ with skin tone
    ],
)
def test_remove_emoji_takes_the_whole_sequence(sequence: str) -> None:
    """Longest match first: one space for the sequence, no leftover joiner or modifier."""
    out = remove_emoji(pl.Series([f"a{sequence}b", None], dtype=pl.String))
    assert out.to_list() == ["a b", None]
    assert emoji.replace_emoji(f"a{sequence}b", " ") == "a b"


# --- real tweets ----------------------------------------------------------------------------


def _real_tweets() -> pl.Series:
    """Distinct tweet texts of the delivery (the redelivery, else the first delivery's 2020)."""
    sources = [
        (TWEETS / "redelivery" / "elon_musk_tweets.zip", None),
        # The first delivery's 2021.csv is corrupted on purpose; its 2020.csv is sound.
        (TWEETS / "first-delivery" / "elon_musk_tweets.zip", "2020.csv"),
    ]
    for path, only in sources:
        if not path.exists():
            continue
        with zipfile.ZipFile(path) as archive:
            names = [
                n
                for n in archive.namelist()
                if n.startswith("elon_musk_tweets/")
                and n.endswith(".csv")
                and (only is None or n.endswith(only))
            ]
            frames = [
                pl.read_csv(io.BytesIO(archive.read(n)), columns=["tweet"], infer_schema=False)
                for n in names
            ]
        return pl.concat(frames)["tweet"].drop_nulls().unique().sort()
    pytest.skip(f"real data not available under {TWEETS}")


@pytest.fixture(scope="module")
def real_tweets() -> pl.Series:
    return _real_tweets()


@pytest.mark.realdata
def test_remove_emoji_equals_the_emoji_package_on_real_tweets(real_tweets: pl.Series) -> None:
    reference = [emoji.replace_emoji(t, " ") for t in real_tweets.to_list()]
    changed = sum(r != t for r, t in zip(reference, real_tweets.to_list(), strict=True))
    assert changed > 100, "the sample should contain emoji for this test to mean anything"
    ours = remove_emoji(real_tweets).to_list()
    # Equal up to whitespace: both put a space where an emoji was.
    mismatches = [
        (t, o, r)
        for t, o, r in zip(real_tweets.to_list(), ours, reference, strict=True)
        if o.split() != r.split()
    ]
    assert mismatches == []


@pytest.mark.realdata
def test_clean_text_is_unchanged_when_the_emoji_package_removes_emoji_first(
    real_tweets: pl.Series,
) -> None:
    demojized = pl.Series([emoji.replace_emoji(t, " ") for t in real_tweets.to_list()])
    ours, reference = clean_text(real_tweets), clean_text(demojized)
    assert (ours != reference).sum() == 0
    assert (ours == "").sum() < real_tweets.len() // 4


# --- sentiment ------------------------------------------------------------------------------


def test_sentiment_of_clear_sentences() -> None:
    out = sentiment(
        pl.Series(
            [
                "What a wonderful, brilliant launch! I love it.",
                "This is a terrible, awful disaster.",
            ]
        )
    )
    assert out.columns == list(SENTIMENT_COLUMNS)
    assert all(dtype == pl.Float64 for dtype in out.dtypes)
    pos, neg = out.rows(named=True)
    assert pos["sent_compound"] > 0.5
    assert pos["sent_pos"] > pos["sent_neg"]
    assert neg["sent_compound"] < -0.5
    assert neg["sent_neg"] > neg["sent_pos"]
    for row in (pos, neg):
        assert row["sent_pos"] + row["sent_neg"] + row["sent_neu"] == pytest.approx(1, abs=0.01)


def test_sentiment_reads_emoji_capitals_and_emoticons_of_the_original_text() -> None:
    """VADER scores the original text: cleaning would lose all of these signals."""
    out = sentiment(
        pl.Series(["😀", "launch day", "launch day 😀", "good", "GOOD!!!", "&lt;3", None])
    )["sent_compound"].to_list()
    grin, plain, with_grin, good, shouted, heart, null = out
    assert grin > 0
    assert with_grin > plain
    assert shouted > good
    assert heart > 0  # "&lt;3" is unescaped to the emoticon "<3"
    assert null == 0.0


def test_sentiment_ignores_urls_and_mentions() -> None:
    """VADER strips the "@" of a handle, so "@sad" would otherwise read as the word "sad"."""
    out = sentiment(pl.Series(["@sad rockets", "https://t.co/bad rockets", "rockets"]))
    assert out["sent_compound"].to_list() == [0.0, 0.0, 0.0]
    assert sentiment(pl.Series(["sad rockets"]))["sent_compound"][0] < 0


def test_sentiment_of_distinct_texts_matches_row_by_row() -> None:
    rnd = random.Random(7)
    pool = ["I love it 😍", "awful", "@x great", "meh", None, "", "GREAT!", "sad day 😢", "rockets"]
    texts = pl.Series([rnd.choice(pool) for _ in range(60)], dtype=pl.String)
    batch = sentiment(texts)
    assert batch.height == texts.len()
    one_by_one = pl.concat([sentiment(pl.Series([t], dtype=pl.String)) for t in texts])
    assert batch.equals(one_by_one)
    assert batch["sent_compound"].n_unique() > 4


# --- hashed bag of words --------------------------------------------------------------------


def test_hashed_bag_is_stateless_and_counts_tokens() -> None:
    first = hashed_bag(pl.Series(["rocket"]))
    second = hashed_bag(pl.Series(["mars moon", "moon rocket rocket", "", None], dtype=pl.String))
    assert first.shape == (1, HASH_FEATURES)
    assert second.shape == (4, HASH_FEATURES)
    assert first.dtype == second.dtype == np.float32
    column = int(first[0].argmax())
    assert first[0, column] == 1
    assert second[1, column] >= 2  # the same token lands in the same column in any call
    assert second.sum(axis=1).tolist() == [2, 3, 0, 0]


def test_hashed_bag_of_nothing() -> None:
    assert hashed_bag(pl.Series([], dtype=pl.String)).shape == (0, HASH_FEATURES)


# --- per tweet and per day ------------------------------------------------------------------


def test_encode_tweets_keeps_rows_columns_and_order() -> None:
    tweets = pl.DataFrame(
        {"id": [1, 2, 3, 4], "text": ["Great rocket 🚀", None, "Great rocket 🚀", "awful @x"]}
    )
    out = encode_tweets(tweets)
    assert out.columns == ["id", "text", "clean_text", *SENTIMENT_COLUMNS]
    assert out["id"].to_list() == [1, 2, 3, 4]
    assert out["clean_text"].to_list() == ["great rocket", "", "great rocket", "awful"]
    assert out["sent_compound"][0] == out["sent_compound"][2] > 0
    assert out["sent_compound"][3] < 0


@pytest.mark.parametrize(
    "frame",
    [
        pl.DataFrame({"text": ["a"]}),
        pl.DataFrame({"day": ["2020-01-01"], "text": ["a"]}),
        pl.DataFrame({"day": [dt.date(2020, 1, 1)], "text": [1]}),
        pl.DataFrame({"day": [None], "text": ["a"]}, schema={"day": pl.Date, "text": pl.String}),
    ],
)
def test_daily_text_features_rejects_bad_input(frame: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"day|text"):
        daily_text_features(frame)


def _generated_tweets(seed: int = 3) -> pl.DataFrame:
    rnd = random.Random(seed)
    pool = [
        "Great launch today 🚀 https://t.co/abc",
        "@elonmusk terrible idea, awful",
        "Rocket rocket ROCKET!!! 😀",
        "the and of",  # stopwords only
        "Mars 🇺🇸 base &amp; moon base",
        "sad day 😢 for Tesla's team",
        "Model 3 production 500k",
        None,
        "",
    ]
    days = [dt.date(2021, 1, d) for d in (5, 2, 9)]
    rows = [(rnd.choice(days), rnd.choice(pool)) for _ in range(150)]
    rows += [(dt.date(2021, 1, 7), "the and of"), (dt.date(2021, 1, 7), None)]  # no words
    return pl.DataFrame(rows, schema={"day": pl.Date, "text": pl.String}, orient="row")


def _daily_reference(tweets: pl.DataFrame) -> dict[dt.date, dict[str, float]]:
    """The daily features by brute force: one tweet at a time, plain Python sums."""
    per_day: dict[dt.date, list[tuple[str, dict[str, float], np.ndarray]]] = {}
    for day, text in tweets.iter_rows():
        one = pl.Series([text], dtype=pl.String)
        clean = clean_text(one)[0]
        scores = sentiment(one).row(0, named=True)
        per_day.setdefault(day, []).append((clean, scores, hashed_bag(pl.Series([clean]))[0]))
    out = {}
    for day, items in per_day.items():
        n = len(items)
        tokens = sum(len(clean.split()) for clean, _, _ in items)
        bag = sum((b.astype(np.float64) for _, _, b in items), np.zeros(HASH_FEATURES))
        row = {
            "sent_compound_mean": sum(s["sent_compound"] for _, s, _ in items) / n,
            "sent_pos_mean": sum(s["sent_pos"] for _, s, _ in items) / n,
            "sent_neg_mean": sum(s["sent_neg"] for _, s, _ in items) / n,
            "share_positive": sum(s["sent_compound"] >= 0.05 for _, s, _ in items) / n,
            "share_negative": sum(s["sent_compound"] <= -0.05 for _, s, _ in items) / n,
            "clean_tokens": tokens,
        }
        for i, name in enumerate(BOW_COLUMNS):
            row[name] = bag[i] / tokens if tokens else 0.0
        out[day] = row
    return out


def test_daily_text_features_match_a_brute_force_loop() -> None:
    tweets = _generated_tweets()
    out = daily_text_features(tweets)
    reference = _daily_reference(tweets)
    assert out["day"].to_list() == sorted(reference)
    assert out.columns[:7] == [
        "day",
        "sent_compound_mean",
        "sent_pos_mean",
        "sent_neg_mean",
        "share_positive",
        "share_negative",
        "clean_tokens",
    ]
    assert out.columns[7:] == [f"bow_{i:02d}" for i in range(HASH_FEATURES)]
    assert out["clean_tokens"].dtype == pl.Int64
    for row in out.iter_rows(named=True):
        expected = reference[row.pop("day")]
        assert row == pytest.approx(expected, abs=1e-12)


def test_daily_bag_of_words_is_a_distribution() -> None:
    out = daily_text_features(_generated_tweets(seed=11))
    sums = out.select(pl.sum_horizontal(BOW_COLUMNS))["bow_00"].to_list()
    for tokens, total in zip(out["clean_tokens"].to_list(), sums, strict=True):
        assert total == pytest.approx(1.0 if tokens else 0.0)
    empty_day = out.filter(pl.col("day") == dt.date(2021, 1, 7))
    assert empty_day["clean_tokens"].to_list() == [0]
    assert out.select(pl.min_horizontal(BOW_COLUMNS)).to_series().min() >= 0


def test_daily_shares_count_the_thresholds_as_positive_and_negative(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """compound >= 0.05 is positive, <= -0.05 negative, in between neither (VADER's rule)."""

    def fake_sentiment(text: pl.Series) -> pl.DataFrame:
        compound = text.fill_null("0").cast(pl.Float64)
        zero = pl.Series([0.0] * text.len())
        return pl.DataFrame(
            {"sent_compound": compound, "sent_pos": zero, "sent_neg": zero, "sent_neu": zero}
        )

    monkeypatch.setattr("cryptodudez.features.text.sentiment", fake_sentiment)
    compounds = ["0.05", "0.0499", "-0.05", "-0.0499", "0.9", "-0.9", "0", "0.05"]
    tweets = pl.DataFrame({"day": [dt.date(2021, 1, 1)] * len(compounds), "text": compounds})
    out = daily_text_features(tweets).row(0, named=True)
    assert out["share_positive"] == pytest.approx(3 / 8)
    assert out["share_negative"] == pytest.approx(2 / 8)


def test_daily_text_features_of_no_tweets() -> None:
    empty = pl.DataFrame(schema={"day": pl.Date, "text": pl.String})
    out = daily_text_features(empty)
    assert out.height == 0
    assert out.columns == daily_text_features(_generated_tweets()).columns


# --- offline --------------------------------------------------------------------------------

_GUARD = '''
"""Loaded at interpreter start (PYTHONPATH): no socket may connect or resolve a name."""
import socket
import sys

HEAVY = ("polars", "numpy", "sklearn", "scipy", "vaderSentiment", "emoji", "cryptodudez")
IMPORTED_BEFORE_GUARD = sorted(m for m in HEAVY if m in sys.modules)


class NetworkBlocked(RuntimeError):
    """Raised by every blocked call (not an OSError, so no library swallows it)."""


def _blocked(*args, **kwargs):
    raise NetworkBlocked(f"network access attempted: {args!r}")


socket.socket.connect = _blocked
socket.socket.connect_ex = _blocked
socket.create_connection = _blocked
socket.getaddrinfo = _blocked
'''

_OFFLINE_RUN = """
import json
import socket

import sitecustomize

assert sitecustomize.IMPORTED_BEFORE_GUARD == [], sitecustomize.IMPORTED_BEFORE_GUARD
for attempt in (
    lambda: socket.socket().connect(("127.0.0.1", 9)),
    lambda: socket.create_connection(("127.0.0.1", 9)),
    lambda: socket.getaddrinfo("localhost", 80),
):
    try:
        attempt()
    except sitecustomize.NetworkBlocked:
        pass
    else:
        raise SystemExit("the network guard is not active")

import datetime as dt

import polars as pl

from cryptodudez.features.text import clean_text, daily_text_features, hashed_bag, sentiment

texts = ["Great launch 🚀 https://t.co/x", "@a awful day 😢", "Mars &amp; moon", None]
tweets = pl.DataFrame(
    {"day": [dt.date(2022, 3, 1), dt.date(2022, 3, 1), dt.date(2022, 3, 2), dt.date(2022, 3, 2)],
     "text": texts}
)
daily = daily_text_features(tweets)
print(json.dumps({
    "clean": clean_text(pl.Series(texts)).to_list(),
    "compound": sentiment(pl.Series(texts))["sent_compound"].to_list(),
    "bag": hashed_bag(pl.Series(["rocket launch"])).tolist(),
    "days": daily.height,
}))
"""


def test_encoding_runs_with_the_network_blocked(tmp_path: Path) -> None:
    """A fresh interpreter whose sockets refuse to connect runs the whole encoding."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(_GUARD))
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_RUN],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["clean"] == ["great launch", "awful day", "mars moon", ""]
    assert result["compound"][0] > 0 > result["compound"][1]
    assert result["days"] == 2
    # Hashing is the same in another process: the columns mean the same thing everywhere.
    assert result["bag"] == hashed_bag(pl.Series(["rocket launch"])).tolist()
