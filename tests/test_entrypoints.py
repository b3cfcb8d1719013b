"""The image's entry commands, run here as the container runs them (no Docker engine needed).

Each role is started with the Dockerfile's own ``ENTRYPOINT``/``CMD`` and ``ENV``, its container
paths (``/app``, ``/data``, ``/tmp``) mapped to this checkout and a temporary folder, on a free
port; the test checks where it listens, that it answers, and that the Dockerfile's
``HEALTHCHECK`` command says healthy while it runs and unhealthy once it is gone. Every process
runs in its own session and its whole group is terminated.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy

from cryptodudez import cli
from cryptodudez.resources.lake import Lake
from cryptodudez.settings import PROJECT_DIR
from serving import server
from serving.app import ServingSettings, create_app
from tests.helpers import held_port, publish
from tests.test_dockerfile import default_command, entrypoint, healthcheck, image_env

# Bound on a process's start: 5 to 20 s when idle, over 60 s on a shared 2-core machine.
START_SECONDS = 180
# What dagster-daemon logs (on stdout) once its daemons' loops start.
STARTED = "Instance is configured with the following daemons"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


# --- the worker count: the container's CPU quota, not the host's CPUs ---------------------

def _cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(("files", "affinity", "expected"), [
    ({"cpu.max": "max 100000\n"}, 8, 8),                       # v2, no quota
    ({"cpu.max": "200000 100000\n"}, 64, 2),                   # v2, --cpus 2 on 64 cores
    ({"cpu.max": "150000 100000\n"}, 64, 2),                   # 1.5 CPUs round up
    ({"cpu.max": "50000 100000\n"}, 64, 1),                    # half a CPU: still one worker
    ({"cpu.max": "400000 100000\n"}, 2, 2),                    # affinity below the quota
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 8, 8),  # v1
    ({"cpu,cpuacct/cpu.cfs_quota_us": "300000\n",
      "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 64, 3),   # v1, combined controller
    ({}, 6, 6),                                                # no cgroup files at all
    ({"cpu.max": "garbage\n"}, 4, 4),                          # unreadable: no known limit
])
def test_workers_follow_the_cgroup_cpu_quota(tmp_path: Path, files: dict[str, str],
                                             affinity: int, expected: int) -> None:
    assert server.available_cpus(_cgroup(tmp_path, files), affinity=affinity) == expected


def test_default_workers_and_host_come_from_the_container(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "CGROUP_ROOT", _cgroup(tmp_path, {"cpu.max": "100000 100000"}))
    monkeypatch.delenv("CRYPTODUDEZ_HOST", raising=False)
    parser = argparse.ArgumentParser()
    server.add_server_arguments(parser)
    args = parser.parse_args([])
    assert (args.workers, args.host) == (1, "127.0.0.1")  # outside a container: loopback only
    monkeypatch.setenv("CRYPTODUDEZ_HOST", "0.0.0.0")
    parser = argparse.ArgumentParser()
    server.add_server_arguments(parser)
    assert parser.parse_args([]).host == "0.0.0.0"


# --- bad options and settings: one line, never a traceback ----------------------------------

def _not_started(*args: object, **kwargs: object) -> None:
    raise AssertionError("the server was started")


@pytest.mark.parametrize("argv", [["--port", "99999"], ["--port", "-1"], ["--port", "0"],
                                  ["--port", "http"], ["--workers", "0"], ["--workers", "-3"],
                                  # a fork bomb before the bound (a reviewer ran it)
                                  ["--workers", "99999999999999999999"], ["--workers", "9"],
                                  ["--workers", "٣"], ["--workers", "+2"],
                                  # given twice: the last was kept silently
                                  ["--port", "8000", "--port", "8001"],
                                  ["--workers", "1", "--workers", "2"],
                                  ["--host", "127.0.0.1", "--host", "0.0.0.0"]])
def test_serve_refuses_a_port_or_worker_count_in_one_line(
        argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.delenv("CRYPTODUDEZ_HEALTH_FILE", raising=False)
    monkeypatch.setattr(server, "available_cpus", lambda: 2)  # at most 8 workers
    monkeypatch.setattr(server, "run", _not_started)
    monkeypatch.setattr(os, "execv", _not_started)  # `cryptodudez serve` becomes the server
    for prog, main in (("python -m serving", server.main),
                       ("cryptodudez serve", lambda a: cli.main(["serve", *a]))):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{prog}: error: argument {argv[0]}: ") and err.count("\n") == 1


def test_up_to_four_workers_per_cpu_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "available_cpus", lambda: 2)
    parser = argparse.ArgumentParser()
    server.add_server_arguments(parser)
    for workers in ("1", "2", "8", "08"):
        assert parser.parse_args(["--workers", workers]).workers == int(workers)


def test_serve_help_names_every_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(ServingSettings(lake=str(tmp_path / "lake")))
    routes = {route.path for route in app.routes if not route.path.startswith("/schema")}
    assert {"/predict", "/health", "/correlation"} <= routes
    for main in (server.main, lambda a: cli.main(["serve", *a])):
        with pytest.raises(SystemExit):
            main(["--help"])
        assert routes <= set(re.findall(r"/[\w/]+", capsys.readouterr().out))


@pytest.mark.parametrize(("timeout", "recorded", "said"), [
    ("abc", {"url": "http://127.0.0.1:9/health"}, "CRYPTODUDEZ_HEALTHCHECK_TIMEOUT='abc'"),
    ("-1", {"url": "http://127.0.0.1:9/health"}, "CRYPTODUDEZ_HEALTHCHECK_TIMEOUT='-1'"),
    ("nan", {"command": ["true"]}, "CRYPTODUDEZ_HEALTHCHECK_TIMEOUT='nan'"),
    ("", [1], "holds no check"),
    ("", 1, "holds no check"),
    ("", None, "holds no check"),
    ("", {"command": []}, "holds no check"),
    ("", {"command": ["true"], "env": [1]}, "holds no check"),
    ("", {"url": "notaurl"}, "unhealthy: GET notaurl: ValueError"),
])
def test_a_bad_health_setting_or_file_is_unhealthy_in_one_line(
        timeout: str, recorded: object, said: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    health = tmp_path / "health.json"
    health.write_text(json.dumps(recorded))
    env = {"CRYPTODUDEZ_HEALTH_FILE": str(health), "CRYPTODUDEZ_HEALTHCHECK_TIMEOUT": timeout}
    assert server.healthcheck(env) == 1  # Docker's "unhealthy"
    out = capsys.readouterr().out
    assert said in out and out.count("\n") == 1, out


def test_serve_refuses_a_health_file_it_cannot_write_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "health"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"CRYPTODUDEZ_HEALTH_FILE=.*Is a directory"):
        server.write_health_file({"url": "http://127.0.0.1:1/health"},
                                 {"CRYPTODUDEZ_HEALTH_FILE": str(folder)})
    assert sorted(tmp_path.iterdir()) == [folder], "nothing staged is left behind"
    monkeypatch.setattr(server, "run", _not_started)
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("CRYPTODUDEZ_HEALTH_FILE", str(folder))
    assert server.main(["--port", "8000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m serving: error: CRYPTODUDEZ_HEALTH_FILE=")
    assert err.count("\n") == 1, err
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", "http://lake")  # a bad setting of the server's own
    assert server.main(["--port", "8000"]) == 2
    assert capsys.readouterr().err.startswith("python -m serving: error: CRYPTODUDEZ_LAKE=")


@pytest.mark.parametrize(("argv", "host", "status", "reason"), [
    (["--workers", "1"], "127.0.0.1", 1, "Address already in use"),
    (["--workers", "2"], "127.0.0.1", 1, "Address already in use"),
    (["--host", "localhost", "--workers", "1"], "localhost", 1, "Address already in use"),
    (["--host", "999.1.1.1", "--workers", "1"], "999.1.1.1", 2, ""),  # resolves to nothing
    (["--host", "999.1.1.1", "--workers", "2"], "999.1.1.1", 2, ""),
    (["--host", "x" * 64, "--workers", "1"], "x" * 64, 2, ""),  # a label over 63 characters
])
def test_serve_refuses_an_address_it_cannot_listen_on_in_one_line(
        argv: list[str], host: str, status: int, reason: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn said so after the server announced itself, in a log line, and exited 3."""
    monkeypatch.setenv("CRYPTODUDEZ_LAKE", str(tmp_path / "lake"))
    monkeypatch.delenv("CRYPTODUDEZ_HEALTH_FILE", raising=False)
    monkeypatch.setattr(server, "run", _not_started)
    monkeypatch.setattr(os, "execv", _not_started)  # `cryptodudez serve` becomes the server
    with held_port() as port:
        for prog, main in (("python -m serving", server.main),
                           ("cryptodudez serve", lambda a: cli.main(["serve", *a]))):
            assert main(["--port", str(port), *argv]) == status
            out, err = capsys.readouterr()
            assert out == "", "nothing announced"
            assert err.startswith(f"{prog}: error: cannot listen on {host}:{port}: {reason}")
            assert err.count("\n") == 1, err


