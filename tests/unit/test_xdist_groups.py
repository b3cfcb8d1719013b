"""The suite's loadgroup guard: a grouped test without its ``@group`` node-id suffix is caught."""

import pytest

from tests.helpers import ungrouped


def test_a_grouped_test_without_its_suffix_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_g="""
        import pytest

        @pytest.mark.xdist_group("g")
        def test_grouped():
            pass

        def test_free():
            pass
    """)
    items, _ = pytester.inline_genitems()
    by_name = {item.name: item for item in items}

    # Without xdist's suffix (pytest 9.2 drops it) the grouped test is reported, the free one not.
    assert ungrouped(items) == [by_name["test_grouped"].nodeid]

    # With it (what xdist writes under pytest < 9.2) nothing is reported.
    grouped = by_name["test_grouped"]
    suffixed = type("Suffixed", (), {"nodeid": grouped.nodeid + "@g",
                                     "get_closest_marker": grouped.get_closest_marker})()
    assert ungrouped([suffixed, by_name["test_free"]]) == []
