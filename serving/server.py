"""Run the prediction API under uvicorn (uvloop, httptools), settings from the environment.

``python -m serving`` and ``cryptodudez serve`` both end here. The CLI hands over by
replacing its process with ``python -m serving``: uvicorn starts its workers with
multiprocessing's *spawn*, which re-imports the parent's main script in every worker, and the
``cryptodudez`` script imports Dagster. Started from ``serving``, a worker imports only the
API (``serving.asgi``).

This module also holds what the container image needs from every long-running role, kept free
of Dagster so that it stays cheap to run every few seconds:

* the defaults of the listening address (``CRYPTODUDEZ_HOST``, ``127.0.0.1`` when unset; the
  image sets ``0.0.0.0``) and of the worker count (the CPUs the cgroup quota allows);
* the health file: each role (``serve``, ``webserver``, ``daemon``) records at start how it is
  checked, in the file ``CRYPTODUDEZ_HEALTH_FILE`` names (the image sets one; nothing is
  written when unset), and ``python -m serving --healthcheck`` (the image's ``HEALTHCHECK``)
  performs that check: ``GET /health`` for the API, ``GET /server_info`` for the Dagster
  webserver, ``dagster-daemon liveness-check`` (recent heartbeats) for the daemon.

A bad option or setting is one line on stderr, never a traceback: status 2 for the server, 1
("unhealthy", Docker's only failure status) for the health check.
"""

import argparse
import contextlib
import copy
import errno
import http.client
import json
import math
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from cryptodudez.storage import LakeStorage

HOST_VARIABLE = "CRYPTODUDEZ_HOST"
HEALTH_FILE_VARIABLE = "CRYPTODUDEZ_HEALTH_FILE"
HEALTHCHECK_TIMEOUT_VARIABLE = "CRYPTODUDEZ_HEALTHCHECK_TIMEOUT"
LOCAL_HOST = "127.0.0.1"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 mounts the cpu controller under one of these names.
_CGROUP_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")
# Below the image's HEALTHCHECK --timeout (30 s); set CRYPTODUDEZ_HEALTHCHECK_TIMEOUT when that
# changes. The daemon's check loads Dagster: a few seconds on an idle machine, 30 s and more on
# an overloaded one.
HEALTHCHECK_TIMEOUT_SECONDS = 25.0
DESCRIPTION = ("serve the latest model and the lake's results over HTTP: /predict, /health, "
               "/signal/eth, /coin, /sentiment, /merged, /correlation (OpenAPI at /schema)")


def default_host(env: Mapping[str, str] | None = None) -> str:
    """Address to listen on by default: ``CRYPTODUDEZ_HOST``, else loopback only."""
    env = os.environ if env is None else env
    return env.get(HOST_VARIABLE) or LOCAL_HOST


def cgroup_cpu_limit(root: Path | None = None) -> float | None:
    """CPUs the cgroup's CFS quota allows (``quota / period``), or None when unlimited.

    Reads cgroup v2 ``cpu.max`` ("max 100000" or "200000 100000"), else cgroup v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (a quota of -1 is unlimited). Missing or
    unreadable files mean no limit is known. ``root`` defaults to ``CGROUP_ROOT``.
    """
    root = CGROUP_ROOT if root is None else root
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else _ratio(quota, period)
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return None
    for folder in _CGROUP_V1_CPU_DIRS:
        try:
            quota = (root / folder / "cpu.cfs_quota_us").read_text()
            period = (root / folder / "cpu.cfs_period_us").read_text()
        except OSError:
            continue
        try:
            return _ratio(quota, period)
        except ValueError:
            return None
    return None


def _ratio(quota: str, period: str) -> float | None:
    q, p = int(quota.strip()), int(period.strip())
    return q / p if q > 0 and p > 0 else None


def available_cpus(root: Path | None = None, *, affinity: int | None = None) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup's CPU quota.

    ``os.cpu_count()`` counts the host's CPUs; in a container limited with ``--cpus 2`` on a
    64-core host, one worker per host CPU would mean 64 workers throttled onto 2 CPUs. A
    fractional quota rounds up (1.5 CPUs gives 2), and the result is at least 1. ``root`` is
    the cgroup filesystem (default ``CGROUP_ROOT``); ``affinity`` the CPUs this process may be
    scheduled on (default: its affinity mask).
    """
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root)
    cpus = affinity if limit is None else min(affinity, math.ceil(limit))
    return max(1, cpus)


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options (shared by ``python -m serving`` and ``cryptodudez serve``).

    A parser without a description gets ``DESCRIPTION``, so that ``--help`` names the routes.
    """
    parser.description = parser.description or DESCRIPTION
    parser.add_argument("--host", type=host_arg, default=default_host(),
                        help=f"address to listen on (default: ${HOST_VARIABLE}, else "
                             f"{LOCAL_HOST})")
    parser.add_argument("--port", type=port_arg, default=8000, help="TCP port, 1-65535 "
                        "(default: 8000)")
    parser.add_argument("--workers", type=_workers, default=available_cpus(),
                        help=f"server processes, 1 to {WORKERS_PER_CPU} per CPU (default: one "
                             "per CPU the container's quota allows)")