def test_serve_on_a_port_in_use_exits_before_announcing(tmp_path: Path) -> None:
    """The real command, exec'ing the server: one line on stderr, nothing on stdout, exit 1."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CRYPTODUDEZ_", "DAGSTER_"))}
    env["CRYPTODUDEZ_LAKE"] = str(tmp_path / "lake")
    with held_port() as port:
        done = subprocess.run([str(Path(sys.executable).with_name("cryptodudez")), "serve",
                               "--port", str(port), "--workers", "1"], env=env,
                              capture_output=True, text=True, timeout=START_SECONDS,
                              check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"cryptodudez serve: error: cannot listen on 127.0.0.1:{port}: "
                           "Address already in use\n")


def test_a_port_left_in_time_wait_is_free_to_listen_on() -> None:
    """SO_REUSEADDR, as uvicorn sets it: a server restarted at once is not refused."""
    with socket.socket() as listener:  # the previous server, which set it too
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first: its end goes to TIME_WAIT
        client.close()
    server.check_listen("127.0.0.1", port, workers=1)
    server.check_listen("127.0.0.1", port, workers=2)


# --- running the image's commands -----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def container_env(tmp_path: Path) -> dict[str, str]:
    """The image's ENV with its paths mapped here (``/app`` is this checkout)."""
    mapping = {"/app": str(PROJECT_DIR), "/data": str(tmp_path / "data"),
               "/tmp": str(tmp_path / "tmp")}

    def local(path: str) -> str:
        for inside, here in mapping.items():
            if path == inside or path.startswith(inside + "/"):
                return here + path[len(inside):]
        return path

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CRYPTODUDEZ_", "DAGSTER_"))}
    image = {k: ":".join(local(p) for p in v.split(":")) for k, v in image_env().items()}
    return {**env, **image, "PATH": f"{image['PATH']}:{os.environ.get('PATH', '')}"}


