"""Query strings of every route: one parser, one 400 for a parameter the route cannot use.

The routes parse their raw query strings themselves (one code path for every message, and
no multi-dict on ``/predict``'s hot path). A parameter a route does not take is a 400 that
names it and lists the route's parameters: a misspelt optional parameter (``bukcet``)
would otherwise give the default's answer as if it had been asked for. ``_`` alone, the
usual cache-buster, is ignored.

A parameter given with no value (``bucket=``, or a bare ``bucket``) is a 400 on every route,
in one wording ("query parameter 'bucket' is empty: ..."), never its default: an absent
parameter has its default, an empty one was asked for and is not a value.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_400_BAD_REQUEST

CACHE_BUSTER = "_"


class BadQuery(HTTPException):
    """A 400 whose ``detail`` names the offending query parameter."""

    status_code = HTTP_400_BAD_REQUEST


def shown(raw: str, *, limit: int = 40) -> str:
    """The offending value for a message: at most ``limit`` characters, with the full length."""
    return repr(raw) if len(raw) <= limit else f"{raw[:limit]!r}... ({len(raw)} characters)"


@dataclass(frozen=True, slots=True)
class Param:
    """What a route's query parameter takes, for the 400 of an empty value."""

    give: str  # what a value is: "a whole number from 0 to 20"
    default: str | None = None  # what leaving it out gives ("PT10S"); None: it is required


def empty(name: str, param: Param | None = None) -> BadQuery:
    """The 400 of parameter ``name`` given with an empty value, the same on every route."""
    if param is None:
        return BadQuery(detail=f"query parameter {name!r} is empty: give a value, or leave it "
                               "out")
    rest = (f", or leave it out for {param.default}" if param.default is not None
            else "; it is required")
    return BadQuery(detail=f"query parameter {name!r} is empty: give {param.give}{rest}")


def parse_query(raw: bytes, known: Mapping[str, Param] | Collection[str]) -> dict[str, str]:
    """The percent-decoded value of each parameter given, all of them in ``known``.

    In a query string ``+`` is a space. Empty segments (``a=1&&b=2``, a trailing ``&``)
    are skipped. A parameter outside ``known`` (other than ``_``) or given twice is a 400
    naming it; then one given with an empty value (``name=`` or a bare ``name``) is a 400
    saying it is empty (:func:`empty`, with ``known``'s :class:`Param` when it maps names to
    them). A route's parsers therefore never see an empty value: only an absent parameter
    takes its default.
    """
    text = raw.decode("latin-1")
    encoded = "%" in text or "+" in text  # rare: decode names and values only then
    out: dict[str, str] = {}
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if encoded:
            name = unquote_plus(name)
            value = unquote_plus(value)
        if name not in known:
            if name == CACHE_BUSTER:
                continue
            takes = ", ".join(sorted(known)) or "none"
            raise BadQuery(detail=f"unknown query parameter {shown(name)}; this route takes: "
                                  f"{takes}")
        if name in out:
            raise BadQuery(detail=f"query parameter {name!r} is given more than once; "
                                  "give each parameter once")
        out[name] = value
    if "" in out.values():
        name = next(n for n, v in out.items() if not v)
        raise empty(name, known.get(name) if isinstance(known, Mapping) else None)
    return out
