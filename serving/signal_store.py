"""The ETH trading signal: its artefact in the lake, and the store that serves it.

Layout::

    models/eth_signal/<version>/signals.json   one version, every date with features
    models/eth_signal/LATEST                   the published version (written last)

``signals.json`` holds::

    {"version": "v1", "served": "model" | "baseline:<name>", "model_version": "v1",
     "classes": ["buy", "hodl", "sell"],
     "label_definition": {"method": "horizon", "horizon": 1, "band": 0.01,
                          "band_kind": "fixed"},
     "rows": [{"date": "2021-03-01", "action": "buy",
               "probabilities": {"buy": 0.6, "hodl": 0.3, "sell": 0.1},
               "features_as_of": "2021-03-01T00:00:00Z", "in_sample": false}, ...]}

with the rows sorted by date, one per date. ``label_definition`` is the label configuration of
the training set the version was made from (what "buy" means: the return over ``horizon`` days
above the band); versions written before it existed lack it (read as None).
``in_sample`` is true for a date whose label the served model was fitted on: its
probabilities are not out-of-sample. :func:`write_signals` (called by the Dagster
asset and by the tests) writes a version's file and then ``LATEST``, so a reader that follows
``LATEST`` never finds half a version; :func:`read_signals` reads one version back and checks
every field. :class:`SignalStore` polls ``LATEST`` and swaps, in one assignment, to a fully
loaded version, keeping the one it has when a new one cannot be loaded.

Only the standard library and the lake as plain files are imported here, so an API worker
never loads Dagster, polars or scikit-learn.
"""

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from cryptodudez.storage import MODELS
from serving.polling import PollingStore

SIGNAL_NAME = "eth_signal"
SIGNALS_FILE = "signals.json"
CLASSES = ("buy", "hodl", "sell")
MODEL = "model"
BASELINE_PREFIX = "baseline:"
# A version is one path segment: no "/", no ".." and not the pointer's own name.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*").fullmatch
_BASELINE = re.compile(r"baseline:[A-Za-z0-9][A-Za-z0-9._-]*").fullmatch
# fullmatch of ASCII digits: date.fromisoformat alone would also take "20210301".
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").fullmatch
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z").fullmatch
_INSTANT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_SUM_TOLERANCE = 1e-6


class ReadableLake(Protocol):
    """What reading needs: :class:`cryptodudez.storage.LakeStorage` (or the Dagster ``Lake``)."""

    def path(self, *parts: str) -> str:
        """Path of ``parts`` under the lake's root."""
        ...

    def read_bytes(self, path: str) -> bytes:
        """Bytes of a file."""
        ...

    def exists(self, path: str) -> bool:
        """True when ``path`` exists."""
        ...


