"""Run the prediction API under uvicorn (uvloop, httptools), settings from the environment.

``python -m serving`` and ``cryptodudez serve`` both end here. The CLI hands over by
replacing its process with ``python -m serving``: uvicorn starts its workers with
multiprocessing's *spawn*, which re-imports the parent's main script in every worker, and the
``cryptodudez`` script imports Dagster. Started from ``serving``, a worker imports only the
API (``serving.asgi``).
"""

import argparse
import os
import sys
from collections.abc import Sequence


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options (shared by ``python -m serving`` and ``cryptodudez serve``)."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="server processes (default: one per core)")


def command(*, host: str, port: int, workers: int) -> list[str]:
    """The ``python -m serving`` command line for these options."""
    return [sys.executable, "-m", "serving", "--host", host, "--port", str(port),
            "--workers", str(workers)]


def run(*, host: str, port: int, workers: int) -> None:
    """Serve ``serving.asgi:app`` until interrupted."""
    import uvicorn  # noqa: PLC0415 - only the server needs it, not the CLI that imports this

    uvicorn.run("serving.asgi:app", host=host, port=port, workers=workers, loop="uvloop",
                http="httptools", access_log=False, log_level="warning")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m serving``."""
    parser = argparse.ArgumentParser(prog="python -m serving",
                                     description="serve GET /predict from the latest model")
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    run(host=args.host, port=args.port, workers=args.workers)
    return 0
