"""``cryptodudez``: land files, ingest them without the daemon, run the demo, serve models.

This module is the command line itself: its parser, its one-line errors, and the server roles
that become another process (``serve``, ``ui``, ``webserver``, ``code-location``, ``daemon``).
It imports neither Dagster nor the pipelines: a bad argument is answered, and a server role
started, without the seconds that loading them takes. The commands that run pipelines live in
:mod:`cryptodudez.commands`, imported only when one of them is asked for.
"""

import argparse
import os
import re
import shutil
import sys
import textwrap
import traceback
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import NoReturn

from polars.exceptions import PanicException

from cryptodudez.days import parse_day
from cryptodudez.instance import DEFINITIONS_MODULE, write_instance_yaml, write_workspace_yaml
from cryptodudez.lake.kpi import MAX_SHARDS, KpiError, Shard
from cryptodudez.lake.kpi import SOURCES as KPI_SOURCES
from cryptodudez.lake.layout import raw_key_problem
from cryptodudez.settings import PROJECT_DIR, Settings, nearest_existing
from serving.server import DESCRIPTION as SERVE_DESCRIPTION
from serving.server import (
    HOST_VARIABLE,
    LOCAL_HOST,
    ListenError,
    OneLineParser,
    add_server_arguments,
    check_listen,
    default_host,
    host_arg,
    port_arg,
    probe_host,
    probe_url,
    write_health_file,
)
from serving.server import command as server_command


