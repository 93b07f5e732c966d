"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

# names that are valid on POSIX filesystems and exercise ustar limits and UTF-8
_name_chars = st.characters(
    codec="utf-8", exclude_characters="/\x00", exclude_categories=("Cs", "Cc")
)
names = st.text(_name_chars, min_size=1, max_size=40).filter(lambda n: n not in (".", ".."))
long_names = st.text(st.sampled_from("abcdefgh"), min_size=90, max_size=160)


@st.composite
def trees(draw: st.DrawFn, max_depth: int = 3) -> dict[str, object]:
    """A directory tree as nested dicts: name -> bytes (file), ('x', bytes) (executable) or dict."""

    def level(depth: int) -> st.SearchStrategy[dict[str, object]]:
        leaf = st.one_of(st.binary(max_size=600), st.tuples(st.just("x"), st.binary(max_size=64)))
        child = (
            leaf if depth >= max_depth else st.one_of(leaf, st.deferred(lambda: level(depth + 1)))
        )
        return st.dictionaries(st.one_of(names, long_names), child, max_size=5)

    return draw(level(0))
