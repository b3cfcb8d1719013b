"""The command line: every error is one clear line and a non-zero exit; nothing half-written."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from polars.exceptions import PanicException

from cryptodudez import cli, commands
from cryptodudez.coingecko.cli_command import chart_path
from cryptodudez.instance import free_port
from cryptodudez.resources.lake import Lake, checked_raw_key
from cryptodudez.settings import PROJECT_DIR, Settings
from cryptodudez.storage import LakeStorage
from serving import server
from tests.helpers import events_file, held_port, ingest_events, spread_events

BAD_KEYS = [
    ("../../escape/f.csv", "'..'"),
    ("a/../../f.csv", "'..'"),
    ("/etc/f.csv", "absolute"),
    ("a\\b.csv", "backslash"),
    ("a\x00b.csv", "control character"),
    ("a\nb.csv", "control character"),
    ("a\x7fb.csv", "control character"),
    ("a//b.csv", "empty"),
    ("./a.csv", "'.'"),
    ("", "empty"),
    ("x/.hidden.csv", "hidden"),
    ("caf\udce9.csv", "not UTF-8"),  # b"caf\xe9.csv" as Python reads a Latin-1 name
]


@pytest.mark.parametrize(("key", "why"), BAD_KEYS)
def test_keys_that_would_leave_raw_are_refused(key: str, why: str) -> None:
    with pytest.raises(ValueError, match="refusing raw key") as err:
        checked_raw_key(key)
    assert why in str(err.value)


@pytest.mark.parametrize("key", ["a.csv", "vendor/2026-11/a b.zip", "x/y..z.csv", "a:b@c"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert checked_raw_key(key) == key


@pytest.mark.parametrize("uri", ["local", "s3://bucket/prefix"])
def test_lake_land_refuses_escaping_keys_locally_and_on_s3(tmp_path: Path, uri: str) -> None:
    source = tmp_path / "f.csv"
    source.write_text("a,b\n")
    lake = Lake(uri=str(tmp_path / "lake") if uri == "local" else uri,
                endpoint_url="http://127.0.0.1:9")  # refused before any request is made
    with pytest.raises(ValueError, match="refusing raw key"):
        lake.land(source, "../../escape/f.csv")
    assert not (tmp_path / "escape").exists()


def test_a_file_named_in_another_encoding_is_refused_by_land_and_skipped_by_ingest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Such a name stopped every sensor tick and `ingest` with a UnicodeEncodeError, so
    no other file was ingested either (session 23)."""
    source = tmp_path / "src"
    source.mkdir()
    os.close(os.open(os.fsencode(source) + b"/caf\xe9.csv", os.O_CREAT | os.O_WRONLY))
    lake_dir = tmp_path / "lake"
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(lake_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    assert cli.main(["land", str(source)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not UTF-8" in err and len(err.splitlines()) == 1
    # copied in by hand: listed without it, with a warning, and the others still seen
    raw = lake_dir / "raw"
    raw.mkdir(parents=True)
    os.close(os.open(os.fsencode(raw) + b"/caf\xe9.csv", os.O_CREAT | os.O_WRONLY))
    (raw / "good.csv").write_text("a,b\n")
    assert [o.key for o in Lake(uri=str(lake_dir)).list_raw()] == ["good.csv"]
    assert "is not UTF-8 text" in caplog.text


def test_cli_errors_are_one_line_and_non_zero(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "f.csv").write_text("a,b\n1,2\n")
    monkeypatch.chdir(tmp_path)
    for var in [k for k in os.environ if k.startswith(("AWS_", "CRYPTODUDEZ_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    no_aws = {"AWS_CONFIG_FILE": str(tmp_path / "none"),
              "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
              "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
              "AWS_MAX_ATTEMPTS": "1"}
    cases = [
        (["land", "f.csv", "--prefix", "../../escape"], {},
         "argument --prefix: '../../escape' has an empty, '.' or '..' segment", 2),
        (["land", "f.csv", "--prefix", "a/.hidden"], {},
         "argument --prefix: 'a/.hidden' has a hidden segment", 2),
        (["land", "f.csv", "missing.csv"], {}, "no such file or directory: missing.csv", 2),
        (["summary"], {"CRYPTODUDEZ_LAKE": "ftp://x/y"}, "unsupported scheme 'ftp'", 2),
        (["ingest"], {"CRYPTODUDEZ_LAKE": "s3://bucket/lake", **no_aws}, "credentials", 1),
        (["nonsense"], {}, "invalid choice", 2),
        (["land"], {}, "required", 2),
    ]
    for args, extra, message, status in cases:
        with monkeypatch.context() as mp:
            mp.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
            for name, value in extra.items():
                mp.setenv(name, value)
            try:
                code = cli.main(args)
            except SystemExit as exit_:  # argparse's own exit
                code = exit_.code
        err = capsys.readouterr().err
        assert code == status, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (args, err)
        assert message in lines[0], (args, lines[0])
    # nothing was half-written: the refused and failed commands landed nothing anywhere
    assert not (tmp_path / "lake" / "raw").exists()
    assert not (tmp_path.parent / "escape").exists()
    assert not (tmp_path / "ftp:").exists()


def test_the_installed_command_reports_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRYPTODUDEZ_"))}
    env.update({"CRYPTODUDEZ_LAKE": "ftp://x/y", "PYTHONPATH": str(PROJECT_DIR)})
    done = subprocess.run([sys.executable, "-m", "cryptodudez.cli", "summary"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "cryptodudez: error: CRYPTODUDEZ_LAKE='ftp://x/y': unsupported scheme 'ftp' "
        "(use a local folder, file://... or s3://bucket/prefix)"]


def test_a_bad_path_among_good_ones_lands_nothing(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a\n1\n")
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dh"))
    with pytest.raises(cli.CliError, match="missing"):
        commands.land([good, tmp_path / "missing.csv"], settings=settings)
    assert not (tmp_path / "lake" / "raw").exists()


def test_landing_a_folder_skips_hidden_files(tmp_path: Path) -> None:
    folder = tmp_path / "delivery"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    (folder / "a.csv").write_text("a\n1\n")
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dh"))
    uris = commands.land([folder], settings=settings, prefix="v/")
    assert [u.rsplit("/raw/", 1)[1] for u in uris] == ["v/a.csv"]


def test_settings_refuse_unknown_lake_schemes() -> None:
    with pytest.raises(ValueError, match="unsupported scheme 'ftp'"):
        Settings.from_env({"CRYPTODUDEZ_LAKE": "ftp://x/y"})
    with pytest.raises(ValueError, match="needs a bucket"):
        Settings.from_env({"CRYPTODUDEZ_LAKE": "s3://"})
    assert Settings.from_env({"CRYPTODUDEZ_LAKE": "file:///tmp/x"}).lake == "/tmp/x"


@pytest.mark.parametrize("bucket", ["my lake", "lake:1", "a" * 256, "lake?x", "läke", "lake#"])
def test_settings_refuse_an_s3_lake_whose_bucket_cannot_exist(
        bucket: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=f"'{re.escape(bucket[:40])}.*' is no S3 bucket name"):
        Settings.from_env({"CRYPTODUDEZ_LAKE": f"s3://{bucket}/lake"})
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", f"s3://{bucket}/lake")
    assert cli.main(["summary"]) != 0
    err = capsys.readouterr().err.strip()
    assert "is no S3 bucket name" in err and "\n" not in err and "Traceback" not in err
    for fine in ("lake", "my-lake.eu-1", "a" * 63, "b", "Legacy_Bucket"):  # botocore's rule
        assert Settings.from_env({"CRYPTODUDEZ_LAKE": f"s3://{fine}/p"}).lake.startswith("s3://")


@pytest.mark.parametrize("value", ["code-location", "host:", ":4000", "host:99999", "h:x"])
def test_settings_refuse_a_code_location_that_is_not_host_port(value: str) -> None:
    with pytest.raises(ValueError, match=r"CRYPTODUDEZ_CODE_LOCATION=.*use host:port"):
        Settings.from_env({"CRYPTODUDEZ_CODE_LOCATION": value})
    assert Settings.from_env({"CRYPTODUDEZ_CODE_LOCATION": "cl.internal:4000"}
                             ).code_location == "cl.internal:4000"


def test_settings_need_every_dagster_pg_variable_once_the_host_is_set() -> None:
    parts = {"DAGSTER_PG_HOST": "db", "DAGSTER_PG_DB": "dagster",
             "DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": "pw"}
    assert Settings.from_env(parts).dagster_pg_env
    assert not Settings.from_env({}).dagster_pg_env
    with pytest.raises(ValueError, match="DAGSTER_PG_HOST is set but DAGSTER_PG_PASSWORD"):
        Settings.from_env({k: v for k, v in parts.items() if k != "DAGSTER_PG_PASSWORD"})
    with pytest.raises(ValueError, match="DAGSTER_PG_PORT='0'"):
        Settings.from_env({**parts, "DAGSTER_PG_PORT": "0"})


def test_a_bad_code_location_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "CRYPTODUDEZ_CODE_LOCATION": "nowhere",
           "DAGSTER_HOME": str(tmp_path / "dh"), "CRYPTODUDEZ_LAKE": str(tmp_path / "lake")}
    done = subprocess.run([sys.executable, "-m", "cryptodudez.cli", "webserver"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "CRYPTODUDEZ_CODE_LOCATION='nowhere'" in done.stderr


def _one_line_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    """Exit status and the one stderr line of ``cryptodudez args`` run in this process."""
    try:
        code = cli.main(args)
    except SystemExit as exit_:  # argparse's own exit
        code = int(exit_.code or 0)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, (args, lines)
    return code, lines[0]


@pytest.fixture
def local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An existing, empty local lake in ``tmp_path/lake``; DAGSTER_HOME at ``tmp_path/dh``."""
    (tmp_path / "lake").mkdir()
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    return tmp_path


@pytest.mark.parametrize("command", ["serve", "ui", "webserver", "code-location"])
@pytest.mark.parametrize("host", ["", " ", "a b", "host\n"])
def test_an_empty_or_spaced_host_is_a_usage_error(
        local_env: Path, capsys: pytest.CaptureFixture[str], command: str, host: str) -> None:
    """``--host ""`` listened on every interface (0.0.0.0) instead of loopback."""
    code, line = _one_line_error(capsys, [command, "--host", host])
    assert code == 2
    assert f"argument --host: not a host to listen on: {host!r}" in line


@pytest.mark.parametrize(("make", "problem"), [
    (lambda p: p.mkdir(), "a folder, not a DuckDB file"),
    (lambda p: p.write_text("not duckdb\n"), "not a DuckDB database file"),
])
def test_a_warehouse_that_can_be_no_duckdb_file_is_refused_before_any_run(
        local_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        make: Any, problem: str) -> None:
    """Either started the CoinGecko run, which failed inside it (a reviewer)."""
    warehouse = local_env / "warehouse.duckdb"
    make(warehouse)
    monkeypatch.setenv("CRYPTODUDEZ_WAREHOUSE", str(warehouse))
    assert _one_line_error(capsys, ["coingecko", "--from", "2022-01-01", "--to",
                                    "2022-01-05"]) == (
        2, f"cryptodudez: error: CRYPTODUDEZ_WAREHOUSE={warehouse}: {problem}")
    assert not (local_env / "dh").exists()  # no run was started


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_a_file_that_opens_but_cannot_be_read_is_named(
        local_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``/proc/self/mem`` opens and then fails to read: the error was a bare ``OSError``."""
    src = local_env / "src"
    src.mkdir()
    (src / "a.csv").write_text("a\n1\n")
    (src / "z.csv").symlink_to("/proc/self/mem")
    assert _one_line_error(capsys, ["land", str(src)]) == (
        2, f"cryptodudez: error: {src / 'z.csv'}: could not be landed (Input/output error); "
           "1 landed before it")


def test_land_refuses_an_empty_path_and_the_lake_itself(
        local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``land ""`` landed the current folder, and ``land .`` beside the lake copied the lake
    into its own raw/, a level deeper at each run (a reviewer)."""
    lake = local_env / "lake"
    (lake / "raw" / "old").mkdir(parents=True)
    (lake / "raw" / "old" / "a.csv").write_text("a\n1\n")
    (local_env / "new.csv").write_text("a\n1\n")
    monkeypatch.chdir(local_env)
    before = sorted(p.relative_to(lake) for p in lake.rglob("*"))
    cases = [([""], "argument PATH: an empty path"),
             (["."], f".: holds the lake ({lake}); land files from outside it"),
             ([str(lake)], f"{lake}: is the lake ({lake}); land files from outside it"),
             (["new.csv", "lake/raw/old"],
              f"lake/raw/old: is in the lake ({lake}); land files from outside it"),
             (["lake/raw/old/a.csv"], "is in the lake")]
    for args, message in cases:
        code, line = _one_line_error(capsys, ["land", *args])
        assert code == 2, args
        assert message in line, (args, line)
    assert sorted(p.relative_to(lake) for p in lake.rglob("*")) == before  # nothing landed
    assert cli.main(["land", "new.csv"]) == 0


@pytest.mark.parametrize("command", ["ui", "webserver", "code-location"])
@pytest.mark.parametrize("port", ["abc", "0", "-1", "65536", "70000", "99999", "3e3", "１２"])
def test_a_port_outside_1_to_65535_is_a_usage_error(
        command: str, port: str, local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 99999 used to listen on 99999 mod 65536; ui took any string and failed 29 s later
    def no_exec(*args: object) -> None:
        raise AssertionError("the port was accepted: the command would start its server")

    monkeypatch.setattr(os, "execv", no_exec)  # a regression must not replace this process
    monkeypatch.delenv("CRYPTODUDEZ_HEALTH_FILE", raising=False)
    code, line = _one_line_error(capsys, [command, "--port", port])
    assert code == 2
    assert f"argument --port: not a TCP port (1 to 65535): {port!r}" in line


@pytest.mark.parametrize("command", ["ui", "webserver", "code-location"])
def test_ports_are_whole_numbers(command: str) -> None:
    for port in ("1", "3000", "65535"):
        assert cli._parser().parse_args([command, "--port", port]).port == int(port)


@pytest.mark.parametrize("shard", [["--shard", "-1/2"], ["--shard=-1/2"], ["--sha", "-1/2"]])
def test_a_shard_beginning_with_a_dash_is_one_line_naming_its_form(
        shard: list[str], local_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--shard -1/2`` was taken for an option ("argument --shard: expected one argument")."""
    code, line = _one_line_error(capsys, ["kpi", "--date", "2024-01-01", *shard])
    assert code == 2
    assert line == ("cryptodudez kpi: error: argument --shard: expected i/n, which needs "
                    "0 <= i < n and at most 1024 shards, got '-1/2' (see cryptodudez kpi "
                    "--help)")


@pytest.mark.parametrize("shard", ["\u0661/2", "\u0660/\u0662", " 0/2", "+0/2", "0/2 ",
                                   "0_0/2", "0/2\n", "0/+2", "\uff10/2"])
def test_a_shard_in_anything_but_ascii_digits_is_refused(
        shard: str, local_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: ``--shard '\u0661/2'`` (an Arabic-Indic one) computed shard 1/2, and `` 0/2`` and
    ``+0/2`` were accepted: ``int()`` takes them all."""
    code, line = _one_line_error(capsys, ["kpi", "--date", "2024-01-01", "--shard", shard])
    assert (code, line) == (2, "cryptodudez kpi: error: argument --shard: expected i/n, which "
                               "needs 0 <= i < n and at most 1024 shards, got "
                               f"{shard!r} (see cryptodudez kpi --help)")


@pytest.mark.parametrize(("argv", "option"), [
    (["kpi", "--date", "2026-11-01", "--date", "2026-11-02"], "--date"),
    (["kpi", "--da", "2026-11-01", "--date=2026-11-02"], "--date"),  # abbreviated, attached
    (["kpi", "--date", "2026-11-01", "--shard", "0/2", "--shard", "1/2"], "--shard"),
    (["kpi", "--date", "2026-11-01", "--shard", "0/2", "--sha=1/2"], "--shard"),
    (["kpi", "--date", "2026-11-01", "--source", "events", "--source", "rollups"],
     "--source"),
    (["kpi", "--date", "2026-11-01", "--out", "{tmp}/a.json", "--out", "{tmp}/b.json"],
     "--out"),
    (["backfill-events", "--from", "2026-11-01", "--from", "2026-11-02", "--to",
      "2026-11-03"], "--from"),
    (["backfill-events", "--from", "2026-11-01", "--to", "2026-11-02", "--to",
      "2026-11-03"], "--to"),
    (["coingecko", "--coin", "bitcoin", "--coin", "ethereum", "--from", "2022-01-01",
      "--to", "2022-01-02"], "--coin"),
    (["land", "f.csv", "--prefix", "a", "--prefix", "b"], "--prefix"),
    (["serve", "--port", "8000", "--port", "8001"], "--port"),
    (["ui", "--host", "127.0.0.1", "--host", "localhost"], "--host"),
])
def test_an_option_of_one_value_given_twice_is_one_line_naming_it(
        argv: list[str], option: str, local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: argparse kept the last value silently (``--date A --date B`` computed B)."""
    def no_exec(*args: object) -> None:
        raise AssertionError("the repeat was accepted: the command would start its server")

    monkeypatch.setattr(os, "execv", no_exec)
    argv = [arg.format(tmp=local_env) for arg in argv]  # a regression writes nothing here
    prog = f"cryptodudez {argv[0]}"
    assert _one_line_error(capsys, argv) == (
        2, f"{prog}: error: argument {option}: given more than once; it takes one value, "
           f"give it once (see {prog} --help)")
    assert not (local_env / "dh").exists()  # refused before anything ran


def test_merge_given_once_per_part_merges_every_part(
        local_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: ``kpi --merge p0.json --merge p1.json`` merged p1.json alone, exit 0."""
    parts = []
    for shard in (0, 1, 2):
        parts.append(local_env / f"p{shard}.json")
        parts[-1].write_text(json.dumps({**_SHARD_0_PART, "shards": [shard],
                                         "shard_count": 3}))
    assert cli.main(["kpi", "--merge", str(parts[0]), "--merge", str(parts[1]),
                     str(parts[2])]) == 0
    out = capsys.readouterr().out
    assert (json.loads(out)["shards"], json.loads(out)["complete"]) == ([0, 1, 2], True)
    # --out goes through the store-once action, whose bookkeeping must not reach the command
    namespace = cli._parser().parse_args(["kpi", "--merge", "a", "--out", "o.json",
                                          "--merge", "b"])
    assert (namespace.merge, hasattr(namespace, server._GIVEN)) == (
        [Path("a"), Path("b")], False)


# delta-rs's message for an S3 lake whose bucket is missing, as QA saw it (shortened)
_COLOURED = ("Generic S3 error: Error performing list request:\n\x1b[31m\u21b3\x1b[0m "
             "NoSuchBucket\x1b]8;;https://x\x07 (link)\x1b]8;;\x07 \x07bell \x00 \x9b")


@pytest.mark.parametrize(("error", "status", "shown"), [
    (OSError(_COLOURED), 1, "OSError: "),
    (cli.CliError(_COLOURED), 2, ""),
    (cli.DataError(_COLOURED), 1, ""),
])
def test_an_error_line_holds_no_terminal_escape_or_control_character(
        error: Exception, status: int, shown: str, local_env: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: an S3 lake without its bucket printed delta-rs's ESC[31m↳ESC[0m as they were."""
    def fail(settings: Settings) -> str:
        raise error

    monkeypatch.setattr(commands, "summary", fail)
    assert _one_line_error(capsys, ["summary"]) == (
        status, f"cryptodudez: error: {shown}Generic S3 error: Error performing list request: "
                "\u21b3 NoSuchBucket (link) \\x07bell \\x00 \\x9b")


def test_what_follows_a_double_dash_is_left_as_typed() -> None:
    argv = ["land", "--", "--shard", "-1/2"]  # files named so
    assert cli._attach_dash_values(argv) == argv


@pytest.mark.parametrize(("argv", "prog", "unknown"), [
    (["kpi", "--date", "2024-01-01", "--bogus"], "cryptodudez kpi", "--bogus"),
    (["ingest", "--nope"], "cryptodudez ingest", "--nope"),
    (["summary", "extra"], "cryptodudez summary", "extra"),
    (["--bogus", "summary"], "cryptodudez", "--bogus"),  # the top level's own
])
def test_an_unknown_argument_points_to_the_help_of_its_command(
        argv: list[str], prog: str, unknown: str, local_env: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A subcommand's unknown flag pointed to ``cryptodudez --help``, which does not list it."""
    code, line = _one_line_error(capsys, argv)
    assert code == 2
    assert line == f"{prog}: error: unrecognized arguments: {unknown} (see {prog} --help)"


def test_a_backfill_outside_the_event_partitions_is_refused_before_any_run(
        local_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    today = datetime.now(tz=UTC).date()
    cases = [
        (["--from", "1999-12-31", "--to", "2000-01-02"],
         "--from 1999-12-31: the daily event partitions start on 2000-01-01"),
        (["--from", str(today), "--to", str(today + timedelta(days=1))],
         f"--to {today + timedelta(days=1)}: the last daily event partition is today (UTC), "
         f"{today}"),
    ]
    for args, message in cases:
        code, line = _one_line_error(capsys, ["backfill-events", *args])
        assert (code, line) == (2, f"cryptodudez: error: {message}")
    assert not (local_env / "dh").exists()  # no run was started: no instance was even made


START, TODAY = date(2000, 1, 1), date(2026, 12, 3)


@pytest.mark.parametrize(("days", "chosen", "note"), [
    ([date(2026, 1, 5), date(2026, 11, 2)], [date(2026, 1, 5), date(2026, 11, 2)], None),
    ([START, TODAY, START], [START, TODAY], None),  # the bounds are partitions; no repeats
    ([START, date(2026, 11, 1), date(2099, 12, 31)], [START, date(2026, 11, 1)],
     "not compacting 1 of 3 days with events: 2099-12-31 after today (UTC), 2026-12-03, "
     "the last daily partition (their KPIs are still computed by `kpi --date`)"),
    ([date(1999, 12, 31), TODAY + timedelta(days=1), date(2099, 12, 31)], [],
     "not compacting 3 of 3 days with events: 1999-12-31 before the first daily partition, "
     "2000-01-01; 2026-12-04...2099-12-31 (2 days) after today (UTC), 2026-12-03, the last "
     "daily partition (their KPIs are still computed by `kpi --date`)"),
])
def test_the_demo_compacts_only_the_days_with_events_that_are_daily_partitions(
        days: list[date], chosen: list[date], note: str | None) -> None:
    """QA: the demo backfilled every calendar day from the first event day to the last, so a
    lake of 2000-01-01 and 2099-12-31 stopped it with "--from 2000-01-01 --to 2099-12-31: at
    most 366 days at a time" (flags never typed), and a sparse lake got a run per empty day."""
    assert commands.partitioned_event_days(days, start=START, end=TODAY) == (chosen, note)


def test_the_demo_goes_on_past_event_days_it_cannot_compact(
        local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ``cryptodudez demo`` over a lake of events on far-apart days, some after
    today: one recorded run per day with events up to today, one line on the others, and
    every later step runs (the samples' landing and ingest, and the slow steps, stubbed)."""
    today = datetime.now(tz=UTC).date()
    days = [date(2000, 1, 1), today - timedelta(days=400), today, date(2099, 12, 31)]
    storage = LakeStorage(str(local_env / "lake"))
    for n, day in enumerate(days):
        ingest_events(storage, events_file(local_env / f"e{n}.jsonl", spread_events(
            day, f"d{n}-", 6 + n)), f"events/e{n}.jsonl")
    later: list[str] = []
    monkeypatch.setattr(commands, "land", lambda *args, **kwargs: [])
    monkeypatch.setattr(commands, "ingest", lambda **kwargs: {"failed": 0})
    for step in ("sample_prediction", "sample_signal", "sample_correlation"):
        monkeypatch.setattr(commands, step, lambda settings, step=step: later.append(step) or "")
    monkeypatch.setattr(commands, "sample_stream", lambda: later.append("sample_stream") or "")
    monkeypatch.setattr(commands, "run_coingecko_cli",
                        lambda *args: later.append("coingecko") or 0)
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert (f"event lake: not compacting 1 of 4 days with events: 2099-12-31 after today "
            f"(UTC), {today}, the last daily partition") in out
    ran = re.findall(r"^events (\S+): compaction \+ KPIs done", out, re.MULTILINE)
    assert ran == [str(day) for day in days[:3]]
    assert "KPIs 2099-12-31: 9 events of 3 types" in out  # the busiest day, from its rollups
    assert later == ["sample_prediction", "sample_signal", "sample_correlation",
                     "sample_stream", "coingecko"]
    with dg.DagsterInstance.from_config(str(local_env / "dh")) as instance:
        assert sorted(r.tags["dagster/partition"] for r in instance.get_runs()) == [
            str(day) for day in days[:3]]


@pytest.fixture
def landing(local_env: Path) -> Path:
    """Sources to land, and a lake whose raw/ holds a folder ``s`` and a file ``f``."""
    src = local_env / "src"
    for name in ("new1.csv", "s", "d1/a.csv", "d2/a.csv", "x", "folder/x/y.csv"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("a\n1\n")
    (src / "empty" / ".hidden").mkdir(parents=True)
    (src / "empty" / ".hidden" / "z.csv").write_text("a\n")
    os.mkfifo(src / "fifo")
    (local_env / "lake" / "raw" / "s").mkdir(parents=True)
    (local_env / "lake" / "raw" / "f").write_text("kept\n")
    return src


def _tree(folder: Path) -> list[tuple[str, bytes]]:
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes() if p.is_file() else b"")
                  for p in folder.rglob("*"))


def _unblock_a_reader(fifo: Path, seconds: float = 10.0) -> None:
    """Open and close ``fifo`` for writing once someone reads it (give up after ``seconds``).

    Code that wrongly reads the pipe then lands an empty file and the test fails, instead of
    hanging for ever.
    """
    def writer() -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError:  # no reader yet
                time.sleep(0.05)

    threading.Thread(target=writer, daemon=True).start()


def test_a_refused_land_lands_nothing(landing: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lake = landing.parent / "lake"
    before = _tree(lake)
    new1 = str(landing / "new1.csv")  # first, so a late check would land it before failing
    cases = [
        ([new1, str(landing / "s")], "refusing raw key 's': raw/s is a folder"),
        ([new1, "--prefix", "f"], f"refusing raw key 'f/new1.csv': {lake}/raw/f is a file"),
        ([new1, "--prefix", "p" * 300], "a name of 300 bytes, more than the 255"),
        ([new1, str(landing / "d1"), str(landing / "d2")],
         "refusing raw key 'a.csv': two of the files would land there"),
        ([new1, str(landing / "x"), str(landing / "folder")],
         "refusing raw key 'x/y.csv': raw/x is one of the files landed"),
        ([new1, "/dev/null"], "/dev/null: not a regular file"),
        ([new1, str(landing / "fifo")], f"{landing / 'fifo'}: not a regular file"),
        ([new1, str(landing / "empty")], "empty: a folder with no files to land"),
    ]
    _unblock_a_reader(landing / "fifo")
    for args, message in cases:
        code, line = _one_line_error(capsys, ["land", *args])
        assert code == 2, (args, line)
        assert message in line, (args, line)
        assert _tree(lake) == before, args
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(lake / "raw" / "f"))  # a lake that is a file
    assert _one_line_error(capsys, ["land", new1]) == (
        2, f"cryptodudez: error: CRYPTODUDEZ_LAKE={lake}/raw/f: {lake}/raw/f is not a folder")
    assert _tree(lake) == before


def test_the_same_file_named_twice_lands_once(landing: Path) -> None:
    settings = Settings.from_env()
    uris = commands.land([landing / "new1.csv", landing / "new1.csv"], settings=settings)
    assert [u.rsplit("/raw/", 1)[1] for u in uris] == ["new1.csv"]


def test_a_missing_or_file_lake_is_refused_by_the_reading_commands(
        local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A typo in CRYPTODUDEZ_LAKE read as an empty lake: exit 0 and an empty "valid" part;
    # backfill-events created the folder and reported a day compacted
    (local_env / "file").write_text("x\n")
    (local_env / "lake" / "raw").mkdir()
    (local_env / "lake" / "raw" / "a.csv").write_text("x\n")  # inside a lake: no lake
    out = local_env / "part.json"
    for lake, problem in ((local_env / "typo", "no such folder"),
                          (local_env / "file", f"{local_env / 'file'} is not a folder"),
                          (local_env / "lake" / "raw",
                           "no lake there (none of its entries is a lake's: raw/, "
                           "validated/, catalog.duckdb, ...)")):
        monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(lake))
        for args in (["summary"], ["kpi", "--date", "2026-11-01", "--out", str(out)],
                     ["backfill-events", "--from", "2024-01-01", "--to", "2024-01-01"]):
            assert _one_line_error(capsys, args) == (
                2, f"cryptodudez: error: CRYPTODUDEZ_LAKE={lake}: {problem}"), args
    assert not out.exists()
    assert sorted(p.name for p in (local_env / "lake" / "raw").iterdir()) == ["a.csv"]
    # a lake that holds only what a command leaves there is a lake (a reviewer: ingest of
    # unreadable files leaves catalog.duckdb alone, coingecko warehouse.duckdb)
    for entry in ("catalog.duckdb", "warehouse.duckdb", "quarantine"):
        only = local_env / f"only-{entry}"
        only.mkdir()
        (only / entry).mkdir()
        monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(only))
        assert cli.main(["summary"]) == 0, entry
        capsys.readouterr()
    assert not (local_env / "typo").exists()
    assert not (local_env / "dh").exists()  # no run was started


_SHARD_0_PART = {"format": "cryptodudez.kpi/2", "date": "2026-11-01", "source": "rollups",
                 "day_state": "0" * 16, "shards": [0], "shard_count": 1, "method": {},
                 "types": {}}


def test_a_folder_where_a_file_goes_is_a_usage_error(
        local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (local_env / "file").write_text("x\n")
    cases = [
        (["kpi", "--date", "2026-11-01", "--out", str(local_env)],
         f"--out {local_env}: is a folder"),
        (["kpi", "--date", "2026-11-01", "--out", str(local_env / "file" / "p.json")],
         f"--out {local_env / 'file' / 'p.json'}: {local_env / 'file'} is not a folder"),
    ]
    for args, message in cases:
        assert _one_line_error(capsys, args) == (2, f"cryptodudez: error: {message}")
    # a path the operating system cannot follow or write: a user error too (exit 2, not 1)
    loop = local_env / "loop"
    loop.symlink_to(loop)
    part = local_env / "part.json"
    part.write_text(json.dumps(_SHARD_0_PART))
    for args, message in (
            (["land", str(loop)], f"{loop}: cannot follow this path (Symlink loop from "),
            (["kpi", "--merge", str(part), "--out", str(loop)],
             f"--out {loop}: cannot write it (Too many levels of symbolic links)"),
            (["kpi", "--merge", str(part), "--out", "/proc/version"],
             "--out /proc/version: cannot write it (")):
        code, line = _one_line_error(capsys, args)
        assert (code, line.startswith(f"cryptodudez: error: {message}")) == (2, True), line
    monkeypatch.setenv("DAGSTER_HOME", str(local_env / "file"))
    assert _one_line_error(capsys, ["dagster-home"]) == (
        2, f"cryptodudez: error: DAGSTER_HOME={local_env / 'file'}: {local_env / 'file'} "
           "is not a folder")


def test_malformed_kpi_parts_are_named(local_env: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    parts = {"array.json": "[1, 2]", "null.json": "null",
             "keys.json": json.dumps({"format": "cryptodudez.kpi/2"})}
    for name, text in parts.items():
        (local_env / name).write_text(text)
    for name, message in (("array.json", "not a KPI part: Expected `object`, got `array`"),
                          ("null.json", "not a KPI part: Expected `object`, got `null`"),
                          ("keys.json", "not a KPI part: Object missing required field "
                                        "`date`")):
        assert _one_line_error(capsys, ["kpi", "--merge", str(local_env / name)]) == (
            2, f"cryptodudez: error: {local_env / name}: {message}")


@pytest.mark.parametrize(("options", "named"), [
    (["--source", "events"], "--source applies"), (["--shard", "1/2"], "--shard applies"),
    (["--shard", "0/1", "--source", "rollups"], "--shard and --source apply"),
])
def test_a_merge_refuses_options_it_would_ignore(options: list[str], named: str,
                                                 local_env: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # they were accepted and ignored: a merge takes them from its parts (a reviewer)
    assert _one_line_error(capsys, ["kpi", "--merge", str(local_env / "p.json"), *options]) == (
        2, f"cryptodudez: error: kpi --merge: {named} to --date only (a merge takes "
           "the shards and the source from its parts)")


def test_a_day_without_events_or_a_merge_short_of_shards_says_so_on_stderr(
        local_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Both exit 0 with valid JSON, which a reader could take for a real answer (QA).
    assert cli.main(["kpi", "--date", "2099-01-01"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["types"] == {}
    assert captured.err == ("cryptodudez kpi: note: no events of 2099-01-01 in the lake (a "
                            "mistyped --date, or a day not ingested yet?)\n")
    part = local_env / "p0.json"
    part.write_text(json.dumps({**_SHARD_0_PART, "shard_count": 2}))
    assert cli.main(["kpi", "--merge", str(part)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "cryptodudez kpi: note: no events of 2026-11-01 in these parts (a mistyped --date, "
        "or a day not ingested yet?)",
        "cryptodudez kpi: note: shards [1] of 2 are missing: the totals cover only the parts "
        "given"]
    assert cli.main(["kpi", "--date", "2099-01-01", "--shard", "1/2"]) == 0
    assert capsys.readouterr().err.startswith(
        "cryptodudez kpi: note: no events of 2099-01-01 in shard 1/2 (")


def test_summary_shows_quarantined_events_before_any_valid_one(local_env: Path) -> None:
    folder = local_env / "lake" / "quarantine" / "events"
    folder.mkdir(parents=True)
    pl.DataFrame({"source": ["file:///a"] * 2, "line": [1, 2], "raw": ["{", "x"],
                  "reason": ["malformed JSON"] * 2}).write_parquet(folder / "q.parquet")
    lines = commands.summary(Settings.from_env()).splitlines()
    assert [line.split() for line in lines if line.startswith("events")] == [
        ["events", "0", "2", "no", "valid", "event", "yet"]]


def test_a_polars_panic_is_one_line_and_exit_1(local_env: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # pyo3's PanicException derives from BaseException: `except Exception` let it through.
    # Where the lake is read it names what was read; anywhere else main() says it in one line.
    def panics(*args: object, **kwargs: object) -> None:
        raise PanicException("assertion failed: range.end as u64 <= self.size")

    monkeypatch.setattr(commands.kpi, "compute", panics)
    assert _one_line_error(capsys, ["kpi", "--date", "2026-11-01", "--source", "events"]) == (
        1, f"cryptodudez: error: {local_env / 'lake' / 'validated' / 'events'}: cannot be "
           "read (PanicException: assertion failed: range.end as u64 <= self.size)")
    monkeypatch.setattr(commands, "summary", panics)
    assert _one_line_error(capsys, ["summary"]) == (
        1, "cryptodudez: error: summary: polars panicked (a corrupt file in the lake?): "
           "assertion failed: range.end as u64 <= self.size")


@pytest.mark.parametrize(("case", "status", "last_line"), [
    ("missing-file", 2, "CliError: no such file or directory: /nonexistent"),
    ("failure", 1, "RuntimeError: the lake is unreachable"),
    ("panic", 1, "PanicException: assertion failed"),
    ("corrupt", 1, "DataError: {rollups}: cannot be read (PanicException: assertion failed)"),
])
def test_traceback_changes_what_is_printed_not_the_exit_status(
        case: str, status: int, last_line: str, local_env: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # with --traceback the exception escaped main(): exit 1 whatever the error
    def fails(*args: object, **kwargs: object) -> None:
        raise (PanicException("assertion failed") if case in ("panic", "corrupt")
               else RuntimeError("the lake is unreachable"))

    # a panic outside any read of the lake reaches main() as it is; inside one, a DataError
    monkeypatch.setattr(commands, "summary", fails)
    monkeypatch.setattr(commands.kpi, "compute", fails)
    args = {"missing-file": ["land", "/nonexistent"], "panic": ["summary"]}.get(
        case, ["kpi", "--date", "2026-11-01"])
    assert cli.main(args) == status
    assert capsys.readouterr().err.count("\n") == 1
    assert cli.main([*args, "--traceback"]) == status
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    rollups = local_env / "lake" / "rollups" / "events" / "date=2026-11-01"
    assert err.strip().splitlines()[-1].endswith(last_line.format(rollups=rollups))
    if case == "corrupt":  # the panic it stands for is in the traceback too
        assert "PanicException: assertion failed\n\nThe above exception was the direct " \
               "cause of the following exception:" in err


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port held by a listening socket for the test's duration."""
    with held_port() as port:
        yield port


def test_ui_refuses_a_port_in_use_before_starting_anything(
        taken_port: int, local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the webserver logged "[Errno 98]" and hung; the daemon ran on with no UI, for ever
    def no_start(*args: object, **kwargs: object) -> None:
        raise AssertionError("ui started a process on a port in use")

    monkeypatch.setattr(os, "execv", no_start)
    monkeypatch.setattr(subprocess, "Popen", no_start)
    assert _one_line_error(capsys, ["ui", "--port", str(taken_port)]) == (
        1, f"cryptodudez ui: error: cannot listen on 127.0.0.1:{taken_port}: "
           "Address already in use")
    assert not (local_env / "dh").exists()


@pytest.mark.parametrize("role", ["webserver", "code-location"])
def test_dagster_roles_refuse_a_port_in_use_in_one_line(
        role: str, taken_port: int, local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # they printed a 43-line traceback and left a gRPC code server behind (a reviewer)
    def no_start(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{role} started a process on a port in use")

    monkeypatch.setattr(os, "execv", no_start)
    monkeypatch.delenv("CRYPTODUDEZ_HEALTH_FILE", raising=False)
    assert _one_line_error(capsys, [role, "--port", str(taken_port)]) == (
        1, f"cryptodudez {role}: error: cannot listen on 127.0.0.1:{taken_port}: "
           "Address already in use")


def test_coingecko_refuses_a_lake_that_is_a_file_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lake").write_text("not a folder")
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    assert _one_line_error(capsys, ["coingecko", "--coin", "bitcoin", "--from", "2022-01-01",
                                    "--to", "2022-01-31"]) == (
        2, f"cryptodudez: error: CRYPTODUDEZ_LAKE={tmp_path / 'lake'}: {tmp_path / 'lake'} "
           "is not a folder")
    assert not (tmp_path / "dh").exists()


def test_serve_refuses_a_lake_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # it started and polled that path for ever (a reviewer)
    (tmp_path / "lake").write_text("not a folder")
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("serve started"))
    assert _one_line_error(capsys, ["serve", "--port", "8000"]) == (
        2, f"cryptodudez: error: CRYPTODUDEZ_LAKE={tmp_path / 'lake'}: {tmp_path / 'lake'} "
           "is not a folder")


def test_a_relative_dagster_home_is_taken_from_the_working_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Dagster refuses a relative DAGSTER_HOME: ingest failed with exit 1 (a reviewer)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", "dh")
    assert cli.main(["dagster-home"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "dh")
    assert os.environ["DAGSTER_HOME"] == str(tmp_path / "dh")


SETPRIV = shutil.which("setpriv")


def _land_without_root_reads(sources: list[Path], lake: Path) -> subprocess.CompletedProcess[str]:
    """``cryptodudez land`` as root without the capabilities that read any file (as a user)."""
    if SETPRIV is None:
        pytest.skip("no setpriv (util-linux): cannot drop root's read-anything capability")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR), "CRYPTODUDEZ_LAKE": str(lake),
           "DAGSTER_HOME": str(lake.parent / "dh")}
    return subprocess.run([SETPRIV, "--bounding-set=-dac_override,-dac_read_search",
                           sys.executable, "-m", "cryptodudez.cli", "land",
                           *map(str, sources)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_land_refuses_a_folder_it_cannot_list_and_lands_nothing(tmp_path: Path) -> None:
    # its files were skipped without a word and the command exited 0 (a reviewer)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.csv").write_text("a\n")
    (src / "sub" / "b.csv").write_text("b\n")
    (src / "sub").chmod(0)
    try:
        done = _land_without_root_reads([src], tmp_path / "lake")
    finally:
        (src / "sub").chmod(0o755)
    assert (done.returncode, done.stderr.splitlines()) == (
        2, [f"cryptodudez: error: {src / 'sub'}: cannot be listed (Permission denied)"])
    assert not (tmp_path / "lake").exists()


def test_land_refuses_a_file_it_cannot_read_and_lands_nothing(tmp_path: Path) -> None:
    # the readable file was copied before the unreadable one failed the command (a reviewer)
    (tmp_path / "ok.csv").write_text("a\n")
    (tmp_path / "secret.csv").write_text("b\n")
    (tmp_path / "secret.csv").chmod(0)
    done = _land_without_root_reads([tmp_path / "ok.csv", tmp_path / "secret.csv"],
                                    tmp_path / "lake")
    assert (done.returncode, done.stderr.splitlines()) == (
        2, [f"cryptodudez: error: {tmp_path / 'secret.csv'}: cannot be read "
            "(Permission denied)"])
    assert not (tmp_path / "lake").exists()


def test_the_ui_command_exits_promptly_on_a_port_in_use(taken_port: int,
                                                         local_env: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    proc = subprocess.Popen([sys.executable, "-m", "cryptodudez.cli", "ui", "--port",
                             str(taken_port)], env=env, cwd=local_env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a regression must not leave a daemon behind
        proc.wait()
    assert (proc.returncode, out, err.splitlines()) == (1, "", [
        f"cryptodudez ui: error: cannot listen on 127.0.0.1:{taken_port}: "
        "Address already in use"])
    assert not (local_env / "dh").exists()


def test_ui_becomes_dagster_dev_on_a_free_port(local_env: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    became: list[list[str]] = []

    def execv(path: str, argv: list[str]) -> None:
        became.append(argv)
        raise SystemExit(0)  # as if this process had become dagster dev

    monkeypatch.setattr(os, "execv", execv)
    port = free_port()
    with pytest.raises(SystemExit):
        cli.main(["ui", "--port", str(port)])
    [argv] = became
    assert Path(argv[0]).name == "dagster" and argv[1] == "dev"
    assert argv[-4:] == ["-h", "127.0.0.1", "-p", str(port)]


@pytest.mark.parametrize(("argv0", "shown"), [
    (".venv/bin/cryptodudez", ".venv/bin/cryptodudez"),  # ./run demo: not on PATH
    ("{cwd}/.venv/bin/cryptodudez", ".venv/bin/cryptodudez"),
    ("./cryptodudez", "./cryptodudez"),
    ("{cwd}/cryptodudez", "./cryptodudez"),
    ("{cwd}/on-path/cryptodudez", "cryptodudez"),        # found on PATH: argv[0] is in full
    ("/elsewhere/bin/cryptodudez", "/elsewhere/bin/cryptodudez"),
])
def test_the_demos_hints_name_the_command_as_it_can_be_typed_again(
        argv0: str, shown: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = tmp_path / "on-path"
    on_path.mkdir()
    (on_path / "cryptodudez").write_text("#!/bin/sh\n")
    (on_path / "cryptodudez").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [argv0.format(cwd=tmp_path)])
    assert cli.this_command() == shown


LOADED = ("print(sorted(m for m in ('dagster', 'cryptodudez.definitions', "
          "'cryptodudez.commands') if m in sys.modules))")


def test_the_command_line_loads_no_pipeline_until_a_pipeline_command_runs(tmp_path: Path) -> None:
    """A bad argument and ``dagster-home`` answer without importing Dagster or a pipeline
    (seconds of CPU on every call, and on every start of a server role); ``summary`` then
    does import them, which shows the probe sees an import."""
    code = "\n".join([
        "import sys", "from cryptodudez import cli",
        "def call(argv):",
        "    try:", "        return cli.main(argv)",
        "    except SystemExit as exc:", "        return exc.code",  # argparse's own exit
        "print(call(['kpi', '--date', '2026-13-01']))", LOADED,
        "print(call(['dagster-home']))", LOADED,
        "print(call(['summary']))", LOADED])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRYPTODUDEZ_"))},
           "PYTHONPATH": str(PROJECT_DIR), "DAGSTER_HOME": str(tmp_path / "dh"),
           "CRYPTODUDEZ_LAKE": str(tmp_path / "lake")}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.splitlines() == [
        "2", "[]",
        str(tmp_path / "dh"), "0", "[]",
        "2", "['cryptodudez.commands', 'cryptodudez.definitions', 'dagster']"], done.stderr
    assert done.stderr.splitlines()[0].startswith("cryptodudez kpi: error: argument --date: ")


def test_the_definitions_load_no_model_or_chart_library_until_one_is_used() -> None:
    """Every Dagster process (the code server, each run and each step) imports the
    definitions: scikit-learn and matplotlib load where a model is fitted or a chart drawn,
    not there (about 2.7 s of each such start). Fitting and drawing then load them, which
    shows the probe sees an import."""
    probe = "print(sorted(m for m in ('sklearn', 'matplotlib') if m in sys.modules))"
    code = "\n".join([
        "import sys", "import numpy as np", "import cryptodudez.definitions", probe,
        "from cryptodudez.features import charts", "charts._png(charts.new_figure())", probe,
        "from cryptodudez.transforms import volume_model as vm",
        "x = np.random.default_rng(0).uniform(1, 100, (200, 2))",
        "vm.fit(x, x[:, 0] * 1.1, shrinkage=0.5)", probe])
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(
        PROJECT_DIR)}, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.splitlines() == ["[]", "['matplotlib']", "['matplotlib', 'sklearn']"], \
        done.stderr


def test_a_warehouse_below_a_file_is_refused_and_a_missing_folder_is_not(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match=f"{tmp_path / 'f'} is not a folder"):
        Settings.from_env({"CRYPTODUDEZ_WAREHOUSE": str(tmp_path / "f" / "sub" / "w.duckdb")})
    ok = Settings.from_env({"CRYPTODUDEZ_WAREHOUSE": str(tmp_path / "new" / "w.duckdb")})
    assert ok.warehouse_path == str(tmp_path / "new" / "w.duckdb")


# -- a file the lake cannot read: named, one status (1), never the usage status (2) ---------

DAY = "2026-11-01"


@pytest.fixture
def readable_lake(local_env: Path) -> Path:
    """local_env's lake, holding two files of everything a reading command reads.

    Two deliveries of events of DAY (no Dagster): two commits, two rollup files, two data
    files per type, quarantined lines; two validated and two quarantined files of a table.
    """
    storage = LakeStorage(str(local_env / "lake"))
    for name in ("a", "b"):
        path = events_file(local_env / f"{name}.jsonl", spread_events(
            date.fromisoformat(DAY), name, 30))
        with path.open("a") as fh:
            fh.write("{not json\n")
        ingest_events(storage, path, f"events/{name}.jsonl")
    for layer, frame in (("validated", pl.DataFrame({"Symbol": ["A", "B"]})),
                         ("quarantine", pl.DataFrame({"reason": ["bad: x", "bad: y"]}))):
        folder = local_env / "lake" / layer / "stock_prices"
        folder.mkdir(parents=True)
        for name in ("part-a.parquet", "part-b.parquet"):
            frame.write_parquet(folder / name)
    return local_env / "lake"


def _corrupt(path: Path, how: str) -> None:
    """Make ``path`` unreadable: another file's bytes, or cut short (a Parquet file keeps
    its footer's length and magic, which then point past the end)."""
    data = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"not a parquet file, nor JSON\n")
    elif path.suffix == ".json":  # a commit cut inside its first action
        path.write_bytes(data[: data.index(b"\n") // 2])
    else:
        path.write_bytes(data[: len(data) // 2] + data[-8:])


def _second(folder: Path, pattern: str) -> Path:
    """The last of the files matching ``pattern`` below ``folder`` (not the first read)."""
    found = sorted(folder.glob(pattern))
    assert len(found) >= 2, found
    return found[-1]


READING_CASES = {
    # command, the file made unreadable (below the lake)
    "summary-validated": (["summary"], "validated/stock_prices/*.parquet"),
    "summary-quarantine": (["summary"], "quarantine/stock_prices/*.parquet"),
    "summary-events-quarantine": (["summary"], "quarantine/events/*.parquet"),
    "summary-delta-log": (["summary"], "validated/events/_delta_log/*.json"),
    "kpi-rollups": (["kpi", "--date", DAY], f"rollups/events/date={DAY}/*.parquet"),
    "kpi-events": (["kpi", "--date", DAY, "--source", "events"],
                   f"validated/events/event_type=trade/date={DAY}/*/*.parquet"),
    "kpi-delta-log": (["kpi", "--date", DAY], "validated/events/_delta_log/*.json"),
}


@pytest.mark.parametrize("how", ["garbage", "cut"])
@pytest.mark.parametrize("case", sorted(READING_CASES))
def test_a_file_that_cannot_be_read_is_named_with_exit_status_1(
        case: str, how: str, readable_lake: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `summary` over a corrupt Parquet file exited 2, the usage status (pyarrow's
    ArrowInvalid is a ValueError), and `kpi` 1 with polars' ComputeError; neither named the
    file."""
    args, pattern = READING_CASES[case]
    assert cli.main(args) == 0  # readable first
    capsys.readouterr()
    broken = _second(readable_lake, pattern)
    _corrupt(broken, how)
    code, line = _one_line_error(capsys, args)
    assert (code, line.startswith(f"cryptodudez: error: {broken}: cannot be read (")) == (
        1, True), line  # 1: a failure; 2 is a bad argument's (README)


def test_a_corrupt_file_keeps_its_traceback_and_a_bad_argument_its_status(
        readable_lake: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    broken = _second(readable_lake, "validated/stock_prices/*.parquet")
    _corrupt(broken, "garbage")
    assert cli.main(["summary", "--traceback"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "pyarrow.lib.ArrowInvalid: Parquet magic bytes not found" in err  # the cause
    assert err.strip().splitlines()[-1].startswith(
        f"cryptodudez.cli.DataError: {broken}: cannot be read (ArrowInvalid: ")
    # the ValueErrors of a bad argument or setting are still usage errors, beside that file
    for args, env, message in (
            (["summary"], {"CRYPTODUDEZ_ENGINE": "bogus"}, "CRYPTODUDEZ_ENGINE='bogus'"),
            (["kpi", "--date", DAY, "--shard", "2/2"], {}, "expected i/n"),
            (["land", str(broken), "--prefix", "/"], {}, "argument --prefix: '/'")):
        with monkeypatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            code, line = _one_line_error(capsys, args)
        assert (code, message in line) == (2, True), (args, line)


def test_a_readers_value_error_anywhere_is_a_data_error_not_a_usage_error(
        local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the reads that name their file, a reader's ValueError still exits 1."""
    import pyarrow as pa  # noqa: PLC0415 - only this test raises its error

    def raises(error: Exception) -> Any:
        def summary(*args: object) -> None:
            raise error
        return summary

    monkeypatch.setattr(commands, "summary", raises(pa.ArrowInvalid("bad footer")))
    assert _one_line_error(capsys, ["summary"]) == (
        1, "cryptodudez: error: data could not be read: ArrowInvalid: bad footer")
    monkeypatch.setattr(commands, "summary", raises(ValueError("a bad value")))
    assert _one_line_error(capsys, ["summary"]) == (2, "cryptodudez: error: a bad value")


def test_data_the_kpis_cannot_trust_is_no_usage_error(
        readable_lake: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def disagrees(*args: object, **kwargs: object) -> None:
        msg = f"{DAY}: the table's log counts 3 events of type trade in its files, which hold 2"
        raise commands.kpi.KpiDataError(msg)

    monkeypatch.setattr(commands.kpi, "compute", disagrees)
    assert _one_line_error(capsys, ["kpi", "--date", DAY]) == (
        1, f"cryptodudez: error: {DAY}: the table's log counts 3 events of type trade in its "
           "files, which hold 2")


# -- land says what it skips, and refuses a prefix that names no folder under raw/ ----------

def test_land_lists_the_hidden_files_it_skips(local_env: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """QA: the hidden files of a landed folder were skipped without a word."""
    folder = local_env / "delivery"
    for name in (".git/HEAD", ".DS_Store", "a.csv", "sub/.x", "sub/b.csv"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("a\n1\n")
    assert cli.main(["land", str(folder), "--prefix", "v"]) == 0
    lake = local_env / "lake"
    assert capsys.readouterr().out.splitlines() == [
        f"landed file://{lake}/raw/v/a.csv", f"landed file://{lake}/raw/v/sub/b.csv",
        f"skipped 2 hidden files and 1 hidden folder: {folder}/.DS_Store, {folder}/.git/, "
        f"{folder}/sub/.x (the lake never lists hidden names, so they would never be "
        "ingested)"]
    assert cli.main(["land", str(folder / "a.csv"), "--prefix", "w"]) == 0  # nothing hidden
    assert "skipped" not in capsys.readouterr().out
    assert commands.skipped_hidden([f"d/.h{n}" for n in range(7)]).startswith(
        "skipped 7 hidden files: d/.h0, d/.h1, d/.h2, d/.h3, d/.h4 and 2 more (")


@pytest.mark.parametrize(("prefix", "problem"), [
    ("/", "names no folder under raw/"), ("///", "names no folder under raw/"),
    ("..", "has an empty, '.' or '..' segment"), ("a/..", "has an empty, '.' or '..' segment"),
    ("../x", "has an empty, '.' or '..' segment"),
    ("a/../../b/", "has an empty, '.' or '..' segment"), ("/vendor", "is an absolute path"),
    ("a//b", "has an empty, '.' or '..' segment"), ("./a", "has an empty, '.' or '..' segment"),
    ("a/.hidden", "has a hidden segment"), ("a\\b", "contains a backslash"),
])
def test_a_prefix_that_names_no_folder_under_raw_is_refused(
        prefix: str, problem: str, local_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `--prefix /` landed at the root of raw/ (the prefix was stripped of its '/')."""
    (local_env / "f.csv").write_text("a\n1\n")
    code, line = _one_line_error(capsys, ["land", str(local_env / "f.csv"), "--prefix", prefix])
    assert code == 2
    assert line.startswith(f"cryptodudez land: error: argument --prefix: {prefix!r} {problem}")
    with pytest.raises(cli.CliError, match=f"^--prefix {re.escape(repr(prefix))}: {problem}"):
        commands.land([local_env / "f.csv"], settings=Settings.from_env(), prefix=prefix)
    assert not (local_env / "lake" / "raw").exists()


@pytest.mark.parametrize(("prefix", "key"), [("v", "v/f.csv"), ("v/", "v/f.csv"),
                                             ("vendor/2026-11//", "vendor/2026-11/f.csv"),
                                             ("", "f.csv")])
def test_a_prefix_lands_below_raw(prefix: str, key: str, local_env: Path) -> None:
    (local_env / "f.csv").write_text("a\n1\n")
    uris = commands.land([local_env / "f.csv"], settings=Settings.from_env(), prefix=prefix)
    assert [u.rsplit("/raw/", 1)[1] for u in uris] == [key]


# -- summary names the catalogue and the warehouse where they are ---------------------------

def test_summary_names_the_metastore_and_warehouse_that_exist(
        local_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: on a lake holding only the warehouse, summary named a catalog.duckdb that did
    not exist, and not the warehouse."""
    import duckdb  # noqa: PLC0415

    lake = local_env / "lake"
    duckdb.connect(str(lake / "warehouse.duckdb")).close()  # what `coingecko` alone leaves

    def places() -> dict[str, str]:
        lines = commands.summary(Settings.from_env()).splitlines()
        return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)
                if k in ("metastore", "warehouse")}

    assert places() == {
        "metastore": f"none yet ({lake / 'catalog.duckdb'} is created by the first ingest)",
        "warehouse": f"{lake / 'warehouse.duckdb'} (CoinGecko prices and their moving "
                     "average, correlation results)"}
    elsewhere = local_env / "elsewhere.duckdb"
    monkeypatch.setenv("CRYPTODUDEZ_WAREHOUSE", str(elsewhere))
    assert places()["warehouse"] == (f"none yet ({elsewhere} is created by the coingecko "
                                     "command or the correlation job)")
    duckdb.connect(str(lake / "catalog.duckdb")).close()
    assert places()["metastore"] == f"{lake / 'catalog.duckdb'} (tables files, columns)"
    s3 = Settings(lake="s3://bucket/lake", glue_database="crypto")
    assert commands._metastore_place(s3, Lake(uri=s3.lake)) == (
        "AWS Glue database crypto (tables files, columns)")


def test_coingecko_writes_its_chart_and_prints_where(
        local_env: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: the chart was drawn into the run's metadata only, and no output said where."""
    for var in [k for k in os.environ if k.startswith("COINGECKO_")]:
        monkeypatch.delenv(var)  # the offline recording
    assert cli.main(["coingecko", "--from", "2022-01-05", "--to", "2022-01-09"]) == 0
    out = capsys.readouterr().out.splitlines()
    chart = local_env / "lake" / "charts" / "bitcoin_usd_2022-01-05_2022-01-09.png"
    assert out[-1] == f"  chart: {chart}"
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert chart_path(Settings.from_env(), "bitcoin", "2022-01-05..2022-01-09") == chart
