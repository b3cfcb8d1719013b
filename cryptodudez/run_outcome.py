"""A job run in the CLI's own process, reported in one line.

The CLI prints its own progress; Dagster's per-event console log, with the stack trace of a
failed step, stays in the run's logs (the UI shows them). What failed is said here, in one
line per failed step.
"""

import time

import dagster as dg

# Dagster's console logger only for what is worse than an error: a failed step's stack trace
# is in the run's logs, and the CLI prints the step and its error in one line.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
ERROR_CHARS = 400  # an error message is cut here (a whole pandera report can be pages long)


def _last_retry_cause(result: dg.ExecuteInProcessResult, step: str | None) -> str | None:
    """The error of the step's last attempt before its retries ran out, or None."""
    for event in reversed(result.all_events):
        if event.step_key == step and event.event_type_value == "STEP_UP_FOR_RETRY":
            error = getattr(event.event_specific_data, "error", None)
            cause = error.cause if error is not None else None
            return " ".join(cause.message.split()) if cause is not None else None
    return None


def step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """``<step>: <error>`` of each failed step, each on one line.

    A step whose retries ran out says so and what its last attempt raised (Dagster's own
    message, "Exceeded max_retries of 2", names no cause).
    """
    lines = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None and error.cls_name == "DagsterExecutionStepExecutionError":
            error = error.cause or error  # the asset's own exception, under Dagster's wrapper
        message = " ".join(error.message.split()) if error is not None else "failed"
        if message.startswith("Exceeded max_retries") and (
                cause := _last_retry_cause(result, event.step_key)):
            message = f"{message}; the last attempt: {cause}"
        lines.append(f"{event.step_key}: {message[:ERROR_CHARS]}")
    return lines


def outcome(result: dg.ExecuteInProcessResult, started: float) -> str:
    """``done in 1.2 s (run 1a2b3c4d)``, or ``FAILED ...`` with each failed step's error."""
    head = (f"{'done' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f} s"
            f" (run {result.run_id[:8]})")
    errors = [] if result.success else step_errors(result)
    return "\n".join([head, *(f"        {line}" for line in errors)])
