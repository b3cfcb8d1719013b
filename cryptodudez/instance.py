"""The Dagster instance's storage: SQLite under ``DAGSTER_HOME`` locally, Postgres in production.

``CRYPTODUDEZ_DAGSTER_PG_URL`` (for example ``postgresql+psycopg2://user:pw@host:5432/dagster``)
switches run, event-log and schedule storage to one Postgres database (dagster-postgres).
The ``+psycopg2`` driver is forced: with SQLAlchemy 2.x a plain ``postgresql://`` URL picks
psycopg 3, which is not installed.
"""

import functools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

PG_URL_ENV = "CRYPTODUDEZ_DAGSTER_PG_URL"
_TELEMETRY_OFF: dict[str, Any] = {"telemetry": {"enabled": False}}


def psycopg2_url(url: str) -> str:
    """``url`` with the ``postgresql+psycopg2`` scheme.

    ``postgres://`` and ``postgresql://`` are rewritten; another explicit driver is refused.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        msg = f"not a database URL: {url!r}"
        raise ValueError(msg)
    if scheme in ("postgres", "postgresql", "postgresql+psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    msg = f"unsupported scheme {scheme!r} (use postgresql+psycopg2://...)"
    raise ValueError(msg)


def postgres_instance_config(url: str) -> dict[str, Any]:
    """The ``dagster.yaml`` content of an instance on Postgres (telemetry off)."""
    return {**_TELEMETRY_OFF, "storage": {"postgres": {"postgres_url": psycopg2_url(url)}}}


def postgres_env_instance_config(port: int = 5432) -> dict[str, Any]:
    """``dagster.yaml`` content of an instance on Postgres given by ``DAGSTER_PG_*`` variables.

    The file names the variables, never their values: Dagster reads them at start, so the
    password stays in the environment (ECS injects it from Secrets Manager). The driver is
    psycopg2, as for a URL.
    """
    return {**_TELEMETRY_OFF, "storage": {"postgres": {"postgres_db": {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "db_name": {"env": "DAGSTER_PG_DB"},
        "username": {"env": "DAGSTER_PG_USERNAME"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "port": port, "scheme": "postgresql+psycopg2"}}}}


def instance_config(pg_url: str | None, *, pg_env_port: int | None = None) -> dict[str, Any]:
    """``dagster.yaml`` content: Postgres when ``pg_url`` (or ``pg_env_port``) is set.

    ``pg_env_port``: the database is given by the ``DAGSTER_PG_*`` variables, on this port.
    Else Dagster's default: SQLite files in ``DAGSTER_HOME``.
    """
    if pg_url:
        return postgres_instance_config(pg_url)
    if pg_env_port is not None:
        return postgres_env_instance_config(pg_env_port)
    return dict(_TELEMETRY_OFF)


def write_instance_yaml(home: Path, pg_url: str | None, *, overwrite: bool = False,
                        pg_env_port: int | None = None) -> Path:
    """Write ``home/dagster.yaml`` (kept when it exists unless ``overwrite``)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if overwrite or not path.exists():
        config = instance_config(pg_url, pg_env_port=pg_env_port)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


CODE_LOCATION_NAME = "cryptodudez"
DEFINITIONS_MODULE = "cryptodudez.definitions"


def workspace_config(code_location: str) -> dict[str, Any]:
    """A workspace whose one location is the code server at ``host:port``."""
    host, _, port = code_location.rpartition(":")
    return {"load_from": [{"grpc_server": {"host": host, "port": int(port),
                                           "location_name": CODE_LOCATION_NAME}}]}


def write_workspace_yaml(home: Path, code_location: str) -> Path:
    """Write ``home/workspace.yaml`` pointing at the code server (rewritten every start)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "workspace.yaml"
    path.write_text(yaml.safe_dump(workspace_config(code_location), sort_keys=False))
    return path


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_postgres(bin_dir: Path = PG_BIN, *, user: str = "postgres",
                     dbname: str = "dagster", fsync: bool = False) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a free loopback port (tests, benchmarks, demos).

    Yields a ``postgresql+psycopg2://`` URL of database ``dbname``. ``initdb`` refuses to run
    as root, so as root the cluster is created and run as ``user`` (``runuser``). The cluster
    and its folder are removed on exit. Raises ``FileNotFoundError`` when the binaries are
    missing. ``fsync`` off by default (a test cluster); on for fair timings.
    """
    for tool in ("initdb", "pg_ctl"):
        if not (bin_dir / tool).exists():
            msg = f"no {bin_dir / tool} (apt-get install postgresql)"
            raise FileNotFoundError(msg)
    root = Path(tempfile.mkdtemp(prefix="cryptodudez-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    data, port = root / "data", free_port()
    run = functools.partial(subprocess.run, check=True, capture_output=True, text=True,
                            timeout=60)
    try:
        run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"])
        run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l",
             str(root / "log"), "-o",
             f"-k {root} -p {port} -c listen_addresses=127.0.0.1"
             f" -c fsync={'on' if fsync else 'off'}", "start"])
        try:
            import psycopg2  # noqa: PLC0415  (only tests and benchmarks start a cluster)

            conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres",
                                    dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{dbname}"')
            conn.close()
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{dbname}"
        finally:
            stop = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                    "stop"]
            subprocess.run(stop, check=False, capture_output=True, timeout=60)  # noqa: S603
    finally:
        shutil.rmtree(root, ignore_errors=True)
