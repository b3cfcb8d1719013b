"""The event generator: deterministic files whose truth report matches an independent recount.

Every check below reads the files back with the standard ``json`` module and its own rules;
the generator's numbers are only ever compared with that recount, never with themselves.
"""

import gzip
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cryptodudez.lake.eventgen import (
    MALFORMED_KINDS,
    GenerationReport,
    generate,
    main,
    malformed_line,
)

DAYS = [date(2026, 11, 1), date(2026, 11, 2)]
FILES = 3
LINES = 30_000
TYPE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
LOW, HIGH = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01 in epoch ms
DAY_MS = 86_400_000


def classify(line: bytes) -> tuple[str, dict[str, Any] | None]:
    """("valid", event) or (malformed kind, None), by the required-field rules."""
    try:
        event = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return "broken_json", None
    if not isinstance(event, dict):
        return "wrong_shape", None
    data, meta = event.get("data"), event.get("meta")
    if ("data" in event and not isinstance(data, dict)) or (
        "meta" in event and not isinstance(meta, dict)
    ):
        return "wrong_shape", None
    if not isinstance(data, dict) or not isinstance(meta, dict):
        return "missing_field", None
    if "attributes" in data and not isinstance(data["attributes"], dict):
        return "wrong_shape", None
    if not {"id", "type", "attributes"} <= data.keys() or "created_at" not in meta:
        return "missing_field", None
    if data["id"] == "":
        return "missing_field", None
    created = meta["created_at"]
    if (
        not isinstance(data["id"], str)
        or not isinstance(data["type"], str)
        or not TYPE_NAME.fullmatch(data["type"])
        or not isinstance(created, int)
        or isinstance(created, bool)
        or not LOW <= created < HIGH
    ):
        return "wrong_type", None
    return "valid", event