MAX_PORT = 65535


def host_arg(text: str) -> str:
    """An address to listen on (an argparse type): not empty, no spaces.

    ``--host ""`` listened on every interface (0.0.0.0), not on loopback (a reviewer).
    """
    if not text or not text.isprintable() or any(c.isspace() for c in text):
        msg = f"not a host to listen on: {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


def port_arg(text: str) -> int:
    """A TCP port to listen on, 1 to 65535, in ASCII digits (an argparse type).

    ``int`` alone would let through 99999, which the servers take modulo 65536, and 0, which
    binds a port chosen by the system that the health file cannot name.
    """
    if not (text.isascii() and text.isdigit() and 0 < int(text) <= MAX_PORT):
        msg = f"not a TCP port (1 to {MAX_PORT}): {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


WORKERS_PER_CPU = 4


def _workers(text: str) -> int:
    """Server processes: 1 to ``WORKERS_PER_CPU`` per CPU this process may use.

    Unbounded, ``--workers 99999999999999999999`` had uvicorn spawn processes until the
    machine stalled (more than one per CPU only queues them on the same cores).
    """
    most = WORKERS_PER_CPU * available_cpus()
    if not (text.isascii() and text.isdigit() and 0 < int(text) <= most):
        msg = (f"not a number of processes (1 to {most}: {WORKERS_PER_CPU} per CPU this "
               f"process may use): {text!r}")
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def command(*, host: str, port: int, workers: int) -> list[str]:
    """The ``python -m serving`` command line for these options."""
    return [sys.executable, "-m", "serving", "--host", host, "--port", str(port),
            "--workers", str(workers)]


class ListenError(Exception):
    """The server cannot listen where asked; ``status`` is the exit status to report."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# The argument cannot work on this machine (exit 2), rather than failing now (exit 1).
_BAD_ADDRESS = frozenset({errno.EADDRNOTAVAIL, errno.EACCES, errno.EAFNOSUPPORT})


def check_listen(host: str, port: int, *, workers: int) -> None:
    """Bind ``host:port`` as uvicorn will, then let it go: fail before the server starts.

    uvicorn reports a port in use or an unknown host with a log line, after the server
    announced itself, and exits 3. With one worker it binds every address the host resolves
    to (asyncio's ``create_server``, IPv6 sockets IPv6-only); with more, one socket of the
    family its address looks like. Both set ``SO_REUSEADDR``, so a port left in TIME_WAIT by
    a server that just stopped is free here too.

    Raises:
        ListenError: ``cannot listen on HOST:PORT: <reason>``, with status 2 when the address
            cannot work here (a host that does not resolve or is not this machine's, a port
            that needs privileges) and 1 when it fails now (the port is in use).
    """
    where = f"{_url_host(host)}:{port}"
    if workers == 1:
        family = socket.AF_UNSPEC
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        found = socket.getaddrinfo(host or None, port, family, socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        status = 1 if exc.errno == socket.EAI_AGAIN else 2  # EAI_AGAIN: DNS did not answer
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}", status) from None
    except (UnicodeError, ValueError) as exc:  # a label over 63 characters, a NUL byte
        raise ListenError(f"cannot listen on {where}: not a host name ({exc})", 2) from None
    for family_found, kind, proto, _, address in dict.fromkeys(found):
        try:
            with socket.socket(family_found, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family_found == socket.AF_INET6 and workers == 1:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
        except OSError as exc:
            status = 2 if exc.errno in _BAD_ADDRESS else 1
            raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}",
                              status) from None


def probe_host(host: str) -> str:
    """The address at which a local probe reaches a server listening on ``host``."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - recognising the wildcard, not binding it
        return LOCAL_HOST
    if host == "::":
        return "::1"
    return host


def probe_url(host: str, port: int, path: str) -> str:
    """URL at which a local health probe reaches a server listening on ``host:port``."""
    return f"http://{_url_host(probe_host(host))}:{port}{path}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def write_health_file(check: Mapping[str, object],
                      env: Mapping[str, str] | None = None) -> Path | None:
    """Record how this role is checked (``{"url": ...}`` or ``{"command": [...], "env": {}}``).

    Written to ``$CRYPTODUDEZ_HEALTH_FILE``; nothing is written when it is unset. Returns the
    file written, if any.

    Raises:
        ValueError: the file cannot be written there (a folder, no permission), in one line
            naming the setting.
    """
    env = os.environ if env is None else env
    target = env.get(HEALTH_FILE_VARIABLE)
    if not target:
        return None
    path = Path(target)
    staged = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staged.write_text(json.dumps(check))
        staged.replace(path)  # a concurrent check reads the old or the new file, never half
    except OSError as exc:
        with contextlib.suppress(OSError):
            staged.unlink(missing_ok=True)
        msg = (f"{HEALTH_FILE_VARIABLE}={target!r}: cannot write the health file there "
               f"({exc.strerror or exc})")
        raise ValueError(msg) from exc
    return path


