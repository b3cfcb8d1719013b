"""The suite's loadgroup guard, under real xdist workers.

A conftest that strips xdist's ``@group`` node-id suffix (what pytest 9.2 does) makes every
grouped test fail in setup with the reason; without the strip the same tests pass.
"""

import pytest

GUARDED_CONFTEST = """
import pytest
from tests.xdist_guard import refuse_split_group

def pytest_runtest_setup(item):
    refuse_split_group(item)

@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    if {strip}:  # what pytest 9.2 does to xdist's suffix
        for item in items:
            item._nodeid = item.nodeid.split("@")[0]
"""
GROUPED_TESTS = """
import pytest
pytestmark = pytest.mark.xdist_group("g")

def test_one():
    pass

def test_two():
    pass
"""


@pytest.mark.parametrize("strip", [False, True])
def test_the_suite_refuses_to_run_when_xdist_loses_the_group_suffix(
        pytester: pytest.Pytester, strip: bool) -> None:
    pytester.makeconftest(GUARDED_CONFTEST.format(strip=strip))
    pytester.makepyfile(test_grouped=GROUPED_TESTS)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "no:randomly",
                                           "-p", "no:cacheprovider")
    if strip:
        result.assert_outcomes(errors=2)
        result.stdout.fnmatch_lines(["*loadgroup lost the xdist_group of test_grouped.py::*"])
    else:
        result.assert_outcomes(passed=2)
        assert "lost the xdist_group" not in result.stdout.str()