def _resolve(argv: list[str], env: dict[str, str]) -> list[str]:
    found = shutil.which(argv[0], path=env["PATH"])
    assert found, f"{argv[0]} not on the image's PATH"
    return [found, *argv[1:]]


class Role:
    """A started entry command: its process (own session) and its output, kept in files so
    that a chatty process never blocks on a full pipe."""

    def __init__(self, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.env = env
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout, self.stderr = logs / "stdout", logs / "stderr"
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(_resolve(argv, env), env=env, start_new_session=True,
                                         stdout=out, stderr=err)

    def alive(self) -> None:
        """Fail with its error output if it has exited."""
        if self.proc.poll() is not None:
            pytest.fail(f"exited with {self.proc.returncode}: "
                        f"{self.stderr.read_text(errors='replace')[-3000:]}")

    def output(self) -> str:
        """Everything it printed so far, stdout then stderr (Dagster logs to stdout)."""
        return (self.stdout.read_text(errors="replace") + "\n"
                + self.stderr.read_text(errors="replace"))

    def first_line(self) -> str:
        """The first line it prints on stdout (waiting for it while it runs)."""
        deadline = time.monotonic() + START_SECONDS
        while "\n" not in (text := self.stdout.read_text()):
            self.alive()
            assert time.monotonic() < deadline, f"no line printed within {START_SECONDS} s"
            time.sleep(0.1)
        return text.split("\n", 1)[0]

    def stop(self) -> str:
        """Terminate its whole process group; return what it printed on stdout."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        return self.stdout.read_text()


@pytest.fixture
def roles() -> Iterator[list[Role]]:
    """Started roles, all stopped at the end whatever happens."""
    started: list[Role] = []
    yield started
    for role in started:
        with contextlib.suppress(ProcessLookupError):  # its group may be gone already
            os.killpg(role.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            role.proc.wait(timeout=10)


def start(roles: list[Role], argv: list[str], env: dict[str, str], logs: Path) -> Role:
    """Start an entry command and remember it for clean-up."""
    role = Role(argv, env, logs)
    roles.append(role)
    return role


def run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK command, with the container's environment."""
    _, command = healthcheck()
    return subprocess.run(_resolve(command, env), env=env, capture_output=True, text=True,
                          timeout=START_SECONDS + 30, check=False)


def wait_for(role: Role, url: str) -> bytes:
    """GET ``url`` until it answers 200 (the role must stay up meanwhile)."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        role.alive()
        assert time.monotonic() < deadline, f"{url} did not answer within {START_SECONDS} s"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return bytes(response.read())
        except OSError:
            pass
        time.sleep(0.2)


def listening(port: int, table: str = "/proc/net/tcp") -> set[str]:
    """Addresses with a listening TCP socket on ``port`` (IPv4 from /proc/net/tcp; IPv6,
    as ``::`` for the wildcard or the hex address, from /proc/net/tcp6)."""
    found = set()
    for line in Path(table).read_text().splitlines()[1:]:
        fields = line.split()
        address, port_hex = fields[1].split(":")
        if int(port_hex, 16) == port and fields[3] == "0A":
            if len(address) == 8:
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
            else:
                found.add("::" if int(address, 16) == 0 else address)
    return found


def _with_port(command: list[str], port: int) -> list[str]:
    """``command`` with its ``--port`` value replaced (the image's fixed port may be in use)."""
    if "--port" in command:
        i = command.index("--port")
        return [*command[:i + 1], str(port), *command[i + 2:]]
    return [*command, "--port", str(port)]


@linux_only
@pytest.mark.slow
def test_serve_as_the_image_runs_it(tmp_path: Path, roles: list[Role]) -> None:
    env = container_env(tmp_path)
    lake = Path(env["CRYPTODUDEZ_LAKE"])
    publish(Lake(uri=str(lake)), "v7")
    port = _free_port()
    role = start(roles, [*entrypoint(), "serve", "--port", str(port)], env,  # docker run … serve
                 tmp_path / "logs")
    line = role.first_line()
    workers = server.available_cpus()
    assert line == (f"serving volume_model v7 from {lake} on http://0.0.0.0:{port} "
                    f"({workers} worker{'s' if workers != 1 else ''})")
    assert b'"version":"v7"' in wait_for(role, f"http://127.0.0.1:{port}/health")
    assert listening(port) == {"0.0.0.0"}

    healthy = run_healthcheck(env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "/health: 200" in healthy.stdout
    assert role.stop() == line + "\n", "the server prints exactly one line"
    unhealthy = run_healthcheck(env)
    assert unhealthy.returncode != 0, unhealthy.stdout


@linux_only
@pytest.mark.slow
def test_serve_outside_a_container_says_when_there_is_no_model(tmp_path: Path,
                                                               roles: list[Role]) -> None:
    lake = tmp_path / "empty lake"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CRYPTODUDEZ_", "DAGSTER_"))}
    env["CRYPTODUDEZ_LAKE"] = str(lake)
    port = _free_port()
    cli = Path(sys.executable).with_name("cryptodudez")
    role = start(roles, [str(cli), "serve", "--port", str(port), "--workers", "1"], env,
                 tmp_path / "logs")
    line = role.first_line()
    assert line == (f"serving no volume_model yet (none published; polling for one) from "
                    f"{lake} on http://127.0.0.1:{port} (1 worker)")
    assert b'"status":"no_model"' in wait_for(role, f"http://127.0.0.1:{port}/health")
    assert listening(port) == {"127.0.0.1"}
    assert role.stop() == line + "\n"


def test_healthcheck_fails_when_no_role_has_started(tmp_path: Path) -> None:
    env = container_env(tmp_path)
    done = run_healthcheck(env)
    assert done.returncode != 0
    assert "no role has recorded its check" in done.stdout
    server.write_health_file({"url": f"http://127.0.0.1:{_free_port()}/health"}, env)
    done = run_healthcheck(env)  # a recorded server that is not there
    assert done.returncode != 0
    assert "unhealthy: GET" in done.stdout


@linux_only
@pytest.mark.slow
def test_webserver_as_the_image_runs_it(tmp_path: Path, roles: list[Role]) -> None:
    env = container_env(tmp_path)
    port = _free_port()
    command = default_command()
    assert command[0] == "webserver"
    role = start(roles, [*entrypoint(), *_with_port(command, port)], env, tmp_path / "logs")
    info = wait_for(role, f"http://127.0.0.1:{port}/server_info")
    assert b"dagster_webserver_version" in info
    assert listening(port) == {"0.0.0.0"}
    assert Path(env["DAGSTER_HOME"]).is_dir(), "DAGSTER_HOME is the volume's folder"
    healthy = run_healthcheck(env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "/server_info: 200" in healthy.stdout
    role.stop()
    assert run_healthcheck(env).returncode != 0


def _all_daemons_beat(home: str) -> bool:
    """True once every daemon the instance requires has written a heartbeat."""
    try:
        with dg.DagsterInstance.from_config(home) as instance:
            return set(instance.get_required_daemon_types()) <= set(
                instance.get_daemon_heartbeats())
    except sqlalchemy.exc.OperationalError:  # the daemon is writing (SQLite lock): not yet
        return False


@linux_only
@pytest.mark.slow
def test_daemon_as_the_image_runs_it(tmp_path: Path, roles: list[Role]) -> None:
    env = container_env(tmp_path)
    role = start(roles, [*entrypoint(), "daemon"], env, tmp_path / "logs")
    # The check loads Dagster: seconds when idle, but over 30 s seen on a shared 2-core machine.
    check_env = {**env, "CRYPTODUDEZ_HEALTHCHECK_TIMEOUT": str(START_SECONDS)}
    deadline = time.monotonic() + 2 * START_SECONDS
    # Each HEALTHCHECK run loads Dagster in a new process (seconds of CPU that slow the
    # daemon's own start on 2 cores), so wait cheaply first: for the start-up log line (or
    # a minute, should the wording change), then, reading the instance from this process,
    # until every required daemon (sensors, run queue, ...) wrote a heartbeat (or the
    # deadline). Only then run the image's HEALTHCHECK, until it says live.
    patience = time.monotonic() + 60
    while STARTED not in role.output() and time.monotonic() < patience:
        role.alive()
        time.sleep(0.5)
    while not _all_daemons_beat(env["DAGSTER_HOME"]) and time.monotonic() < deadline:
        role.alive()
        time.sleep(1)
    while True:
        role.alive()
        done = run_healthcheck(check_env)
        if done.returncode == 0:
            break
        assert time.monotonic() < deadline, f"no heartbeat within {2 * START_SECONDS} s: " \
            f"{done.stdout}\n{role.stderr.read_text(errors='replace')[-3000:]}"
        time.sleep(5)
    assert "liveness-check: exit 0: Daemon live" in done.stdout
    assert list(Path(env["DAGSTER_HOME"]).iterdir()), "DAGSTER_HOME holds the instance"
    role.alive()


@linux_only
@pytest.mark.slow
def test_code_location_as_the_image_runs_it(tmp_path: Path, roles: list[Role]) -> None:
    env = container_env(tmp_path)
    port = _free_port()
    role = start(roles, [*entrypoint(), "code-location", "--port", str(port)], env,
                 tmp_path / "logs")
    check_env = {**env, "CRYPTODUDEZ_HEALTHCHECK_TIMEOUT": str(START_SECONDS)}
    deadline = time.monotonic() + 2 * START_SECONDS
    while (healthy := run_healthcheck(check_env)).returncode:  # loads the definitions first
        role.alive()
        assert time.monotonic() < deadline, f"not healthy within {2 * START_SECONDS} s: " \
            f"{healthy.stdout}"
        time.sleep(2)
    # gRPC binds the wildcard as a dual-stack IPv6 socket: every interface either way.
    assert listening(port) | listening(port, "/proc/net/tcp6") & {"::"} in ({"0.0.0.0"}, {"::"})
    assert "grpc-health-check" in healthy.stdout
    role.stop()
    assert run_healthcheck(check_env).returncode != 0


def test_serve_with_an_unreadable_lake_fails_in_one_line(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    (lake / "models" / "volume_model" / "LATEST").mkdir(parents=True)  # unreadable pointer
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "CRYPTODUDEZ_", "DAGSTER_"))}
    done = subprocess.run([sys.executable, "-m", "serving", "--port", str(_free_port())],
                          env={**env, "CRYPTODUDEZ_LAKE": str(lake)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"python -m serving: error: cannot read the model in {lake}: ")
