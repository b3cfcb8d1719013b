"""The command line: every error is one clear line and a non-zero exit; nothing half-written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cryptodudez import cli
from cryptodudez.resources.lake import Lake, checked_raw_key
from cryptodudez.settings import PROJECT_DIR, Settings

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
        (["land", "f.csv", "--prefix", "../../escape"], {}, "refusing raw key", 2),
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
        cli.land([good, tmp_path / "missing.csv"], settings=settings)
    assert not (tmp_path / "lake" / "raw").exists()


def test_landing_a_folder_skips_hidden_files(tmp_path: Path) -> None:
    folder = tmp_path / "delivery"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    (folder / "a.csv").write_text("a\n1\n")
    settings = Settings(lake=str(tmp_path / "lake"), dagster_home=str(tmp_path / "dh"))
    uris = cli.land([folder], settings=settings, prefix="v/")
    assert [u.rsplit("/raw/", 1)[1] for u in uris] == ["v/a.csv"]


def test_settings_refuse_unknown_lake_schemes() -> None:
    with pytest.raises(ValueError, match="unsupported scheme 'ftp'"):
        Settings.from_env({"CRYPTODUDEZ_LAKE": "ftp://x/y"})
    with pytest.raises(ValueError, match="needs a bucket"):
        Settings.from_env({"CRYPTODUDEZ_LAKE": "s3://"})
    assert Settings.from_env({"CRYPTODUDEZ_LAKE": "file:///tmp/x"}).lake == "/tmp/x"


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
