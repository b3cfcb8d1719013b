"""Settings, read from the environment in exactly one place (never at import time)."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PROJECT_DIR = Path(__file__).resolve().parents[1]
ENGINES = ("polars", "spark")
WAREHOUSE_FILE = "warehouse.duckdb"  # the result tables (DuckDB), by default at the lake's root
TWINS = ("stock_features", "tweet_daily", "events_compacted")
"""The assets whose heavy transform has a Spark twin: what a per-asset engine names."""
JOB_ENGINE = "spark-job"
"""The engine that runs a twin as a separate Spark job through Dagster Pipes (EMR Serverless
when ``CRYPTODUDEZ_EMR_APPLICATION_ID`` is set, else a local ``spark-submit``-like process)."""
JOBS = ("stock_features",)
"""The twins that have a Spark job entry point, so may name :data:`JOB_ENGINE`."""
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Settings:
    """Where the lake is and how to reach it.

    Attributes:
        lake: ``CRYPTODUDEZ_LAKE``: a local folder (default ``lake/`` in the project) or
            ``s3://bucket/prefix``. An S3 lake selects the production resource set.
        endpoint_url: ``AWS_ENDPOINT_URL``: S3/Glue endpoint (a local S3 server, for example).
        region: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``.
        glue_database: ``CRYPTODUDEZ_GLUE_DATABASE``: Glue database of an S3 lake.
        dagster_home: ``DAGSTER_HOME``: Dagster's run and event storage (default
            ``.dagster/`` in the project).
        coingecko_env: the ``COINGECKO_*`` variables (mode, key, key type, base URL,
            recording): offline twin unless a key or ``COINGECKO_MODE=live`` says otherwise.
            Kept out of ``repr`` (it may hold the API key).
        warehouse: ``CRYPTODUDEZ_WAREHOUSE``: the DuckDB file of result tables (default
            ``<lake>/warehouse.duckdb`` for a local lake, ``<project>/warehouse.duckdb`` for
            an S3 lake, since DuckDB writes a local file).
        dagster_pg_url: ``CRYPTODUDEZ_DAGSTER_PG_URL``: Postgres URL of Dagster's storage
            (production); empty: SQLite files in ``dagster_home``.
        engine: ``CRYPTODUDEZ_ENGINE``: ``polars`` (default) or ``spark``, the engine of the
            assets whose transform has a Spark twin (:data:`TWINS`: stock rolling features,
            daily tweet features, event-day compaction).
        engines: per asset, overriding ``engine``: ``CRYPTODUDEZ_ENGINE`` may also be a comma
            list of an engine and ``asset=engine`` items, as ``stock_features=spark`` or
            ``spark,events_compacted=polars``.
        code_location: ``CRYPTODUDEZ_CODE_LOCATION``: ``host:port`` of a separate Dagster
            code server (``cryptodudez code-location``); empty: the webserver and the daemon
            load the definitions themselves.
        emr_application_id: ``CRYPTODUDEZ_EMR_APPLICATION_ID``: the EMR Serverless
            application that runs the ``spark-job`` engine's jobs (with
            ``CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN``, the role the jobs run as, and optional
            ``CRYPTODUDEZ_EMR_SPARK_SUBMIT_PARAMETERS``, as the project's packed virtualenv,
            and ``CRYPTODUDEZ_EMR_LOG_GROUP``, the CloudWatch log group of the jobs' drivers,
            else the application's); empty: those jobs run on this machine, in a local Spark.
        dagster_pg_env: ``DAGSTER_PG_HOST`` (with ``DAGSTER_PG_DB``, ``DAGSTER_PG_USERNAME``,
            ``DAGSTER_PG_PASSWORD``, optional ``DAGSTER_PG_PORT``) is set: Dagster's storage is
            that Postgres database, the password read from the environment at start (ECS
            injects it from Secrets Manager), never written to a file.
    """

    lake: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    glue_database: str = "cryptodudez"
    dagster_home: str = str(PROJECT_DIR / ".dagster")
    dagster_pg_url: str = field(default="", repr=False)  # may hold a password
    coingecko_env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    warehouse: str = ""
    engine: Literal["polars", "spark"] = "polars"
    engines: Mapping[str, str] = field(default_factory=dict, hash=False)  # a dict: unhashable
    code_location: str = ""
    dagster_pg_env: bool = False
    emr_application_id: str = ""
    emr_execution_role_arn: str = ""
    emr_spark_submit_parameters: str = ""
    emr_log_group: str = ""

    @property
    def warehouse_path(self) -> str:
        """The warehouse file: ``warehouse`` if set, else the default for the lake."""
        if self.warehouse:
            return self.warehouse
        if self.is_production:
            return str(PROJECT_DIR / WAREHOUSE_FILE)
        return str(Path(self.lake) / WAREHOUSE_FILE)

    @property
    def is_production(self) -> bool:
        """True when the lake lives on S3 (the production resource set)."""
        return self.lake.startswith("s3://")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        """Settings from environment variables, with the embedded local defaults."""
        env = dict(os.environ) if env is None else env
        lake = env.get("CRYPTODUDEZ_LAKE") or str(PROJECT_DIR / "lake")
        scheme = _SCHEME.match(lake)
        if scheme and scheme.group(1) not in ("s3", "file"):
            msg = (f"CRYPTODUDEZ_LAKE={lake!r}: unsupported scheme {scheme.group(1)!r} "
                   "(use a local folder, file://... or s3://bucket/prefix)")
            raise ValueError(msg)
        if lake.startswith("s3://") and not lake.removeprefix("s3://").strip("/"):
            msg = f"CRYPTODUDEZ_LAKE={lake!r}: an S3 lake needs a bucket (s3://bucket/prefix)"
            raise ValueError(msg)
        if lake.startswith("s3://") and (problem := _bucket_problem(
                lake.removeprefix("s3://").split("/", 1)[0])):
            msg = f"CRYPTODUDEZ_LAKE: {problem}"
            raise ValueError(msg)
        if not lake.startswith("s3://"):
            lake = str(Path(lake.removeprefix("file://")).expanduser().absolute())
        engine, engines = _engines(env.get("CRYPTODUDEZ_ENGINE") or "polars")
        emr = _emr(env)
        if emr["emr_application_id"] and not lake.startswith("s3://"):
            msg = (f"CRYPTODUDEZ_EMR_APPLICATION_ID is set but CRYPTODUDEZ_LAKE={lake!r} is no "
                   "S3 lake: EMR Serverless cannot read this machine's folder")
            raise ValueError(msg)
        return cls(
            lake=lake,
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            glue_database=env.get("CRYPTODUDEZ_GLUE_DATABASE") or "cryptodudez",
            dagster_home=env.get("DAGSTER_HOME") or str(PROJECT_DIR / ".dagster"),
            dagster_pg_url=env.get("CRYPTODUDEZ_DAGSTER_PG_URL") or "",
            coingecko_env={k: v for k, v in env.items() if k.startswith("COINGECKO_")},
            warehouse=_warehouse(env.get("CRYPTODUDEZ_WAREHOUSE") or ""),
            engine=engine, engines=engines,
            code_location=_host_port(env.get("CRYPTODUDEZ_CODE_LOCATION") or ""),
            dagster_pg_env=_pg_env(env),
            **emr,
        )


def _warehouse(text: str) -> str:
    """``CRYPTODUDEZ_WAREHOUSE`` as an absolute path; one that can be no DuckDB file fails.

    A folder, or a file that is not DuckDB's, started a run that failed inside (a reviewer).
    DuckDB writes ``DUCK`` at byte 8 of its files; a missing file is created on first use.
    """
    if not text:
        return ""
    path = Path(text).expanduser().absolute()
    problem = None
    if path.is_dir():
        problem = "a folder, not a DuckDB file"
    elif path.exists():
        try:
            with path.open("rb") as fh:
                head = fh.read(12)
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror})"
        else:
            if head[8:12] != b"DUCK":
                problem = "not a DuckDB database file"
    elif not (blocker := nearest_existing(path.parent)).is_dir():
        problem = f"{blocker} is not a folder"
    if problem:
        msg = f"CRYPTODUDEZ_WAREHOUSE={path}: {problem}"
        raise ValueError(msg)
    return str(path)


_BUCKET = re.compile(r"[a-zA-Z0-9._-]{1,255}")


def _bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` can be no bucket's name, or None.

    botocore's own rule, which also admits legacy names (capitals, underscores) and those of
    S3-compatible servers: what it refuses would fail every request with its traceback.
    """
    if not _BUCKET.fullmatch(bucket):
        shown = bucket if len(bucket) <= 64 else f"{bucket[:40]}... ({len(bucket)} characters)"
        return (f"{shown!r} is no S3 bucket name (up to 255 letters, digits, dots, hyphens "
                "and underscores; new AWS buckets: 3 to 63 lowercase letters, digits, dots "
                "and hyphens)")
    return None