def healthcheck(env: Mapping[str, str] | None = None, *, timeout: float | None = None) -> int:
    """Perform the check the running role recorded: 0 when healthy, 1 otherwise.

    Prints one line saying what was checked and the outcome. ``timeout`` (seconds) defaults to
    ``$CRYPTODUDEZ_HEALTHCHECK_TIMEOUT``, else ``HEALTHCHECK_TIMEOUT_SECONDS``. A bad setting
    or health file is unhealthy too (status 1, the only failure status Docker defines), said
    in one line.
    """
    env = os.environ if env is None else env
    if timeout is None:
        setting = env.get(HEALTHCHECK_TIMEOUT_VARIABLE) or str(HEALTHCHECK_TIMEOUT_SECONDS)
        try:
            timeout = float(setting)
        except ValueError:
            timeout = math.nan
        if not 0 < timeout < math.inf:
            return _report(1, f"unhealthy: {HEALTHCHECK_TIMEOUT_VARIABLE}={setting!r}: not a "
                              "number of seconds above 0")
    target = env.get(HEALTH_FILE_VARIABLE)
    if not target:
        return _report(1, f"unhealthy: {HEALTH_FILE_VARIABLE} is not set")
    try:
        check = json.loads(Path(target).read_text())
    except (OSError, ValueError, RecursionError) as exc:
        return _report(1, f"unhealthy: no role has recorded its check in {target} ({exc})")
    if isinstance(check, dict):
        url, argv, extra = check.get("url"), check.get("command"), check.get("env") or {}
        if isinstance(url, str):
            return _check_url(url, timeout=timeout)
        if isinstance(argv, list) and argv and isinstance(extra, dict):
            return _check_command([str(a) for a in argv],
                                  {**env, **{str(k): str(v) for k, v in extra.items()}},
                                  timeout=timeout)
    return _report(1, f"unhealthy: {target} holds no check (a JSON object with a url, or "
                      "a command and an env object)")


def _check_url(url: str, *, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - own URL
            return _report(0 if response.status == 200 else 1, f"GET {url}: {response.status}")
    except (OSError, ValueError, http.client.HTTPException) as exc:  # ValueError: a bad URL
        return _report(1, f"unhealthy: GET {url}: {type(exc).__name__}: {exc}")


def _check_command(argv: list[str], env: Mapping[str, str], *, timeout: float) -> int:
    shown = " ".join(argv)
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True,  # noqa: S603
                              timeout=timeout, check=False)
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:  # ValueError: a NUL byte
        return _report(1, f"unhealthy: {shown}: {exc}")
    said = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return _report(0 if done.returncode == 0 else 1,
                   f"{shown}: exit {done.returncode}{': ' + said[-1] if said else ''}")


def _report(code: int, line: str) -> int:
    sys.stdout.write(line + "\n")
    return code


def announcement(*, lake: "LakeStorage", host: str, port: int, workers: int) -> str:
    """The one line the server prints at start: where it listens and which model it serves.

    The model is loaded here as the app loads it at start: a version ``LATEST`` names that
    cannot be loaded (a missing or corrupt file) is not served (``/predict`` answers 503), so
    the line says so and why, rather than naming it. An unreadable pointer still raises (the
    caller refuses to start).
    """
    from serving.model_store import MODEL_NAME, ModelStore  # noqa: PLC0415 - see main()
    from serving.polling import LOAD_ERRORS  # noqa: PLC0415 - see main()

    store = ModelStore(lake)
    version = store.latest_version()
    if version is None:
        model = f"no {MODEL_NAME} yet (none published; polling for one)"
    else:
        try:
            store.load(version)
        except LOAD_ERRORS as exc:
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            model = (f"no {MODEL_NAME} (the latest, {version}, cannot be loaded: {why}; "
                     "polling for one that loads)")
        else:
            model = f"{MODEL_NAME} {version}"
    where = lake.uri
    return (f"serving {model} from {where} on http://{_url_host(host)}:{port} "
            f"({workers} worker{'s' if workers != 1 else ''})")