class WritableLake(Protocol):
    """What writing needs: the Dagster resource ``cryptodudez.resources.lake.Lake``.

    Its ``write_bytes`` is atomic (a temporary file renamed into place locally, one PUT on
    S3); ``LakeStorage`` only reads.
    """

    def path(self, *parts: str) -> str:
        """Path of ``parts`` under the lake's root."""
        ...

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a file atomically."""
        ...


@dataclass(frozen=True)
class SignalRow:
    """The signal of one date.

    Attributes:
        date: the day the signal is for.
        action: one of ``CLASSES``.
        probabilities: the probability of each of ``CLASSES`` (each from 0 to 1, summing
            to 1).
        features_as_of: when the features behind the signal were computed up to; naive
            values are taken as UTC; written to the second.
        in_sample: True when the date was in the model's training data.
    """

    date: date
    action: str
    probabilities: Mapping[str, float]
    features_as_of: datetime
    in_sample: bool

    def to_json(self) -> dict[str, Any]:
        """The row as ``signals.json`` holds it (checked: a ValueError names what is wrong)."""
        if isinstance(self.date, datetime) or not isinstance(self.date, date):
            raise ValueError(f"date must be a date (not a datetime), got {self.date!r}")
        if not isinstance(self.features_as_of, datetime):
            raise ValueError(f"{self.date}: features_as_of must be a datetime, "
                             f"got {self.features_as_of!r}")
        probabilities = dict(self.probabilities)
        if set(probabilities) == set(CLASSES):  # else the check below says what is wrong
            probabilities = {c: probabilities[c] for c in CLASSES}
        return _check_row({"date": self.date.isoformat(), "action": self.action,
                           "probabilities": probabilities,
                           "features_as_of": self.features_as_of_text,
                           "in_sample": self.in_sample})

    @classmethod
    def from_json(cls, data: object) -> "SignalRow":
        """Inverse of :meth:`to_json` (a ValueError names what is wrong)."""
        row = _check_row(data)
        return cls(date=date.fromisoformat(row["date"]), action=row["action"],
                   probabilities={c: float(row["probabilities"][c]) for c in CLASSES},
                   features_as_of=datetime.strptime(row["features_as_of"], _INSTANT_FORMAT)
                   .replace(tzinfo=UTC),
                   in_sample=row["in_sample"])

    @property
    def features_as_of_text(self) -> str:
        """``features_as_of`` as written: ``YYYY-MM-DDTHH:MM:SSZ``."""
        as_of = self.features_as_of
        as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
        return as_of.strftime(_INSTANT_FORMAT)


@dataclass(frozen=True)
class ServedSignals:
    """A loaded version: its rows by date, the first and latest dates, its label definition.

    ``label_definition`` is None for a version written before signals carried it.
    """

    version: str
    served: str
    rows: Mapping[date, SignalRow]
    first: date
    latest: date
    label_definition: Mapping[str, Any] | None = None


LABEL_METHODS = ("horizon", "triple_barrier")
BAND_KINDS = ("fixed", "volatility")
LABEL_KEYS = ("method", "horizon", "band", "band_kind")


def check_label_definition(data: object) -> dict[str, Any]:
    """``data`` if it is a label definition as ``signals.json`` holds it, else a ValueError.

    The fields of :class:`cryptodudez.features.labels.LabelConfig`, checked here without
    importing it (an API worker loads no polars).
    """
    if not isinstance(data, Mapping) or set(data) != set(LABEL_KEYS):
        raise ValueError(f"label_definition must be an object with exactly the keys "
                         f"{sorted(LABEL_KEYS)}, got {data!r}")
    if data["method"] not in LABEL_METHODS:
        raise ValueError(f"label_definition method must be one of {list(LABEL_METHODS)}, "
                         f"got {data['method']!r}")
    if data["band_kind"] not in BAND_KINDS:
        raise ValueError(f"label_definition band_kind must be one of {list(BAND_KINDS)}, "
                         f"got {data['band_kind']!r}")
    horizon, band = data["horizon"], data["band"]
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"label_definition horizon must be a whole number of days >= 1, "
                         f"got {horizon!r}")
    if isinstance(band, bool) or not isinstance(band, int | float) or not (
            math.isfinite(band) and band >= 0):
        raise ValueError(f"label_definition band must be a finite number >= 0, got {band!r}")
    return {k: data[k] for k in LABEL_KEYS} | {"band": float(band)}


def _check_row(data: object) -> dict[str, Any]:
    """``data`` if it is a well-formed row of ``signals.json``, else a ValueError saying why."""
    if not isinstance(data, dict):
        raise ValueError(f"a row must be an object, got {type(data).__name__}")
    keys = {"date", "action", "probabilities", "features_as_of", "in_sample"}
    if set(data) != keys:
        raise ValueError(f"a row has the keys {sorted(keys)}, got {sorted(data)}")
    day = data["date"]
    if not isinstance(day, str) or not _DATE(day):
        raise ValueError(f"a row's date must be YYYY-MM-DD, got {day!r}")
    date.fromisoformat(day)  # a ValueError for a day that is not in the calendar
    if data["action"] not in CLASSES:
        raise ValueError(f"{day}: action must be one of {list(CLASSES)}, got {data['action']!r}")
    probabilities = data["probabilities"]
    if not isinstance(probabilities, dict) or set(probabilities) != set(CLASSES):
        raise ValueError(f"{day}: probabilities must have exactly the keys {list(CLASSES)}, "
                         f"got {probabilities!r}")
    for name, p in probabilities.items():
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
            raise ValueError(f"{day}: probability of {name!r} must be a number from 0 to 1, "
                             f"got {p!r}")
    if not math.isclose(math.fsum(probabilities.values()), 1.0, abs_tol=_SUM_TOLERANCE):
        raise ValueError(f"{day}: probabilities must sum to 1, got {probabilities!r}")
    as_of = data["features_as_of"]
    if not isinstance(as_of, str) or not _INSTANT(as_of):
        raise ValueError(f"{day}: features_as_of must be YYYY-MM-DDTHH:MM:SSZ, got {as_of!r}")
    datetime.strptime(as_of, _INSTANT_FORMAT)  # a ValueError for an impossible instant
    if not isinstance(data["in_sample"], bool):
        raise ValueError(f"{day}: in_sample must be true or false, got {data['in_sample']!r}")
    return data


def _check_version(version: object) -> str:
    if not isinstance(version, str) or not _VERSION(version) or version == "LATEST":
        raise ValueError(f"a version is letters, digits, '.', '_' and '-' (not 'LATEST'), "
                         f"got {version!r}")
    return version


def _check_served(served: object) -> str:
    if served != MODEL and not (isinstance(served, str) and _BASELINE(served)):
        raise ValueError(f"served must be {MODEL!r} or 'baseline:<name>', got {served!r}")
    return str(served)


def write_signals(lake: WritableLake, version: str, rows: Iterable[SignalRow], *,
                  label_definition: Mapping[str, Any], served: str = MODEL,
                  publish: bool = True) -> str:
    """Write ``rows`` as ``version`` of the ETH signal; returns the path of its file.

    Writes ``models/eth_signal/<version>/signals.json`` (rows sorted by date), then, with
    ``publish``, points ``models/eth_signal/LATEST`` at it (:func:`publish_signals`; a writer
    that checks the version first publishes it afterwards). Everything is checked before
    anything is written: a ValueError names a bad version, ``served`` value, label
    definition, row, a repeated date or no rows.

    Args:
        lake: the lake to write to (the Dagster resource ``Lake``: atomic writes).
        version: the version's name, one path segment (``v3``, ``2021-03-01T00-00``).
        rows: one row per date, in any order.
        label_definition: the label configuration the version's training set was made
            with (``method``, ``horizon``, ``band``, ``band_kind``).
        served: ``"model"``, or ``"baseline:<name>"`` when a baseline made the signal.
        publish: point ``LATEST`` at the version (False: the caller publishes it later).
    """
    _check_version(version)
    _check_served(served)
    labels = check_label_definition(label_definition)
    encoded = sorted((row.to_json() for row in rows), key=lambda r: str(r["date"]))
    if not encoded:
        raise ValueError(f"version {version!r} of {SIGNAL_NAME} has no rows")
    for before, after in itertools.pairwise(encoded):
        if before["date"] == after["date"]:
            raise ValueError(f"date {after['date']} has more than one row")
    document = {"version": version, "served": served, "model_version": version,
                "classes": list(CLASSES), "label_definition": labels, "rows": encoded}
    path = lake.path(MODELS, SIGNAL_NAME, version, SIGNALS_FILE)
    lake.write_bytes(path, json.dumps(document, allow_nan=False).encode())
    if publish:
        publish_signals(lake, version)
    return path


def publish_signals(lake: WritableLake, version: str) -> None:
    """Point ``models/eth_signal/LATEST`` at ``version`` (written before, whole)."""
    _check_version(version)
    lake.write_bytes(lake.path(MODELS, SIGNAL_NAME, "LATEST"), version.encode())


def latest_signal_version(lake: ReadableLake) -> str | None:
    """The version ``LATEST`` points at, or None before any signal is published."""
    pointer = lake.path(MODELS, SIGNAL_NAME, "LATEST")
    if not lake.exists(pointer):
        return None
    return lake.read_bytes(pointer).decode().strip() or None


def read_signals(lake: ReadableLake, version: str) -> ServedSignals:
    """Read and check one published version (a ValueError says what is wrong with it)."""
    _check_version(version)
    raw = lake.read_bytes(lake.path(MODELS, SIGNAL_NAME, version, SIGNALS_FILE))
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError(f"{SIGNALS_FILE} of {version!r} is not an object")
    if document.get("version") != version or document.get("model_version") != version:
        raise ValueError(f"{SIGNALS_FILE} under {version!r} says version "
                         f"{document.get('version')!r}, model_version "
                         f"{document.get('model_version')!r}")
    if document.get("classes") != list(CLASSES):
        raise ValueError(f"classes must be {list(CLASSES)}, got {document.get('classes')!r}")
    served = _check_served(document.get("served"))
    labels = (check_label_definition(document["label_definition"])
              if "label_definition" in document else None)
    listed = document.get("rows")
    if not isinstance(listed, list) or not listed:
        raise ValueError(f"{SIGNALS_FILE} of {version!r} has no rows")
    rows: dict[date, SignalRow] = {}
    for item in listed:
        row = SignalRow.from_json(item)
        if rows and row.date <= next(reversed(rows)):
            raise ValueError(f"rows are not sorted by date with one row per date at {row.date}")
        rows[row.date] = row
    return ServedSignals(version=version, served=served, rows=rows, first=next(iter(rows)),
                         latest=next(reversed(rows)), label_definition=labels)


class SignalStore(PollingStore[ServedSignals]):
    """Holds the current signal version; ``refresh`` loads a newer published one if any."""

    name = SIGNAL_NAME

    def __init__(self, lake: ReadableLake, *, poll_seconds: float = 2.0) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.lake = lake

    def latest_version(self) -> str | None:
        """The version ``LATEST`` points at, or None before any signal is published."""
        return latest_signal_version(self.lake)

    def load(self, version: str) -> ServedSignals:
        """Read one version's signals, checked."""
        return read_signals(self.lake, version)

