"""check_many must answer exactly what check_input answers, row by row."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.columnar import check_many
from inference.validation import check_input

SCHEMA = [
    {"name": "age", "type": "integer", "min": 18, "max": 100, "unit": "years"},
    {"name": "radius", "type": "number", "min": 5.0, "max": 30.0},
    {"name": "ratio", "type": "number", "min": 0.0, "max": 1.0, "missing": "impute"},
    {"name": "texture", "type": "number", "missing": "pass"},
    {"name": "smoker", "type": "boolean", "required": False},
    {"name": "site", "type": "category", "categories": ["a", "b", "c", "7"]},
]
PROFILE = {"columns": {
    "age": {"p01": 20, "p99": 90, "quantiles": [20, 50, 90], "mean": 52.0},
    "radius": {"p01": 7.0, "p99": 25.0, "quantiles": [7.0, 14.0, 25.0], "mean": 14.2},
    "ratio": {"p01": 0.05, "p99": 0.95, "quantiles": [0.1, 0.5, 0.9], "mean": 0.5},
    "texture": {"p01": 10.0, "p99": 30.0},
    "smoker": {"categories": {"true": 30, "false": 70}},
    "site": {"categories": {"a": 10, "b": 5, "7": 1}, "other_rate": 0},
}}
NUMERIC_SCHEMA = [f for f in SCHEMA if f["type"] in ("number", "integer")]

odd = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.just(float("nan")),
                st.just(float("inf")), st.just(10 ** 400), st.just(2 ** 60 + 1),
                st.just([1]), st.just({"x": 1}))
values = {
    "age": st.one_of(st.integers(10, 110), st.floats(10, 110), st.just(40.0), odd),
    "radius": st.one_of(st.floats(0, 40, allow_nan=False), st.integers(0, 40), odd),
    "ratio": st.one_of(st.floats(-0.5, 1.5, allow_nan=False), odd),
    "texture": st.one_of(st.floats(0, 40, allow_nan=False), odd),
    "smoker": st.one_of(st.booleans(), odd),
    "site": st.one_of(st.sampled_from(["a", "b", "c", "d", "7"]), st.just(7), odd),
}


@st.composite
def rows(draw):
    if draw(st.integers(0, 30)) == 0:
        return draw(st.one_of(st.none(), st.lists(st.integers(), max_size=2), st.text()))
    row = {}
    for name, strategy in values.items():
        if draw(st.integers(0, 12)):  # mostly present
            row[name] = draw(strategy)
    if draw(st.integers(0, 25)) == 0:
        row["unknown"] = 1
    return row


def _same(a, b) -> bool:
    """Checked equality where NaN equals NaN (check_input never keeps one, but be exact)."""
    return a == b or (a.errors == b.errors and a.ood == b.ood and a.imputed == b.imputed and all(
        (x == y) or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a.values.values(), b.values.values(), strict=True)))


@settings(max_examples=300, deadline=None)
@given(st.lists(rows(), min_size=1, max_size=40))
def test_check_many_equals_check_input_row_by_row(batch):
    screened = check_many(batch, schema=SCHEMA, profile=PROFILE, path="row")
    expected = [check_input(r, schema=SCHEMA, profile=PROFILE, path="row") for r in batch]
    assert len(screened.checked) == len(expected)
    for got, want in zip(screened.checked, expected, strict=True):
        assert _same(got, want), (got, want)
    for ok, got in zip(screened.passed.tolist(), screened.checked, strict=True):
        if ok:
            assert not got.errors and not got.ood and not got.imputed


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({f["name"]: values[f["name"]] for f in NUMERIC_SCHEMA}),
                min_size=1, max_size=30))
def test_the_matrix_holds_the_values_of_rows_that_passed(batch):
    screened = check_many(batch, schema=NUMERIC_SCHEMA, profile=PROFILE)
    assert screened.matrix is not None and screened.matrix.shape == (len(batch), 4)
    for ok, got, line in zip(screened.passed.tolist(), screened.checked, screened.matrix,
                             strict=True):
        if ok:
            assert line.tolist() == [float(got.values[f["name"]]) for f in NUMERIC_SCHEMA]


def test_typical_rows_pass_the_screen_and_paths_name_each_row():
    good = {"age": 40, "radius": 14.0, "ratio": 0.5, "texture": 20.0, "smoker": False,
            "site": "a"}
    bad = {**good, "radius": "wide"}
    screened = check_many([good, bad, good], schema=SCHEMA, profile=PROFILE,
                          paths=["instances.0", "instances.1", "instances.2"])
    assert screened.passed.tolist() == [True, False, True]
    assert screened.checked[1].errors[0].field == "instances.1.radius"
    assert screened.matrix is None  # boolean and category features: no numeric matrix
    assert isinstance(screened.checked[0].values["age"], int)
    assert np.array_equal(screened.passed, np.array([True, False, True]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.fixed_dictionaries({"radius": values["radius"]}),
                          st.just({}), st.just({"radius": 12.5})), min_size=0, max_size=20))
def test_a_one_feature_schema_and_empty_batches(batch):
    schema = [SCHEMA[1]]
    screened = check_many(batch, schema=schema, profile=PROFILE)
    assert screened.checked == [check_input(r, schema=schema, profile=PROFILE, path="row")
                                for r in batch]