PG_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD")
"""The variables of a Postgres instance given by parts (the ECS services get these)."""


def _pg_env(env: Mapping[str, str]) -> bool:
    if not env.get(PG_ENV[0]):
        return False
    missing = [name for name in PG_ENV[1:] if not env.get(name)]
    if missing:
        msg = f"DAGSTER_PG_HOST is set but {', '.join(missing)} is not"
        raise ValueError(msg)
    port = env.get("DAGSTER_PG_PORT") or "5432"
    if not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"DAGSTER_PG_PORT={port!r}: not a TCP port"
        raise ValueError(msg)
    return True


def _host_port(text: str) -> str:
    if not text:
        return ""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"CRYPTODUDEZ_CODE_LOCATION={text!r}: use host:port"
        raise ValueError(msg)
    return text


def engines_problem(engines: Mapping[str, str]) -> str | None:
    """Why ``engines`` (asset -> engine) is no per-asset engine setting, or None."""
    for asset, engine in engines.items():
        if asset not in TWINS:
            return f"{asset!r} is no asset with a Spark twin; those are {', '.join(TWINS)}"
        if engine == JOB_ENGINE and asset not in JOBS:
            return (f"{asset}={engine}: only {', '.join(JOBS)} has a Spark job entry point; "
                    f"use polars or spark")
        if engine not in (*ENGINES, JOB_ENGINE):
            more = f" (or {JOB_ENGINE})" if asset in JOBS else ""
            return f"{asset}={engine!r}: use polars or spark{more}"
    return None