def echo(text: str = "") -> None:
    """Print one line of the command's output now (progress is read as it happens)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def ensure_dagster_home(settings: Settings) -> Path:
    """Create ``DAGSTER_HOME`` if it is missing (telemetry off in a new one).

    With ``CRYPTODUDEZ_DAGSTER_PG_URL`` (or the ``DAGSTER_PG_*`` variables) set, its
    ``dagster.yaml`` puts the run, event and schedule storage in that Postgres database
    (production; docs/production-instance.md).

    No rule of the platform lives here: ingest runs may run side by side under any
    instance configuration (they serialise only their publishing, on the lake's own lock).
    """
    home = Path(settings.dagster_home).expanduser().absolute()  # Dagster needs it absolute
    if blocker := not_a_folder(home):
        msg = f"DAGSTER_HOME={home}: {blocker} is not a folder"
        raise CliError(msg)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    pg_env_port = int(os.environ.get("DAGSTER_PG_PORT") or 5432) if settings.dagster_pg_env \
        else None
    write_instance_yaml(home, settings.dagster_pg_url or None, pg_env_port=pg_env_port,
                        overwrite=bool(settings.dagster_pg_url) or settings.dagster_pg_env)
    return home


def check_lake_folder(settings: Settings) -> None:
    """Refuse a local lake that cannot be (or become) a folder, in one line."""
    if not settings.is_production and (blocker := not_a_folder(Path(settings.lake))):
        msg = f"CRYPTODUDEZ_LAKE={settings.lake}: {blocker} is not a folder"
        raise CliError(msg)


def not_a_folder(path: Path) -> Path | None:
    """What stops ``path`` from being or becoming a folder: itself or an ancestor, or None."""
    found = nearest_existing(path)
    return None if found.is_dir() else found


class CliError(Exception):
    """A user error: reported as one line on stderr and exit status 2, never a traceback."""


class DataError(Exception):
    """Data a command reads that cannot be read, such as a corrupt Parquet file in the lake.

    Reported as one line on stderr naming the file and why, with exit status 1
    (:data:`FAILURE_STATUS`): the command line was right, the data is not.
    """


USAGE_STATUS = 2
"""Exit status of a user error: a bad argument, path, key or setting (:class:`CliError`)."""
FAILURE_STATUS = 1
"""Exit status of any failure: a file that cannot be read (:class:`DataError`), a failed run,
missing credentials. Data that cannot be read is never a usage error (2)."""

# Errors of these libraries' readers that are ValueErrors (pyarrow's ArrowInvalid: a corrupt
# Parquet file) are about data, never about the command line: they exit with
# FAILURE_STATUS, not USAGE_STATUS. Matched by module: importing pyarrow costs time here.
_DATA_ERROR_MODULES = ("pyarrow",)


def _land_path(text: str) -> Path:
    """A source to land (an argparse type): ``""`` read as the current folder landed it all."""
    if not text:
        msg = "an empty path"
        raise argparse.ArgumentTypeError(msg)
    return Path(text)


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` names no folder under ``raw/`` for ``land --prefix``, or None.

    Trailing slashes are dropped, so a prefix of slashes alone (``/``, ``//``) named no
    folder and landed at the root of ``raw/``; ``..`` would climb out of it. An empty prefix
    (the default) is the root itself, asked for.
    """
    folder = prefix.rstrip("/")
    if prefix and not folder:
        return ("names no folder under raw/ (leave --prefix out to land at the root of "
                "raw/)")
    # the rules of every raw key (absolute, '..', hidden, control characters, ...)
    problem = raw_key_problem(folder) if folder else None
    return None if problem is None else (f"{problem}; give a folder under raw/, such as "
                                         "vendor/2026-11")


def _prefix_arg(text: str) -> str:
    """``land --prefix`` (an argparse type): checked before the seconds of imports."""
    if (problem := prefix_problem(text)) is not None:
        msg = f"{text!r} {problem}"
        raise argparse.ArgumentTypeError(msg)
    return text


def this_command() -> str:
    """How to type this command again from here.

    ``.venv/bin/cryptodudez`` after ``./run demo``; the bare name when that name on PATH is
    this program (a program found on PATH gets its full path as ``argv[0]``).
    """
    raw = sys.argv[0]
    if os.sep not in raw:
        return raw
    invoked = Path(raw).resolve()
    found = shutil.which(invoked.name)
    if found is not None and Path(found).resolve() == invoked:
        return invoked.name
    try:
        here = invoked.relative_to(Path.cwd().resolve())
    except ValueError:
        return raw
    return str(here) if here.parent != Path() else f"./{here}"


def serve(settings: Settings, *, host: str, port: int, workers: int = 1) -> int:
    """Become ``python -m serving``: the prediction API, in processes that never load Dagster.

    uvicorn spawns its workers, and a spawned worker re-imports the parent's main script;
    ``cryptodudez.commands`` imports Dagster (about 240 MB and seconds per worker),
    ``serving`` does not.
    Returns only when the server cannot listen on ``host:port``, said in one line. A lake
    that cannot be a folder is refused first (the server would poll it for ever); a missing
    one is served: 503 until a model is published there.
    """
    check_lake_folder(settings)
    if (status := _cannot_listen("serve", host, port, workers=workers)) is not None:
        return status
    os.environ["CRYPTODUDEZ_LAKE"] = settings.lake
    argv = server_command(host=host, port=port, workers=workers)
    os.execv(argv[0], argv)  # noqa: S606 - this command becomes the server


# A daemon whose sensors, run queue and backfills have not written a heartbeat for this long is
# unhealthy (Dagster's own default, 30 minutes, would leave a hung daemon unnoticed that long).
DAEMON_HEARTBEAT_TOLERANCE_SECONDS = 300


def _exec_dagster(settings: Settings, command: Sequence[str], *options: str,
                  target: Sequence[str] | None = None) -> NoReturn:
    """Become a Dagster ``command`` with ``DAGSTER_HOME`` set, on the project's code.

    The code is ``target`` if given; else the code server ``CRYPTODUDEZ_CODE_LOCATION``
    names (a workspace written into ``DAGSTER_HOME``); else the project's ``workspace.yaml``,
    loading the definitions in this process tree.
    """
    home = ensure_dagster_home(settings)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["CRYPTODUDEZ_LAKE"] = settings.lake
    if target is None:
        workspace = (write_workspace_yaml(home, settings.code_location)
                     if settings.code_location else PROJECT_DIR / "workspace.yaml")
        target = ["-w", str(workspace)] if workspace.exists() else ["-m", DEFINITIONS_MODULE]
    executable = Path(sys.executable).with_name(command[0])
    argv = [str(executable), *command[1:], *target, *options]
    os.execv(executable, argv)  # noqa: S606 - this command becomes the Dagster process


def ui(settings: Settings, *, host: str, port: int) -> int:
    """``dagster dev`` (webserver and daemon, for local use) on the lake.

    The address is bound once first (:func:`serving.server.check_listen`): the webserver
    logs a port in use and then neither serves nor exits, so ``dagster dev`` would hang.
    Returns only when it cannot listen, said in one line.
    """
    if (status := _cannot_listen("ui", host, port)) is not None:
        return status
    _exec_dagster(settings, ["dagster", "dev"], "-h", host, "-p", str(port))


def _cannot_listen(role: str, host: str, port: int, *, workers: int = 1) -> int | None:
    """None when ``host:port`` can be listened on, else the exit status, said in one line.

    Every server command asks first: the servers themselves print a traceback (and the
    Dagster ones leave a code server behind, or hang).
    """
    try:
        check_listen(host, port, workers=workers)
    except ListenError as exc:
        sys.stderr.write(f"cryptodudez {role}: error: {exc}\n")
        return exc.status
    return None


def _listen_or_exit(role: str, host: str, port: int) -> None:
    if (status := _cannot_listen(role, host, port)) is not None:
        raise SystemExit(status)


def webserver(settings: Settings, *, host: str, port: int) -> NoReturn:
    """Become the Dagster webserver (UI and GraphQL) alone: production's UI role."""
    _listen_or_exit("webserver", host, port)
    write_health_file({"role": "webserver", "url": probe_url(host, port, "/server_info")})
    _exec_dagster(settings, ["dagster-webserver"], "-h", host, "-p", str(port))


def code_location(settings: Settings, *, host: str, port: int) -> NoReturn:
    """Become the Dagster code server of the definitions: production's code-location role.

    The webserver and the daemon reach it through ``CRYPTODUDEZ_CODE_LOCATION=host:port``;
    the runs it launches import the same image's code.
    """
    _listen_or_exit("code-location", host, port)
    write_health_file({
        "role": "code-location",
        "command": [str(Path(sys.executable).with_name("dagster")), "api",
                    "grpc-health-check", "-p", str(port), "-h", probe_host(host)],
        "env": {"DAGSTER_HOME": str(Path(settings.dagster_home).absolute())},
    })
    _exec_dagster(settings, ["dagster", "code-server", "start"], "-h", host, "-p", str(port),
                  target=["-m", DEFINITIONS_MODULE])


def daemon(settings: Settings) -> NoReturn:
    """Become the Dagster daemon alone (sensors, run queue, backfills): production's runner."""
    write_health_file({
        "role": "daemon",
        "command": [str(Path(sys.executable).with_name("dagster-daemon")), "liveness-check"],
        "env": {"DAGSTER_HOME": str(Path(settings.dagster_home).absolute()),
                "DAGSTER_DAEMON_HEARTBEAT_TOLERANCE": str(DAEMON_HEARTBEAT_TOLERANCE_SECONDS)},
    })
    _exec_dagster(settings, ["dagster-daemon", "run"])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cryptodudez`` command: every error is one line, never a traceback.

    A user error (a bad argument, a missing file, a refused key, a bad setting) exits with
    status 2; a file that cannot be read (a corrupt Parquet file in the lake, named) and any
    other failure (an unreachable lake, missing credentials) with 1. A ``ValueError`` is a
    user error unless a reader raised it (pyarrow's ``ArrowInvalid`` is one): data that
    cannot be read is never reported as a bad argument.
    ``--traceback`` shows the full traceback instead, for debugging, with the same status.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args_list
    if show_traceback:
        args_list.remove("--traceback")
    try:
        return _main(args_list)
    except DataError as exc:
        return _failed(exc, FAILURE_STATUS, one_line(exc), show_traceback=show_traceback)
    except (CliError, ValueError) as exc:
        if not isinstance(exc, CliError) and _raised_by_a_reader(exc):
            return _failed(exc, FAILURE_STATUS, f"data could not be read: "
                           f"{type(exc).__name__}: {one_line(exc)}",
                           show_traceback=show_traceback)
        return _failed(exc, USAGE_STATUS, one_line(exc), show_traceback=show_traceback)
    except Exception as exc:
        return _failed(exc, FAILURE_STATUS, f"{type(exc).__name__}: {one_line(exc)}",
                       show_traceback=show_traceback)
    except PanicException as exc:  # a Rust panic in polars is a BaseException, not an Exception
        command = next((a for a in args_list if not a.startswith("-")), "cryptodudez")
        return _failed(exc, FAILURE_STATUS, f"{command}: polars panicked (a corrupt file "
                       f"in the lake?): {one_line(exc)}", show_traceback=show_traceback)


def _failed(exc: BaseException, status: int, line: str, *, show_traceback: bool) -> int:
    """Report ``exc`` as one line (or, with ``--traceback``, its traceback); return ``status``.

    ``--traceback`` changes only what is printed, never the exit status.
    """
    if show_traceback:
        traceback.print_exception(exc)
    else:
        sys.stderr.write(f"cryptodudez: error: {line}\n")
    return status


def _raised_by_a_reader(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a data reader (:data:`_DATA_ERROR_MODULES`), not our code."""
    return type(exc).__module__.partition(".")[0] in _DATA_ERROR_MODULES


# A terminal's escape sequences: CSI (colours, ``ESC[31m``), OSC (titles, links; ended by
# BEL or ``ESC\\``) and the two-byte ones. delta-rs writes coloured ``ESC[31m↳ESC[0m``
# into its error messages.
_TERMINAL_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(exc: BaseException) -> str:
    r"""``exc``'s message on one line, at most 400 characters (its ``repr`` when empty).

    A terminal's escape sequences in it (a library's colours) are dropped, and any other
    control character is written ``\xNN``: the line is plain text whatever it quotes.
    """
    text = " ".join(_TERMINAL_ESCAPE.sub("", str(exc)).split())
    text = _CONTROL.sub(lambda found: f"\\x{ord(found[0]):02x}", text) or repr(exc)
    return text if len(text) <= 400 else text[:397] + "..."


def _date_arg(text: str) -> date:
    """A day written YYYY-MM-DD (an argparse type)."""
    try:
        return parse_day(text)
    except ValueError:
        msg = f"not a date (YYYY-MM-DD): {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _shard_arg(text: str) -> str:
    """``i/n``, this machine's share of the types (an argparse type), returned as typed.

    Checked while parsing, so that a bad one is answered before the seconds of imports that
    computing the KPIs takes, naming the option and its form.
    """
    try:
        Shard.parse(text)
    except KpiError:
        msg = (f"expected i/n, which needs 0 <= i < n and at most {MAX_SHARDS} shards, "
               f"got {text!r}")
        raise argparse.ArgumentTypeError(msg) from None
    return text


# Options whose value may begin with '-' (``--shard -1/2``): argparse takes such a value for
# an option and answers "expected one argument"; attached with '=' it reaches its type.
_DASH_VALUE_OPTIONS = ("--shard",)


def _attach_dash_values(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--shard -1/2`` (or an abbreviation, ``--sha -1/2``) as ``--shard=-1/2``.

    Nothing after a ``--`` changes: those are operands, whatever they look like.
    """
    out: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            return [*out, arg, *rest]
        if (len(arg) > 2 and any(o.startswith(arg) for o in _DASH_VALUE_OPTIONS)
                and rest and rest[0].startswith("-") and rest[0] != "--"):
            arg = f"{arg}={rest.pop(0)}"
        out.append(arg)
    return out


class _CommandParser(OneLineParser):
    """A subcommand's parser: it reports the arguments it does not know.

    argparse hands a subcommand's unknown arguments up to the top-level parser, whose error
    then points to ``cryptodudez --help`` rather than to the subcommand's help. An option of
    one value given twice is refused by every :class:`OneLineParser`.
    """

    def parse_known_args(  # type: ignore[override]  # one signature for the overloads
            self, args: Sequence[str] | None = None,
            namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse ``args``; an argument this subcommand does not know is its usage error."""
        parsed, unknown = super().parse_known_args(args, namespace)
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed, unknown


MAX_BACKFILL_DAYS = 366
"""The most days one ``backfill-events`` covers."""
CHART_FOLDER = "charts"
"""Where ``coingecko`` writes its chart: this folder beside the warehouse file."""

# The variables the command reads (Settings.from_env, the server roles' defaults and the
# CoinGecko resource), shown by ``cryptodudez --help``: names, then what they set.
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("CRYPTODUDEZ_LAKE", "the lake: a folder (default: lake/ in the project) or "
     "s3://bucket/prefix, which selects the production resources (S3, Glue)"),
    ("CRYPTODUDEZ_WAREHOUSE", "DuckDB file of result tables (default: <lake>/warehouse.duckdb; "
     "warehouse.duckdb in the project for an S3 lake)"),
    ("DAGSTER_HOME", "Dagster's runs, events and sensor ticks (default: .dagster/ in the "
     "project)"),
    ("CRYPTODUDEZ_ENGINE", "polars (default) or spark, or per asset: stock_features=spark-job"),
    ("CRYPTODUDEZ_GLUE_DATABASE", "Glue database of an S3 lake (default: cryptodudez)"),
    ("AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION", "S3 and Glue endpoint and region "
     "(credentials as boto3 finds them)"),
    ("CRYPTODUDEZ_DAGSTER_PG_URL", "Postgres URL of Dagster's storage"),
    ("DAGSTER_PG_HOST, DAGSTER_PG_DB, DAGSTER_PG_USERNAME, DAGSTER_PG_PASSWORD, "
     "DAGSTER_PG_PORT", "the same Postgres by parts"),
    ("CRYPTODUDEZ_CODE_LOCATION", "host:port of `cryptodudez code-location`, for the "
     "webserver and the daemon"),
    ("CRYPTODUDEZ_EMR_APPLICATION_ID, CRYPTODUDEZ_EMR_EXECUTION_ROLE_ARN, "
     "CRYPTODUDEZ_EMR_SPARK_SUBMIT_PARAMETERS, CRYPTODUDEZ_EMR_LOG_GROUP",
     "EMR Serverless for the spark-job engine"),
    ("COINGECKO_MODE, COINGECKO_API_KEY, COINGECKO_KEY_TYPE, COINGECKO_BASE_URL, "
     "COINGECKO_RECORDING", "the coingecko command's source: offline recording (default) or "
     "the live API"),
    ("CRYPTODUDEZ_HOST", "default --host of serve, webserver and code-location "
     "(else 127.0.0.1)"),
    ("CRYPTODUDEZ_HEALTH_FILE", "where serve, webserver, code-location and daemon record "
     "their health check"),
)


def _epilog() -> str:
    """The end of ``cryptodudez --help``: the environment, --traceback and the exit status."""
    lines = ["environment (read once at start; the README's Configuration has the details):"]
    for names, meaning in ENVIRONMENT:
        lines += textwrap.wrap(f"{names}: {meaning}", width=92, initial_indent="  ",
                               subsequent_indent="      ", break_on_hyphens=False)
    lines += ["", "--traceback (anywhere on the line): print the full traceback of an error "
              "(same exit status)",
              f"exit status: 0 done; {FAILURE_STATUS} a failure (a failed run, a lake file "
              "that cannot be read, no", f"  credentials, a port in use); {USAGE_STATUS} a bad "
              "argument, path, key or setting"]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="cryptodudez", description=(__doc__ or "").split("\n\n")[0],
                           epilog=_epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)
    p_land = sub.add_parser("land", help="copy files or folders into the lake's raw/ layer "
                            "(hidden files in a folder are skipped, and listed)")
    p_land.add_argument("paths", nargs="+", type=_land_path, metavar="PATH",
                        help="a file, or a folder whose files land with their relative paths")
    p_land.add_argument("--prefix", default="", type=_prefix_arg,
                        help="folder under raw/ to land into, such as vendor/2026-11 "
                             "(default: the root of raw/)")
    sub.add_parser("ingest", help="register and materialise everything that has landed")
    sub.add_parser("summary", help="print what the lake holds: rows validated and quarantined "
                   "per table, and where the tables, the metastore and the warehouse are")
    sub.add_parser("demo", help="land the bundled samples and run the pipeline end to end")
    sub.add_parser("dagster-home", help="create DAGSTER_HOME if needed and print its path")
    add_server_arguments(sub.add_parser("serve", help=SERVE_DESCRIPTION))
    p_ui = sub.add_parser("ui", help="Dagster webserver + daemon in one process tree "
                          "(`dagster dev`, for local use) on the lake")
    p_ui.add_argument("--host", type=host_arg, default=LOCAL_HOST,
                      help=f"address of the webserver (default: {LOCAL_HOST})")
    p_ui.add_argument("--port", type=port_arg, default=3000,
                      help="TCP port of the webserver, 1-65535 (default: 3000)")
    p_web = sub.add_parser("webserver", help="the Dagster webserver alone (production UI role)")
    p_web.add_argument("--host", type=host_arg, default=default_host(),
                       help=f"address to listen on (default: ${HOST_VARIABLE}, else "
                            f"{LOCAL_HOST})")
    p_web.add_argument("--port", type=port_arg, default=3000,
                       help="TCP port, 1-65535 (default: 3000)")
    sub.add_parser("daemon", help="the Dagster daemon alone: sensors, run queue, backfills "
                   "(production runner role)")
    p_code = sub.add_parser("code-location", help="the Dagster code server of the definitions "
                            "alone (production code-location role; the webserver and the "
                            "daemon find it through CRYPTODUDEZ_CODE_LOCATION=host:port)")
    p_code.add_argument("--host", type=host_arg, default=default_host(),
                        help=f"address to listen on (default: ${HOST_VARIABLE}, else "
                             f"{LOCAL_HOST})")
    p_code.add_argument("--port", type=port_arg, default=4000,
                        help="TCP port, 1-65535 (default: 4000)")
    p_kpi = sub.add_parser("kpi", help="a day's event KPIs per type over a local or S3 lake, "
                           "without Dagster (--shard i/n on each machine, then --merge)")
    what = p_kpi.add_mutually_exclusive_group(required=True)
    what.add_argument("--date", type=_date_arg, help="UTC day, YYYY-MM-DD")
    what.add_argument("--merge", nargs="+", action="extend", type=Path, metavar="PART",
                      help="merge shard parts written with --out (--merge p0.json p1.json, "
                           "or --merge once per part)")
    # None when not given: a merge takes both from its parts and refuses them given
    p_kpi.add_argument("--shard", type=_shard_arg,
                       help="i/n: this machine's share of the types (default 0/1)")
    p_kpi.add_argument("--source", choices=KPI_SOURCES,
                       help="rollups (default; megabytes, HLL distinct counts) or events "
                            "(the day's events; exact per type)")
    p_kpi.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    p_back = sub.add_parser("backfill-events", help="compact and compute the KPIs of a range "
                            "of UTC days (in this process; each day a recorded run)")
    p_back.add_argument("--from", dest="first", type=_date_arg, required=True,
                        metavar="YYYY-MM-DD", help="first UTC day of the range")
    p_back.add_argument("--to", dest="last", type=_date_arg, required=True,
                        metavar="YYYY-MM-DD", help="last UTC day of the range (at most "
                        f"{MAX_BACKFILL_DAYS} days in all, up to today)")
    p_cg = sub.add_parser("coingecko", help="fetch a coin's daily USD prices from CoinGecko for "
                          "a range of UTC days, store them and their 5-day moving average in "
                          "the warehouse (one recorded run), and write the chart to "
                          f"{CHART_FOLDER}/ beside the warehouse (its path is printed)")
    p_cg.add_argument("--coin", default="bitcoin", help="CoinGecko id (default: bitcoin)")
    p_cg.add_argument("--from", dest="first", required=True, help="first UTC day, YYYY-MM-DD")
    p_cg.add_argument("--to", dest="last", required=True, help="last UTC day, YYYY-MM-DD")
    return parser


def _cmd_dagster_home(settings: Settings, args: argparse.Namespace) -> int:
    echo(str(ensure_dagster_home(settings)))
    return 0


# The commands that become another process: no pipeline code is imported for them.
_ROLES: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "dagster-home": _cmd_dagster_home,
    "ui": lambda settings, args: ui(settings, host=args.host, port=args.port),
    "webserver": lambda settings, args: webserver(settings, host=args.host, port=args.port),
    "daemon": lambda settings, args: daemon(settings),
    "code-location": lambda settings, args: code_location(settings, host=args.host,
                                                          port=args.port),
    "serve": lambda settings, args: serve(settings, host=args.host, port=args.port,
                                          workers=args.workers),
}


def _main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(_attach_dash_values(argv))
    settings = Settings.from_env()
    if (role := _ROLES.get(args.command)) is not None:
        return int(role(settings, args))
    from cryptodudez.commands import COMMANDS  # noqa: PLC0415 - seconds of imports: only here

    return int(COMMANDS[args.command](settings, args))


if __name__ == "__main__":
    # ``python -m cryptodudez.cli`` runs this file as ``__main__``, a second module beside the
    # ``cryptodudez.cli`` that ``commands`` imports: its CliError would be another class, and a
    # user error would be reported as a crash. Run the one module everything else imports.
    from cryptodudez import cli  # noqa: PLW0406 - deliberately: the one imported module

    raise SystemExit(cli.main())
