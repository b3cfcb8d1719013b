"""The suite's guard on xdist's ``--dist loadgroup`` (imports only pytest: cheap in workers)."""

from collections.abc import Sequence

import pytest


def ungrouped(items: Sequence[pytest.Item]) -> list[str]:
    """Node ids of ``xdist_group`` tests that lack the ``@group`` suffix ``--dist loadgroup`` needs.

    xdist 3.8 keeps a group on one worker only through that suffix; pytest 9.2 silently drops it
    (pytest-xdist#1386), so each worker then builds every group's expensive fixture itself.
    """
    return [item.nodeid for item in items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]


def refuse_split_group(item: pytest.Item) -> None:
    """Under ``--dist loadgroup``, fail a grouped test that lost its group (clearly, in setup).

    (Raising in a worker's collection hooks ends in xdist's "no active workers" internal
    error, without the reason.)
    """
    if item.config.getoption("loadgroup", default=False) and ungrouped([item]):
        pytest.fail(f"--dist loadgroup lost the xdist_group of {item.nodeid}, so its group is "
                    "split across workers: see the pytest pin in pyproject.toml", pytrace=False)
