from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st

from core.hashing import canonical_bytes, normalize_json, sha256_stream

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                       max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_bytes_parse_back_to_the_same_value(value):
    assert json.loads(canonical_bytes(value)) == value


@given(st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                       max_size=4),
    max_leaves=20))
def test_canonical_bytes_match_the_standard_library_without_floats(value):
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_bytes(value) == expected.encode("utf-8")


@given(json_values)
def test_normalized_values_hash_the_same_after_a_round_trip(value):
    normalized = normalize_json(value)
    assert canonical_bytes(json.loads(json.dumps(normalized))) == canonical_bytes(normalized)


def test_integer_keys_become_strings_as_json_would():
    assert normalize_json({1: "a"}) == {"1": "a"}


def test_sha256_stream_counts_bytes():
    digest, size = sha256_stream(io.BytesIO(b"x" * 3_000_000))
    assert size == 3_000_000 and len(digest) == 64


def test_numbers_are_normalized_as_postgresql_returns_them():
    assert normalize_json({"a": -0.0, "b": 1e16, "c": 2.5e17, "d": 1.5, "e": 1e300}) == {
        "a": 0.0, "b": 10**16, "c": 25 * 10**16, "d": 1.5, "e": 1e300}
