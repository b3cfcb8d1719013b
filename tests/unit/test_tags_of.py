"""``tags_of`` (one polars expression) names every file's tag as ``tag_of`` does."""

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from cryptodudez.lake.layout import tag_of, tags_of

# Names built from the pieces that matter to the rule: "-g" (possibly several), folders,
# the ".parquet" suffix (or not), and other characters of a tag.
pieces = st.sampled_from(["-g", "-g0", "-g001", "-", "g", "a", "7", "_", ".", "/",
                          ".parquet", "compact_2026-11-01_v3_ab", "-of16"])
paths = st.lists(pieces, max_size=12).map("".join)


@given(st.lists(paths, min_size=1, max_size=50))
def test_tags_of_is_tag_of_on_every_path(given_paths: list[str]) -> None:
    got = pl.DataFrame({"path": given_paths}, schema={"path": pl.String}).select(
        tags_of(pl.col("path")))["tag"].to_list()
    assert got == [tag_of(p) for p in given_paths]


def test_the_files_of_a_commit_share_its_tag() -> None:
    names = ["event_type=a/date=2026-11-01/hour=03/0123abcd-g002-7.parquet",
             "compact_2026-11-01_v4_9f-g000-of16.parquet", "0123abcd.parquet"]
    got = pl.DataFrame({"path": names}).select(tags_of(pl.col("path")))["tag"].to_list()
    assert got == ["0123abcd", "compact_2026-11-01_v4_9f", "0123abcd"]
