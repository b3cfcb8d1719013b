"""Query strings of every route: one parser, one 400 for a parameter the route cannot use.

The routes parse their raw query strings themselves (one code path for every message, and
no multi-dict on ``/predict``'s hot path). A parameter a route does not take is a 400 that
names it and lists the route's parameters: a misspelt optional parameter (``bukcet``)
would otherwise give the default's answer as if it had been asked for. ``_`` alone, the
usual cache-buster, is ignored.
"""

from urllib.parse import unquote_plus

from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_400_BAD_REQUEST

CACHE_BUSTER = "_"


class BadQuery(HTTPException):
    """A 400 whose ``detail`` names the offending query parameter."""

    status_code = HTTP_400_BAD_REQUEST


def shown(raw: str) -> str:
    """The offending value for a message: at most 40 characters, with the full length."""
    return repr(raw) if len(raw) <= 40 else f"{raw[:40]!r}... ({len(raw)} characters)"


def parse_query(raw: bytes, known: frozenset[str]) -> dict[str, str]:
    """The percent-decoded value of each parameter given, all of them in ``known``.

    In a query string ``+`` is a space. Empty segments (``a=1&&b=2``, a trailing ``&``)
    are skipped. A parameter outside ``known`` (other than ``_``) or given twice is a 400
    naming it.
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
    return out
