"""``GET /signal/eth``: the ETH trading signal of a day (buy, hodl or sell), with probabilities.

The signals come from the :class:`serving.signal_store.SignalStore` on ``app.state``, which
:func:`serving.app.create_app` opens in its lifespan; importing this module touches no file.
"""

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated

import msgspec
from litestar import MediaType, Request, get
from litestar.exceptions import HTTPException
from litestar.openapi.spec import OpenAPIResponse, Operation, Parameter, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.status_codes import (
    HTTP_404_NOT_FOUND,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from serving.query import BadQuery, Param, parse_query, shown
from serving.signal_store import CLASSES, ServedSignals

PATH = "/signal/eth"
DATE = "date"
DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# fullmatch, not "$", which would also accept a trailing newline; ASCII digits only.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").fullmatch
DATE_GRAMMAR = "a calendar date as YYYY-MM-DD in ASCII digits, for example 2021-03-01"
_PARAMETERS = {DATE: Param(DATE_GRAMMAR, "the latest date")}


IN_SAMPLE = ("true when the served model was fitted on this date's label: its probabilities "
             "are not out-of-sample, and in-sample signals are not a track record")


class LabelDefinition(msgspec.Struct):
    """What the served version's labels mean (the training set's label configuration)."""

    method: Annotated[str, msgspec.Meta(
        description="`horizon` (the return at the horizon) or `triple_barrier` (the first "
                    "barrier the daily closes touch within the horizon)")]
    horizon: Annotated[int, msgspec.Meta(description="days from the decision close to the "
                                                     "close that decides the label")]
    band: Annotated[float, msgspec.Meta(
        description="the dead band: a log return (`fixed`) or a multiple of the horizon's "
                    "volatility (`volatility`); buy above it, sell below minus it")]
    band_kind: Annotated[str, msgspec.Meta(description="`fixed` or `volatility`")]


class Signal(msgspec.Struct):
    """``GET /signal/eth`` body."""

    date: str
    action: str
    probabilities: dict[str, float]
    model_version: str
    features_as_of: str
    served: str
    in_sample: Annotated[bool, msgspec.Meta(description=IN_SAMPLE)]
    label_definition: Annotated[LabelDefinition | None, msgspec.Meta(
        description="the label definition of the training set the version was made from; "
                    "null for a version published before signals carried it")]


def date_query(raw: bytes) -> str | None:
    """The value of ``date`` in a query string (None when not given); a 400 for any other.

    An empty ``date`` is a 400 of :func:`serving.query.parse_query`, worded as on every route.
    """
    return parse_query(raw, _PARAMETERS).get(DATE)


def parse_date(raw: str) -> date:
    """The date of a ``date`` parameter, or a 400 naming it."""
    if not _DATE(raw):
        raise BadQuery(detail=f"query parameter {DATE!r} must be {DATE_GRAMMAR}, "
                              f"got {shown(raw)}")
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise BadQuery(detail=f"query parameter {DATE!r} must be a real calendar date "
                              f"(YYYY-MM-DD), got {shown(raw)}: {exc}") from exc


def _not_found(day: date, signals: ServedSignals) -> HTTPException:
    span = (signals.latest - signals.first).days + 1
    missing = span - len(signals.rows)
    gaps = f" ({missing} of those days have no features)" if missing else ""
    return HTTPException(status_code=HTTP_404_NOT_FOUND,
                         detail=f"no signal for {DATE} {day.isoformat()}: signals exist for "
                                f"{signals.first.isoformat()}..{signals.latest.isoformat()}"
                                f"{gaps}")


def eth_signal(request: Request) -> Signal:
    """The ETH signal of the given date (default: the latest date with features)."""
    raw = date_query(request.scope["query_string"])
    day = None if raw is None else parse_date(raw)
    signals: ServedSignals | None = request.app.state.signal_store.current
    if signals is None:
        raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE,
                            detail=request.app.state.signal_store.problem
                            or "no ETH signal has been published yet")
    row = signals.rows.get(signals.latest if day is None else day)
    if row is None:
        raise _not_found(day or signals.latest, signals)
    labels = signals.label_definition
    return Signal(date=row.date.isoformat(), action=row.action,
                  probabilities=dict(row.probabilities), model_version=signals.version,
                  features_as_of=row.features_as_of_text, served=signals.served,
                  in_sample=row.in_sample,
                  label_definition=None if labels is None else LabelDefinition(**labels))


@dataclass
class SignalOperation(Operation):
    """OpenAPI operation of ``/signal/eth``: documents ``date`` and the error answers.

    The handler parses ``date`` itself (one code path for every error message), so Litestar
    cannot infer it from its signature.
    """

    def __post_init__(self) -> None:
        self.parameters = [
            Parameter(name=DATE, param_in="query", required=False,
                      description=f"the day of the signal, {DATE_GRAMMAR}; given at most "
                                  "once; default: the latest date with features",
                      schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE,
                                    pattern=DATE_PATTERN)),
        ]
        self.responses = {
            **(self.responses or {}),
            "400": OpenAPIResponse(description=f"`{DATE}` is empty, given twice, not "
                                               "YYYY-MM-DD or not a calendar date, or another "
                                               "parameter is given; the detail names it"),
            "404": OpenAPIResponse(description=f"no features for that `{DATE}`; the detail "
                                               "says which dates have a signal (first..last)"),
            "503": OpenAPIResponse(description="no signal has been published yet, or the "
                                               "latest cannot be loaded (the detail says "
                                               "which)"),
        }


signal_get = get(
    PATH,
    media_type=MediaType.JSON,
    sync_to_thread=False,
    summary="ETH trading signal of a day",
    description=f"The action ({', '.join(CLASSES)}) for ETH on a day, with the probability of "
                "each, the version that made it and when its features were computed up to. "
                "`served` is `model`, or `baseline:<name>` when a baseline made the published "
                "version. `in_sample` is true for a date the served model was fitted on: "
                "in-sample signals are not a track record. `label_definition` says what the "
                "actions mean (buy: the return over `horizon` days above the band). A new "
                "version is served as soon as it is published, without a "
                "restart. `HEAD` answers with the same status and headers and no body.",
    operation_class=SignalOperation,
    response_description="the signal of the day",
)(eth_signal)
