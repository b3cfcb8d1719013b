"""A failed run in the CLI's process: one line per failed step, no stack trace on the console."""

import time

import dagster as dg

from cryptodudez.run_outcome import QUIET, outcome, step_errors


@dg.asset
def fine() -> int:
    return 1


@dg.asset(deps=[fine])
def breaks() -> int:
    msg = "the planted fault\n  spread over two lines"
    raise ValueError(msg)


def test_a_failed_step_is_one_line_and_the_console_shows_no_trace(capfd) -> None:
    started = time.perf_counter()
    result = dg.materialize([fine, breaks], raise_on_error=False,
                            run_config={"loggers": QUIET["loggers"]})
    assert not result.success
    assert step_errors(result) == ["breaks: ValueError: the planted fault spread over two lines"]
    head, error = outcome(result, started).splitlines()
    assert head.startswith("FAILED in ") and result.run_id[:8] in head
    assert error.strip() == "breaks: ValueError: the planted fault spread over two lines"
    console = capfd.readouterr().err
    assert "Traceback" not in console and "ValueError" not in console


def test_a_run_that_succeeds_is_done_without_errors() -> None:
    result = dg.materialize([fine], run_config={"loggers": QUIET["loggers"]})
    assert outcome(result, time.perf_counter()).startswith("done in ")
    assert step_errors(result) == []


def test_the_old_level_printed_the_trace(capfd) -> None:
    """What the first test guards against: at WARNING, the failed step's trace is printed."""
    dg.materialize([fine, breaks], raise_on_error=False,
                   run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    assert "ValueError" in capfd.readouterr().err


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=1, delay=0))
def unreadable() -> int:
    raise PermissionError(13, "Permission denied", "/lake/raw/x.csv")


def test_a_step_out_of_retries_says_what_its_last_attempt_raised() -> None:
    # the CLI said only "Exceeded max_retries of 2" for an unreadable landed file (a reviewer)
    result = dg.materialize([unreadable], raise_on_error=False,
                            run_config={"loggers": QUIET["loggers"]})
    assert step_errors(result) == [
        "unreadable: Exceeded max_retries of 1; the last attempt: PermissionError: [Errno 13] "
        "Permission denied: '/lake/raw/x.csv'"]
