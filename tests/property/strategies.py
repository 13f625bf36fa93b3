"""Hypothesis strategies for JSON values and the context shapes the flows see."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: ASCII keys a template path can name (the path grammar's key alphabet).
KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$@:-"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    # Text the conditions read as numbers, instants and durations.
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.sampled_from(["2024-05-01", "2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00"]),
    st.sampled_from(["PT1H", "PT30M", "P1D", "PT0.5S", "true", "false", "1e3", ".5"]),
)

keys = st.text(alphabet=KEY_ALPHABET, min_size=1, max_size=8)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=12,
)

events = st.dictionaries(keys, json_values, max_size=6)