def read_lines(path: Path) -> list[bytes]:
    """The lines of a (possibly gzipped) file; every line ends with a newline."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    assert raw.endswith(b"\n")
    return raw[:-1].split(b"\n")


@dataclass
class Recount:
    """What the files hold, counted here."""

    lines: int = 0
    size: int = 0
    lines_per_file: list[int] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    first: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # id -> (file, line)
    duplicates_within: int = 0
    duplicates_across: int = 0
    late: int = 0
    outside_window: int = 0
    hours: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    users: defaultdict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    types: Counter[str] = field(default_factory=Counter)
    types_with_user: set[str] = field(default_factory=set)


def recount(folder: Path, report: GenerationReport, days: list[date]) -> Recount:
    """Read every file in order and count it (windows: the days cut into equal parts)."""
    start = int(datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC).timestamp()) * 1000
    span = len(days) * DAY_MS
    result = Recount()
    for index, name in enumerate(report.files):
        data = read_lines(folder / name)
        result.lines_per_file.append(len(data))
        result.lines += len(data)
        result.size += sum(len(line) + 1 for line in data)
        window = (start + span * index // len(report.files),
                  start + span * (index + 1) // len(report.files))  # fmt: skip
        for line in data:
            kind, event = classify(line)
            result.kinds[kind] += 1
            if event is None:
                continue
            event_id = event["data"]["id"]
            if event_id in result.first:
                first_file, first_line = result.first[event_id]
                assert line == first_line, "a duplicate must repeat its first line byte for byte"
                if first_file == index:
                    result.duplicates_within += 1
                else:
                    result.duplicates_across += 1
                continue
            result.first[event_id] = (index, line)
            count_unique(result, event, window)
    return result


def count_unique(result: Recount, event: dict[str, Any], window: tuple[int, int]) -> None:
    """Add one first-seen valid event to the recount."""
    created = event["meta"]["created_at"]
    moment = datetime.fromtimestamp(created / 1000, tz=UTC)
    event_type = event["data"]["type"]
    result.late += created < window[0]
    result.outside_window += created >= window[1]
    result.hours[(event_type, moment.date().isoformat(), moment.hour)] += 1
    result.types[event_type] += 1
    user = event["data"]["attributes"].get("user_id")
    if user is not None:
        assert isinstance(user, str)
        result.users[(event_type, moment.date().isoformat())].add(user)
        result.types_with_user.add(event_type)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationReport, Recount]:
    folder = tmp_path_factory.mktemp("events")
    report = generate(folder, events=LINES, days=DAYS, files=FILES, seed=7, chunk_lines=4_000)
    return folder, report, recount(folder, report, DAYS)


def test_truth_counts_equal_an_independent_recount(generated) -> None:
    _, report, counted = generated
    assert report.lines == counted.lines == LINES
    assert list(report.lines_per_file) == counted.lines_per_file
    assert report.bytes_written == counted.size
    assert report.valid_lines == counted.kinds["valid"]
    assert report.unique_valid_ids == len(counted.first)
    assert report.duplicate_lines == counted.duplicates_within + counted.duplicates_across
    assert report.malformed == {kind: counted.kinds[kind] for kind in MALFORMED_KINDS}
    assert report.late_events == counted.late
    hours = {
        (row["type"], row["date"].isoformat(), row["hour"]): row["events"]
        for row in report.events_per_type_date_hour.iter_rows(named=True)
    }
    assert hours == dict(counted.hours)
    users = {
        (row["type"], row["date"].isoformat()): row["users"]
        for row in report.distinct_users_per_type_date.iter_rows(named=True)
    }
    assert users == {key: len(ids) for key, ids in counted.users.items()}


def test_malformed_lines_are_about_one_percent_and_of_every_kind(generated) -> None:
    _, _, counted = generated
    bad = sum(counted.kinds[kind] for kind in MALFORMED_KINDS)
    assert 0.007 < bad / LINES < 0.013
    assert all(counted.kinds[kind] > 10 for kind in MALFORMED_KINDS)


def test_duplicates_repeat_earlier_lines_within_and_across_files(generated) -> None:
    _, report, counted = generated
    # recount() asserts each repeat is byte-identical to the first line with its id.
    assert counted.duplicates_within > 10
    assert counted.duplicates_across > 10
    assert 0.007 < report.duplicate_lines / LINES < 0.013


def test_late_events_come_before_their_files_window_and_no_event_after_it(generated) -> None:
    _, _, counted = generated
    assert 0.002 < counted.late / len(counted.first) < 0.01
    assert counted.outside_window == 0
    earlier_day = [key for key in counted.hours if key[1] < DAYS[0].isoformat()]
    assert earlier_day, "some late events belong to the day before the first day"


def test_types_are_zipf_skewed_and_most_carry_users(generated) -> None:
    _, _, counted = generated
    frequencies = sorted(counted.types.values(), reverse=True)
    assert 150 < len(frequencies) <= 300
    assert frequencies[0] > 20 * frequencies[len(frequencies) // 2]
    assert 0.55 < len(counted.types_with_user) / len(counted.types) < 0.85
    assert all(TYPE_NAME.fullmatch(name) for name in counted.types)


def test_every_valid_line_has_the_event_shape(generated) -> None:
    folder, report, _ = generated
    sizes = []
    for name in report.files:
        for line in read_lines(folder / name):
            _, event = classify(line)
            if event is not None:
                assert event.keys() == {"data", "meta"}
                assert isinstance(event["meta"]["service"], str)
                sizes.append(len(line))
    assert 180 < sum(sizes) / len(sizes) < 260


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def files(seed: int, name: str) -> list[bytes]:
        report = generate(tmp_path / name, events=3_000, days=DAYS[0], files=2, seed=seed)
        return [(tmp_path / name / file).read_bytes() for file in report.files]

    assert files(1, "a") == files(1, "b")
    assert files(1, "a") != files(2, "c")


def test_gzip_output_is_repeatable_and_holds_the_same_lines(tmp_path: Path) -> None:
    plain = generate(tmp_path / "plain", events=2_000, days=DAYS, seed=3)
    packed = generate(tmp_path / "gz", events=2_000, days=DAYS, seed=3, gzip=True)
    again = generate(tmp_path / "gz2", events=2_000, days=DAYS, seed=3, gzip=True)
    assert packed.files == ("events-0000.jsonl.gz",)
    gz_bytes = (tmp_path / "gz" / packed.files[0]).read_bytes()
    assert gz_bytes == (tmp_path / "gz2" / again.files[0]).read_bytes()
    with gzip.open(tmp_path / "gz" / packed.files[0], "rb") as handle:
        assert handle.read() == (tmp_path / "plain" / plain.files[0]).read_bytes()


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_line_makes_lines_of_its_kind(kind: str) -> None:
    line = (
        b'{"data":{"id":"a-1","type":"user_created","attributes":{"user_id":"u000001","city":'
        b'"S\xc3\xa3o Paulo"}},"meta":{"created_at":1793491200000,"service":"service_a"}}'
    )
    assert classify(line)[0] == "valid"
    rng = np.random.default_rng(0)
    made = {malformed_line(kind, line, rng) for _ in range(300)}
    assert {classify(bad)[0] for bad in made} == {kind}
    assert len(made) >= 4, "each kind has several variants"


def test_cli_writes_files_truth_and_one_summary_line(tmp_path: Path, capsys) -> None:
    code = main([str(tmp_path), "--events", "500", "--days", "2026-11-01,2026-11-02",
                 "--files", "2", "--seed", "5"])  # fmt: skip
    assert code == 0
    output = capsys.readouterr().out
    assert output.count("\n") == 1
    assert "500 lines in 2 file(s)" in output
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["lines"] == 500
    assert truth["files"] == ["events-0000.jsonl", "events-0001.jsonl"]
    valid = sum(
        classify(line)[0] == "valid"
        for name in truth["files"]
        for line in read_lines(tmp_path / name)
    )
    assert truth["valid_lines"] == valid


@pytest.mark.parametrize(
    "arguments",
    [
        ["--events", "10", "--days", "2026-13-01"],
        ["--events", "0", "--days", "2026-11-01"],
        ["--events", "ten", "--days", "2026-11-01"],
        ["--events", "10", "--days", "2026-11-01", "--files", "11"],
        ["--events", "10", "--days", "2026-11-01", "--malformed", "2"],
        ["--days", "2026-11-01"],
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(tmp_path: Path, capsys, arguments) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path / "out"), *arguments])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "python -m cryptodudez.lake.eventgen: error:"
    )


def test_other_events_files_in_the_folder_are_refused(tmp_path: Path) -> None:
    generate(tmp_path, events=100, days=DAYS[0], files=3)
    with pytest.raises(ValueError, match="other events files"):
        generate(tmp_path, events=100, days=DAYS[0], files=2)