EMR_ENV = ("CRYPTODUDEZ_EMR_APPLICATION_ID", "CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN")
"""Where the ``spark-job`` engine's jobs run in AWS: both, or neither (a local Spark)."""


def _emr(env: Mapping[str, str]) -> dict[str, str]:
    application, role = (env.get(name, "").strip() for name in EMR_ENV)
    if bool(application) != bool(role):
        given, missing = EMR_ENV if application else EMR_ENV[::-1]
        msg = f"{given} is set but {missing} is not (EMR Serverless needs both)"
        raise ValueError(msg)
    if role and not role.startswith("arn:"):
        msg = f"CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN={role!r}: not an IAM role ARN"
        raise ValueError(msg)
    return {"emr_application_id": application, "emr_execution_role_arn": role,
            "emr_spark_submit_parameters":
                env.get("CRYPTODUDEZ_EMR_SPARK_SUBMIT_PARAMETERS", "").strip(),
            "emr_log_group": env.get("CRYPTODUDEZ_EMR_LOG_GROUP", "").strip()}


def _engines(text: str) -> tuple[Literal["polars", "spark"], dict[str, str]]:
    """``engine`` and ``engines`` from ``CRYPTODUDEZ_ENGINE`` (see :class:`Settings`)."""
    default: Literal["polars", "spark"] = "polars"
    engines: dict[str, str] = {}
    defaults = 0
    for item in (part.strip() for part in text.split(",")):
        asset, sep, engine = item.partition("=")
        if not sep:
            if item not in ENGINES or defaults:
                msg = (f"CRYPTODUDEZ_ENGINE={text!r}: use polars or spark, optionally with "
                       "asset=engine items (stock_features=spark,events_compacted=polars)")
                raise ValueError(msg)
            default = "spark" if item == "spark" else "polars"
            defaults += 1
        elif asset in engines:
            msg = f"CRYPTODUDEZ_ENGINE={text!r}: {asset} is given twice"
            raise ValueError(msg)
        else:
            engines[asset] = engine
    if problem := engines_problem(engines):
        msg = f"CRYPTODUDEZ_ENGINE={text!r}: {problem}"
        raise ValueError(msg)
    return default, engines


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (below a file nothing exists).

    What is found is what stops ``path`` from being or becoming a folder when it is none.
    """
    while not path.exists():
        path = path.parent
    return path
