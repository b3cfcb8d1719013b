"""The Pulumi program run under mocks, once per session, in processes of its own.

``pulumi.runtime.set_mocks`` configures process-global state, so the program never runs inside
the pytest worker: ``infra/pulumi/tests/run_mocked.py`` runs it and prints what it registered.
The safe and the deliberately unsafe run start together and run in parallel.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cryptodudez.settings import PROJECT_DIR

PROGRAM = PROJECT_DIR / "infra" / "pulumi"
RUNNER = PROGRAM / "tests" / "run_mocked.py"
UNSAFE = ("public_bucket", "sse_s3", "wildcard_iam", "untagged_queue", "public_db")
TIMEOUT = 180
CERTIFICATE = "arn:aws:acm:eu-central-1:123456789012:certificate/0b1c2d3e"

if str(PROGRAM) not in sys.path:
    sys.path.insert(0, str(PROGRAM))


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(RUNNER), *args], cwd=PROGRAM,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, err[-4000:]
    return json.loads(out)


@pytest.fixture(scope="session")
def _runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    unsafe_args = [arg for variant in UNSAFE for arg in ("--unsafe", variant)]
    runs = {"safe": _start(), "unsafe": _start(*unsafe_args),
            "https": _start("--config", f"cryptodudez:certificateArn={CERTIFICATE}")}
    yield runs
    for process in runs.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="session")
def stack(_runs: dict[str, subprocess.Popen[str]]) -> dict[str, Any]:
    """The program's registered resources, outputs and policy violations."""
    return _result(_runs["safe"])


@pytest.fixture(scope="session")
def unsafe_stack(_runs: dict[str, subprocess.Popen[str]]) -> dict[str, Any]:
    """The same with every deliberately unsafe change of the runner applied."""
    return _result(_runs["unsafe"])


@pytest.fixture(scope="session")
def https_stack(_runs: dict[str, subprocess.Popen[str]]) -> dict[str, Any]:
    """The program with an ACM certificate configured."""
    return _result(_runs["https"])
