"""The stream demo refuses what it cannot run before a broker starts (QA walkthrough).

``jetstream_server`` is replaced by one that raises :class:`BrokerStarted`: a refused call
never gets there, and an accepted one gets exactly there (no broker in these tests).
"""

import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cryptodudez.stream import demo
from cryptodudez.stream.demo import demo_buckets, run_stream_demo

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cryptomood_sample.zip"
NOT_CRYPTOMOOD = "not CryptoMood trade or sentiment JSON lines"


class BrokerStarted(Exception):
    """The demo got as far as starting its broker."""


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    @contextmanager
    def refuse(*args: Any, **kwargs: Any) -> Iterator[None]:
        raise BrokerStarted
        yield  # pragma: no cover - a generator, for @contextmanager

    monkeypatch.setattr(demo, "jetstream_server", refuse)


def test_valid_arguments_get_as_far_as_the_broker() -> None:
    with pytest.raises(BrokerStarted):
        run_stream_demo(SAMPLE, buckets="PT10S", max_lag=0, n_boot=1, timeout=0.5)


@pytest.mark.parametrize("text", [
    "a,b,c\n1,2,3\n",                                   # CSV
    "Bitcoin went up today.\nNobody knows why.\n",      # prose
    "",                                                 # empty
    "\n\n",                                             # blank lines only
    '{"name": "x", "value": 1}\n',                      # JSON lines, not CryptoMood's
])
def test_a_source_with_nothing_to_replay_is_refused_naming_it(tmp_path: Path,
                                                              text: str) -> None:
    # it used to start the broker, replay nothing and fail in the correlation with
    # "coins must be non-empty and without repeats, not []"
    path = tmp_path / "input.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(
            f"stream demo: nothing to replay; {path}: {NOT_CRYPTOMOOD}")):
        run_stream_demo(path, timeout=5)
    other = tmp_path / "notes.txt"
    other.write_text("prose\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: {NOT_CRYPTOMOOD}; "
                                                   f"{other}: {NOT_CRYPTOMOOD}")):
        run_stream_demo([path, other], timeout=5)


def test_one_replayable_source_is_enough_to_start(tmp_path: Path) -> None:
    path = tmp_path / "input.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(BrokerStarted):  # the CSV is named in published.skipped instead
        run_stream_demo([path, SAMPLE], timeout=5)


@pytest.mark.parametrize(("source", "message"), [
    (str(SAMPLE).encode(), f"source must be a path or a string, or a sequence of them, not "
                           f"{str(SAMPLE).encode()!r} (decode bytes first: os.fsdecode)"),
    (bytearray(b"/x"), "not bytearray(b'/x') (decode bytes first: os.fsdecode)"),
    (7, "source must be a path or a string, or a sequence of them, not 7"),
    ([SAMPLE, b"/x"], "source must be a sequence of paths or strings, not one holding b'/x'"),
    ([7], "source must be a sequence of paths or strings, not one holding 7"),
])
def test_a_source_that_is_neither_paths_nor_strings_is_refused_naming_it(
        source: Any, message: str) -> None:
    """QA: ``run_stream_demo(b"/path")`` iterated the bytes as sources and failed in Path()
    with "expected str, bytes or os.PathLike object, not int"."""
    with pytest.raises(TypeError, match=re.escape(message)):
        run_stream_demo(source, timeout=5)


def test_a_string_is_one_source() -> None:
    with pytest.raises(BrokerStarted):
        run_stream_demo(str(SAMPLE), timeout=5)


def test_a_string_is_one_bucket() -> None:
    # it was iterated as the buckets 'P', 'T', '1', '0', 'S': "bucket 'P' is not ..."
    assert demo_buckets("PT10S") == ("PT10S",)
    assert demo_buckets(["PT10S", "PT1M"]) == ("PT10S", "PT1M")
    with pytest.raises(BrokerStarted):
        run_stream_demo(SAMPLE, buckets="PT1M", timeout=5)


@pytest.mark.parametrize(("buckets", "error", "message"), [
    ((), ValueError, "buckets must be non-empty and without repeats, not ()"),
    ([], ValueError, "buckets must be non-empty and without repeats, not ()"),
    ("", ValueError, "buckets: '' is not an ISO-8601 duration"),
    ("PT10X", ValueError, "buckets: 'PT10X' is not an ISO-8601 duration"),
    (("PT10S", "10s"), ValueError, "buckets: '10s' is not an ISO-8601 duration"),
    (("PT0S",), ValueError, "buckets: 'PT0S' is 0 s; it must lie between"),
    (("PT1M", "PT60S"), ValueError, "buckets must be non-empty and without repeats"),
    ((10,), TypeError, "buckets must be ISO-8601 durations such as 'PT10S', not 10"),
    (10, TypeError, "buckets must be an ISO-8601 duration or a sequence of them, not 10"),
])
def test_bad_buckets_are_refused_naming_buckets_and_the_value(
        buckets: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        run_stream_demo(SAMPLE, buckets=buckets, timeout=5)


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, float("nan"), float("inf")])
def test_a_timeout_must_be_a_positive_number_of_seconds(timeout: float) -> None:
    # 0, negative and NaN used to start the broker and end in a bare TimeoutError
    with pytest.raises(ValueError, match=re.escape(
            f"timeout must be a positive, finite number of seconds, not {timeout!r}")):
        run_stream_demo(SAMPLE, timeout=timeout)


@pytest.mark.parametrize("timeout", ["60", None, True])
def test_a_timeout_that_is_not_a_number_is_a_type_error(timeout: Any) -> None:
    with pytest.raises(TypeError, match=re.escape(
            f"timeout must be a positive number of seconds, not {timeout!r}")):
        run_stream_demo(SAMPLE, timeout=timeout)


@pytest.mark.parametrize(("option", "value", "error", "message"), [
    ("max_lag", -1, ValueError, "max_lag must lie in 0..20, not -1"),
    ("max_lag", 21, ValueError, "max_lag must lie in 0..20, not 21"),
    ("max_lag", 1.5, TypeError, "max_lag must be a whole number, not 1.5"),
    ("max_lag", "2", TypeError, "max_lag must be a whole number, not '2'"),
    ("tolerance_buckets", -1, ValueError, "tolerance_buckets must lie in 0..1000, not -1"),
    ("tolerance_buckets", None, TypeError, "tolerance_buckets must be a whole number, not None"),
    ("n_boot", 0, ValueError, "n_boot must lie in 1..10000, not 0"),
    ("n_boot", -5, ValueError, "n_boot must lie in 1..10000, not -5"),
    ("n_boot", True, TypeError, "n_boot must be a whole number, not True"),
])
def test_nonsense_options_are_refused_naming_them(option: str, value: Any,
                                                  error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)) as raised:
        run_stream_demo(SAMPLE, timeout=5, **{option: value})
    assert "min_n" not in str(raised.value)  # the demo takes no min_n: not named


def test_an_empty_zip_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "empty.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.mkdir("cryptomood")
    with pytest.raises(ValueError, match=re.escape(
            f"stream demo: nothing to replay; {path}: no lines")):
        run_stream_demo(path, timeout=5)