def log_config() -> dict[str, Any]:
    """The logging configuration of uvicorn, with the app's loggers (``serving.*``) added.

    uvicorn configures only its own loggers, so the app's records (a 500's traceback from
    :func:`serving.app.log_unexpected`, a model that cannot be loaded) reached stderr only
    through Python's last-resort handler, bare and unconfigured. Here they get uvicorn's
    ``default`` handler (stderr, ``ERROR:    ...``) from WARNING up, like uvicorn's own;
    uvicorn applies it in every worker process.
    """
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415 - see run()

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["serving"] = {"handlers": ["default"], "level": "WARNING",
                                    "propagate": False}
    return config


def run(*, host: str, port: int, workers: int) -> None:
    """Serve ``serving.asgi:app`` until interrupted."""
    import uvicorn  # noqa: PLC0415 - only the server needs it, not the CLI that imports this

    uvicorn.run("serving.asgi:app", host=host, port=port, workers=workers, loop="uvloop",
                http="httptools", access_log=False, log_level="warning",
                log_config=log_config())


# The attribute of a namespace being parsed that holds the options given so far (removed
# before the namespace is returned).
_GIVEN = "_cryptodudez_options_given"


class _StoreOnce(argparse._StoreAction):
    """An option of one value that may be given once: argparse keeps the last one silently.

    ``--date A --date B`` would compute B's KPIs without a word about A, and ``--port 1
    --port 2`` listened on 2; a repeat is a usage error naming the option. (An option meant
    to be repeated, such as ``kpi --merge``, accumulates with ``action="extend"`` instead.)
    Positionals are never repeated.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None,
                 option_string: str | None = None) -> None:
        """Store ``values``, or refuse this option given a second time."""
        if self.option_strings:
            given: set[int] = namespace.__dict__.setdefault(_GIVEN, set())
            if id(self) in given:
                msg = "given more than once; it takes one value, give it once"
                raise argparse.ArgumentError(self, msg)
            given.add(id(self))
        super().__call__(parser, namespace, values, option_string)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser of one-line errors (exit status 2) and options given once.

    Its plain options (``action="store"``) may be given once (:class:`_StoreOnce`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """A parser that refuses a repeated option of one value."""
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def parse_known_args(  # type: ignore[override]  # one signature for the overloads
            self, args: Sequence[str] | None = None,
            namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse ``args``, leaving out the bookkeeping of the options given."""
        parsed, unknown = super().parse_known_args(args, namespace)
        parsed.__dict__.pop(_GIVEN, None)
        return parsed, unknown

    def error(self, message: str) -> NoReturn:
        """Report a bad argument in one line."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m serving``."""
    parser = OneLineParser(prog="python -m serving")
    add_server_arguments(parser)
    parser.add_argument("--healthcheck", action="store_true",
                        help=f"perform the check the running role recorded in "
                             f"${HEALTH_FILE_VARIABLE}; exit 0 when healthy")
    args = parser.parse_args(argv)
    if args.healthcheck:
        return healthcheck()
    # Imported here, not above: the health check runs every minute and needs none of it.
    from cryptodudez.settings import Settings  # noqa: PLC0415
    from cryptodudez.storage import LakeStorage  # noqa: PLC0415

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        return _error(str(exc), 2)
    lake = LakeStorage(settings.lake, endpoint_url=settings.endpoint_url,
                       region_name=settings.region)
    try:
        line = announcement(lake=lake, host=args.host, port=args.port, workers=args.workers)
    except Exception as exc:  # any cause (no credentials, no network): the server cannot start
        # The app would fail the same way loading the model; say it in one line, not 80.
        return _error(f"cannot read the model in {lake.uri}: {type(exc).__name__}: {exc}", 1)
    try:
        write_health_file({"role": "serve", "url": probe_url(args.host, args.port, "/health")})
    except ValueError as exc:
        return _error(str(exc), 2)
    try:
        check_listen(args.host, args.port, workers=args.workers)
    except ListenError as exc:
        return _error(str(exc), exc.status)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    run(host=args.host, port=args.port, workers=args.workers)
    return 0


def _error(message: str, code: int) -> int:
    sys.stderr.write(f"python -m serving: error: {' '.join(message.split())}\n")
    return code
