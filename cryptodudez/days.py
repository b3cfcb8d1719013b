"""Days as the command line and the jobs write them."""

import re
from datetime import date

_YMD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(text: str) -> date:
    """A day written ``YYYY-MM-DD``; ``ValueError`` otherwise.

    ``date.fromisoformat`` alone also reads ``20220101`` and ``2022-W01-1``, which no help
    text promises (a reviewer).
    """
    if not _YMD.fullmatch(text):
        raise ValueError(text)
    return date.fromisoformat(text)
