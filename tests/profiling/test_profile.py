"""Tests for the profiling package: no Django, every file generated in tmp_path."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from profiling import (
    DatasetProfile,
    ProfilingError,
    profile_file,
    sha256_file,
    validate_profile,
)
from profiling import profile as profiling


@pytest.fixture(autouse=True)
def _list_every_category(monkeypatch):
    """These tests profile a few rows to check how values are read and listed; the
    k-anonymity threshold (MIN_CATEGORY_COUNT) has tests of its own below."""
    monkeypatch.setattr(profiling, "MIN_CATEGORY_COUNT", 1)


def write(tmp_path: Path, content: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def refusal(path: Path, **kwargs: Any) -> ProfilingError:
    with pytest.raises(ProfilingError) as caught:
        profile_file(path, **kwargs)
    return caught.value


def walk(value: Any) -> list[Any]:
    """Every leaf of a JSON-like structure, to check that no numpy scalars leak out."""
    if isinstance(value, dict):
        assert all(isinstance(key, str) for key in value)
        return [leaf for item in value.values() for leaf in walk(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in walk(item)]
    return [value]


# --------------------------------------------------------------------------- happy paths


def test_it_profiles_numeric_columns(tmp_path: Path) -> None:
    values = [float(v) for v in range(1, 101)]  # 1.0 .. 100.0, written as "1.5"-style floats
    body = "x\n" + "\n".join(f"{v + 0.5}" for v in values) + "\n"
    result = profile_file(write(tmp_path, body))

    column = result.profile["columns"]["x"]
    shifted = np.array(values) + 0.5
    assert result.columns == [{"name": "x", "type": "number"}]
    assert column["type"] == "number"
    assert column["count"] == 100
    assert column["missing_rate"] == 0.0
    assert column["min"] == 1.5
    assert column["max"] == 100.5
    assert column["mean"] == pytest.approx(shifted.mean())
    assert column["std"] == pytest.approx(shifted.std(ddof=1))
    assert column["p01"] == pytest.approx(np.quantile(shifted, 0.01))
    assert column["p99"] == pytest.approx(np.quantile(shifted, 0.99))
    assert column["quantiles"] == pytest.approx(list(np.quantile(shifted, np.linspace(0, 1, 11))))
    assert len(column["quantiles"]) == 11
    assert column["bin_frequencies"] == pytest.approx([0.1] * 10, abs=0.011)
    assert sum(column["bin_frequencies"]) == pytest.approx(1.0)
    assert validate_profile(result.profile, result.columns) == []


def test_it_honours_n_bins(tmp_path: Path) -> None:
    body = "x\n" + "\n".join(f"{v}.25" for v in range(40)) + "\n"
    column = profile_file(write(tmp_path, body), n_bins=4).profile["columns"]["x"]

    assert len(column["quantiles"]) == 5
    assert column["bin_frequencies"] == pytest.approx([0.25] * 4)


def test_it_deduplicates_quantile_edges_of_skewed_columns(tmp_path: Path) -> None:
    body = "x\n" + "0.0\n" * 90 + "".join(f"{v}.5\n" for v in range(10))
    result = profile_file(write(tmp_path, body))
    column = result.profile["columns"]["x"]

    assert column["quantiles"] == sorted(set(column["quantiles"]))
    assert column["quantiles"][0] == 0.0
    assert len(column["bin_frequencies"]) == len(column["quantiles"]) - 1
    assert column["bin_frequencies"][0] >= 0.9
    assert sum(column["bin_frequencies"]) == pytest.approx(1.0)
    assert validate_profile(result.profile, result.columns) == []


def test_it_profiles_integer_columns_including_ones_with_gaps(tmp_path: Path) -> None:
    result = profile_file(
        write(tmp_path, "plain,gappy,whole_floats\n1,1,1.0\n2,,2.0\n3,3,3.0\n4,4,4.0\n")
    )

    assert result.columns == [
        {"name": "plain", "type": "integer"},
        {"name": "gappy", "type": "integer"},
        # Whole-valued floats with no gaps stay numbers: the rule only undoes NaN-upcasting.
        {"name": "whole_floats", "type": "number"},
    ]
    gappy = result.profile["columns"]["gappy"]
    assert gappy["count"] == 3
    assert gappy["missing_rate"] == 0.25
    assert (gappy["min"], gappy["max"], gappy["mean"]) == (1.0, 4.0, pytest.approx(8 / 3))


def test_it_keeps_fractional_floats_with_gaps_as_numbers(tmp_path: Path) -> None:
    # A blank line is skipped, so a single column's missing value is written as "".
    result = profile_file(write(tmp_path, 'x\n1.5\n\n2\n""\n'))
    assert result.columns == [{"name": "x", "type": "number"}]
    assert (result.row_count, result.profile["columns"]["x"]["count"]) == (3, 2)


def test_it_profiles_boolean_columns(tmp_path: Path) -> None:
    body = "flag,mixed_case,gappy\ntrue,TRUE,true\nfalse,False,\ntrue,tRuE,false\ntrue,FALSE,true\n"
    result = profile_file(write(tmp_path, body))

    assert [c["type"] for c in result.columns] == ["boolean", "boolean", "boolean"]
    columns = result.profile["columns"]
    assert columns["flag"] == {
        "type": "boolean",
        "count": 4,
        "missing_rate": 0.0,
        "categories": {"true": 0.75, "false": 0.25},
    }
    assert columns["mixed_case"]["categories"] == {"true": 0.5, "false": 0.5}
    assert columns["gappy"]["count"] == 3
    assert columns["gappy"]["missing_rate"] == 0.25
    assert columns["gappy"]["categories"] == {
        "true": pytest.approx(2 / 3),
        "false": pytest.approx(1 / 3),
    }


def test_it_does_not_treat_yes_no_or_zero_one_as_boolean(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, "answer,bit,t\nyes,0,t\nno,1,f\nyes,1,t\n"))
    assert result.columns == [
        {"name": "answer", "type": "category"},
        {"name": "bit", "type": "integer"},
        {"name": "t", "type": "category"},
    ]


def test_it_profiles_category_columns(tmp_path: Path) -> None:
    values = ["a"] * 5 + ["b"] * 3 + ["d"] * 2 + ["c"] * 2 + ["e"] * 1 + [""] * 2
    result = profile_file(
        write(tmp_path, "site\n" + "\n".join(v or '""' for v in values) + "\n"), max_categories=3
    )
    column = result.profile["columns"]["site"]

    assert column["type"] == "category"
    assert column["count"] == 13
    assert column["missing_rate"] == pytest.approx(2 / 15)
    assert column["distinct"] == 5
    # Most frequent first; the c/d tie is broken by value, so the result is reproducible.
    assert list(column["categories"]) == ["a", "b", "c"]
    assert column["categories"] == {"a": 5 / 13, "b": 3 / 13, "c": 2 / 13}
    assert column["other_rate"] == pytest.approx(3 / 13)
    assert sum(column["categories"].values()) + column["other_rate"] == pytest.approx(1.0)


def test_it_lists_the_smallest_values_of_an_all_unique_column(tmp_path: Path) -> None:
    ids = [f"P{n:04d}" for n in range(200)]
    np.random.default_rng(1).shuffle(ids)
    column = profile_file(
        write(tmp_path, "id\n" + "\n".join(ids) + "\n"), max_categories=5
    ).profile["columns"]["id"]

    assert list(column["categories"]) == ["P0000", "P0001", "P0002", "P0003", "P0004"]
    assert column["distinct"] == 200
    assert column["other_rate"] == pytest.approx(195 / 200)


def test_it_reads_text_that_looks_numeric_in_places_as_category(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, "code\n1\n2\nA7\n"))
    column = result.profile["columns"]["code"]
    assert column["type"] == "category"
    assert set(column["categories"]) == {"1", "2", "A7"}


def test_it_handles_constant_and_single_value_columns(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, "constant,single\n0.1,\n0.1,7\n0.1,\n"))
    constant = result.profile["columns"]["constant"]
    single = result.profile["columns"]["single"]

    assert constant["quantiles"] == [0.1]
    assert constant["bin_frequencies"] == [1.0]
    assert constant["min"] <= constant["mean"] <= constant["max"]
    assert constant["std"] == 0.0
    assert single["type"] == "integer"
    assert single["std"] is None  # undefined for one value: None, never NaN
    assert single["quantiles"] == [7.0]
    assert validate_profile(result.profile, result.columns) == []


def test_it_handles_an_all_missing_column(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, "a,empty\n1,\n2,\n"))
    empty = result.profile["columns"]["empty"]

    assert empty["type"] == "number"
    assert empty["count"] == 0
    assert empty["missing_rate"] == 1.0
    assert empty["min"] is None and empty["std"] is None
    assert empty["quantiles"] == [] and empty["bin_frequencies"] == []
    assert validate_profile(result.profile, result.columns) == []


def test_it_treats_pandas_na_markers_as_missing(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, "x\n1\nNA\nnull\nNaN\n5\n"))
    column = result.profile["columns"]["x"]
    assert (column["type"], column["count"], column["missing_rate"]) == ("integer", 2, 0.6)


def test_it_outputs_plain_json_types(tmp_path: Path) -> None:
    body = "f,i,b,c,g\n1.5,1,true,x,\n2.5,2,false,y,\n3.5,3,true,x,\n"
    result = profile_file(write(tmp_path, body))
    data = result.as_dict()

    assert set(data) == {"sha256", "row_count", "file_format", "columns", "profile"}
    assert data["profile"]["version"] == 1
    for leaf in walk(data):
        assert leaf is None or type(leaf) in (str, int, float, bool), type(leaf)
        if isinstance(leaf, float):
            assert math.isfinite(leaf)
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_as_dict_returns_a_copy(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, "x\n1\n2\n"))
    data = result.as_dict()
    data["profile"]["columns"]["x"]["min"] = -1
    data["columns"].clear()

    assert result.profile["columns"]["x"]["min"] == 1.0
    assert result.columns == [{"name": "x", "type": "integer"}]
    with pytest.raises(AttributeError):
        result.row_count = 5  # type: ignore[misc]


def test_it_keeps_columns_in_file_order(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, "zeta,alpha,mid\n1,2,3\n"))
    assert [c["name"] for c in result.columns] == ["zeta", "alpha", "mid"]
    assert list(result.profile["columns"]) == ["zeta", "alpha", "mid"]


def test_it_hashes_the_file_bytes_in_chunks(tmp_path: Path) -> None:
    # Larger than the 1 MiB chunk and not a multiple of it, so the loop runs several times.
    rows = "".join(f"{n},{n * 0.5}\n" for n in range(200_000))
    path = write(tmp_path, "a,b\n" + rows)
    assert path.stat().st_size > 2 * 1024 * 1024
    expected = hashlib.sha256(path.read_bytes()).hexdigest()

    assert sha256_file(path) == expected
    assert sha256_file(str(path)) == expected
    result = profile_file(path)
    assert result.sha256 == expected
    assert result.row_count == 200_000


def test_it_chooses_the_format_by_suffix_or_argument(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1, 2, 3]})
    frame.to_parquet(tmp_path / "data.pq")
    frame.to_parquet(tmp_path / "data.bin")
    write(tmp_path, "x\n1\n2\n3\n", "DATA.CSV")
    write(tmp_path, "x\n1\n2\n3\n", "export.txt")

    assert profile_file(tmp_path / "data.pq").file_format == "parquet"
    assert profile_file(tmp_path / "data.bin", file_format="parquet").file_format == "parquet"
    assert profile_file(tmp_path / "DATA.CSV").file_format == "csv"
    assert profile_file(tmp_path / "export.txt", file_format="CSV").file_format == "csv"


def test_it_tolerates_a_byte_order_mark(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, b"\xef\xbb\xbfage,sex\n30,F\n"))
    assert [c["name"] for c in result.columns] == ["age", "sex"]


def test_it_reads_quoted_fields_with_commas_and_newlines(tmp_path: Path) -> None:
    body = 'id,note,score\n1,"cough, fever",2.5\n2,"two\nlines",3.5\n3,"said ""hi""",4.5\n'
    result = profile_file(write(tmp_path, body))

    assert result.row_count == 3
    assert set(result.profile["columns"]["note"]["categories"]) == {
        "cough, fever",
        "two\nlines",
        'said "hi"',
    }
    assert result.profile["columns"]["score"]["max"] == 4.5


def test_it_skips_blank_lines(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, "\na,b\n1,2\n\n3,4\n\n"))
    assert result.row_count == 2
    assert [c["name"] for c in result.columns] == ["a", "b"]


def test_it_keeps_non_ascii_values(tmp_path: Path) -> None:
    result = profile_file(write(tmp_path, "ville,°C\nMontréal,-3.5\nZürich,2.5\n"))
    assert set(result.profile["columns"]["ville"]["categories"]) == {"Montréal", "Zürich"}
    assert result.columns[1] == {"name": "°C", "type": "number"}


def test_it_profiles_parquet_using_the_stored_types(tmp_path: Path) -> None:
    table = pa.table(
        {
            "age": pa.array([30, None, 50, 41], type=pa.int32()),
            "bmi": pa.array([21.5, 30.0, None, 25.25]),
            "smoker": pa.array([True, None, False, True]),
            "sex": pa.array(["F", "M", None, "F"]),
            "admitted": pa.array([pd.Timestamp("2024-01-01")] * 4),
            "stage": pa.array(["I", "II", "I", "III"]).dictionary_encode(),
        }
    )
    path = tmp_path / "cohort.parquet"
    pq.write_table(table, path)
    result = profile_file(path)

    assert result.file_format == "parquet"
    assert result.row_count == 4
    assert result.columns == [
        {"name": "age", "type": "integer"},
        {"name": "bmi", "type": "number"},
        {"name": "smoker", "type": "boolean"},
        {"name": "sex", "type": "category"},
        {"name": "admitted", "type": "category"},
        {"name": "stage", "type": "category"},
    ]
    columns = result.profile["columns"]
    assert columns["age"]["missing_rate"] == 0.25
    assert columns["age"]["min"] == 30.0
    assert columns["smoker"]["categories"] == {
        "true": pytest.approx(2 / 3),
        "false": pytest.approx(1 / 3),
    }
    assert columns["sex"]["categories"] == {"F": pytest.approx(2 / 3), "M": pytest.approx(1 / 3)}
    assert columns["stage"]["distinct"] == 3
    assert validate_profile(result.profile, result.columns) == []
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_it_ignores_the_unnamed_pandas_index_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "filtered.parquet"
    pd.DataFrame({"x": [1.5, 2.5, 3.5]}, index=[10, 20, 30]).to_parquet(path)
    assert "__index_level_0__" in pq.ParquetFile(path).schema_arrow.names

    assert profile_file(path).columns == [{"name": "x", "type": "number"}]


def test_it_gives_the_same_statistics_for_csv_and_parquet(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=500).round(4),
            "n": rng.integers(0, 10, size=500),
            "flag": rng.random(500) < 0.5,
            "site": rng.choice(["north", "south", "east"], size=500),
        }
    )
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)

    from_csv = profile_file(tmp_path / "d.csv")
    from_parquet = profile_file(tmp_path / "d.parquet")
    assert from_csv.columns == from_parquet.columns
    assert from_csv.profile == from_parquet.profile
    assert from_csv.sha256 != from_parquet.sha256


def test_it_profiles_a_realistic_dataset(tmp_path: Path) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    frame = datasets.load_breast_cancer(as_frame=True).frame
    path = tmp_path / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    result = profile_file(path)

    assert result.row_count == 569
    assert len(result.columns) == 31
    types = {c["name"]: c["type"] for c in result.columns}
    assert types["mean radius"] == "number"
    assert types["target"] == "integer"
    radius = result.profile["columns"]["mean radius"]
    assert radius["min"] == pytest.approx(frame["mean radius"].min())
    assert radius["max"] == pytest.approx(frame["mean radius"].max())
    assert radius["mean"] == pytest.approx(frame["mean radius"].mean())
    assert sum(radius["bin_frequencies"]) == pytest.approx(1.0)
    assert validate_profile(result.profile, result.columns) == []
    assert (
        validate_profile(json.loads(json.dumps(result.as_dict()["profile"])), result.columns) == []
    )


def test_it_rejects_nonsense_parameters(tmp_path: Path) -> None:
    path = write(tmp_path, "x\n1\n")
    with pytest.raises(ValueError):
        profile_file(path, n_bins=0)
    with pytest.raises(ValueError):
        profile_file(path, max_categories=-1)


def test_profiling_error_carries_code_message_and_field() -> None:
    error = ProfilingError("no_rows", "No rows.", "file")
    assert (error.code, error.message, error.field, str(error)) == (
        "no_rows",
        "No rows.",
        "file",
        "No rows.",
    )
    assert ProfilingError("x", "y").field is None


def test_dataset_profile_is_constructible_directly() -> None:
    profile = DatasetProfile(
        sha256="0" * 64, row_count=1, file_format="csv", columns=[], profile={}
    )
    assert profile.as_dict()["row_count"] == 1


# --------------------------------------------------------------------------- refusals


def test_it_refuses_a_missing_file(tmp_path: Path) -> None:
    error = refusal(tmp_path / "nope.csv")
    assert error.code == "file_not_found"
    assert "nope.csv" in error.message


def test_it_refuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "folder.csv").mkdir()
    assert refusal(tmp_path / "folder.csv").code == "file_not_found"


def test_it_refuses_an_empty_file(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, b""))
    assert error.code == "empty_file"
    assert "0 bytes" in error.message


@pytest.mark.parametrize("content", ["a,b,c\n", "a,b,c", "a,b,c\n\n\n"])
def test_it_refuses_a_header_without_rows(tmp_path: Path, content: str) -> None:
    assert refusal(write(tmp_path, content)).code == "no_rows"


def test_it_refuses_a_parquet_file_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"x": pa.array([], type=pa.int64())}), path)
    assert refusal(path).code == "no_rows"


@pytest.mark.parametrize("content", ["\n", "\n\n\r\n"])
def test_it_refuses_a_csv_without_columns(tmp_path: Path, content: str) -> None:
    assert refusal(write(tmp_path, content)).code == "no_columns"


def test_it_refuses_a_parquet_file_without_columns(tmp_path: Path) -> None:
    path = tmp_path / "nothing.parquet"
    pq.write_table(pa.table({}), path)
    assert refusal(path).code == "no_columns"


def test_it_refuses_ragged_rows_with_too_many_fields(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n11,12,13\n"))
    assert error.code == "ragged_rows"
    assert "Line 4 " in error.message
    assert "4 fields" in error.message and "header has 3" in error.message


def test_it_refuses_ragged_rows_with_too_few_fields(tmp_path: Path) -> None:
    # pandas alone would silently pad this row with NaN.
    error = refusal(write(tmp_path, "a,b,c\n1,2,3\n4,5\n7,8,9\n"))
    assert error.code == "ragged_rows"
    assert "Line 3 " in error.message
    assert "2 fields" in error.message


def test_it_refuses_a_surplus_field_on_every_row(tmp_path: Path) -> None:
    # pandas alone would turn the first column into an index and shift every value left.
    error = refusal(write(tmp_path, "a,b\n1,2,3\n4,5,6\n"))
    assert error.code == "ragged_rows"
    assert "Line 2 " in error.message


def test_it_refuses_ragged_rows_after_a_multiline_field(tmp_path: Path) -> None:
    body = 'a,b\n1,"first\nsecond"\n2,x\n3\n'
    error = refusal(write(tmp_path, body))
    assert error.code == "ragged_rows"
    assert "Line 5 " in error.message  # physical line, counting the quoted newline
    error = refusal(write(tmp_path, 'a,b\n1,"x"\n2,"first\nsecond",extra\n', "second.csv"))
    assert "Line 3 " in error.message  # a multi-line record is reported where it starts


def test_it_refuses_a_row_made_of_a_trailing_delimiter(tmp_path: Path) -> None:
    assert refusal(write(tmp_path, "a,b\n1,2,\n")).code == "ragged_rows"


def test_it_refuses_non_utf8_bytes_and_names_the_offset(tmp_path: Path) -> None:
    content = b"name,city\nAnna," + "Montréal".encode("latin-1") + b"\n"
    error = refusal(write(tmp_path, content))
    assert error.code == "encoding"
    assert "UTF-8" in error.message
    assert f"offset {content.index(b'\xe9')}" in error.message


def test_it_names_the_offset_of_bad_bytes_beyond_the_first_chunk(tmp_path: Path) -> None:
    # A valid two-byte character straddles the 1 MiB boundary; the bad byte comes later.
    filler = b"x\n" + b"a\n" * ((1024 * 1024 - 3) // 2)
    content = filler + "é\n".encode() + b"b\n" * 1000 + b"\xff\n"
    error = refusal(write(tmp_path, content))
    assert error.code == "encoding"
    assert f"offset {content.index(b'\xff')}" in error.message


def test_it_refuses_a_truncated_utf8_sequence_at_the_end(tmp_path: Path) -> None:
    content = b"x\nabc\n\xc3"
    error = refusal(write(tmp_path, content))
    assert error.code == "encoding"
    assert f"offset {len(content) - 1}" in error.message


def test_it_refuses_non_utf8_bytes_in_the_header(tmp_path: Path) -> None:
    assert refusal(write(tmp_path, "âge,x\n1,2\n".encode("cp1252"))).code == "encoding"


def test_it_refuses_corrupt_parquet(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pd.DataFrame({"x": range(100)}).to_parquet(good)
    data = good.read_bytes()
    cases = {
        "text.parquet": b"x,y\n1,2\n",
        "truncated.parquet": data[: len(data) // 2],
        "scrambled.parquet": data[:8] + b"\x00" * (len(data) - 16) + data[-8:],
    }
    for name, content in cases.items():
        error = refusal(write(tmp_path, content, name))
        assert error.code == "corrupt_file", name
        assert "parquet" in error.message


def test_it_refuses_a_parquet_file_read_as_csv(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    pd.DataFrame({"x": range(100)}).to_parquet(path)
    assert refusal(path).code in {"encoding", "ragged_rows"}


def test_it_refuses_unknown_formats(tmp_path: Path) -> None:
    path = write(tmp_path, "x\n1\n", "data.xlsx")
    error = refusal(path)
    assert error.code == "unsupported_format"
    assert ".xlsx" in error.message
    assert refusal(write(tmp_path, "x\n1\n", "noext")).code == "unsupported_format"
    error = refusal(tmp_path / "data.csv", file_format="excel")  # checked before the file
    assert (error.code, error.field) == ("unsupported_format", "file_format")


def test_it_refuses_duplicate_columns(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "age,sex,age\n1,F,2\n"))
    assert error.code == "duplicate_columns"
    assert "'age'" in error.message

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]), path)
    assert refusal(path).code == "duplicate_columns"


def test_it_refuses_blank_column_names(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "age,,sex\n1,2,F\n"))
    assert error.code == "blank_column_name"
    assert "Column 2" in error.message


def test_it_refuses_infinite_values(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "x,y\n1.5,1\ninf,2\n"))
    assert (error.code, error.field) == ("non_finite_values", "x")


def test_it_refuses_fields_the_csv_reader_cannot_hold(tmp_path: Path) -> None:
    huge = "z" * 200_000  # beyond the csv module's field size limit
    error = refusal(write(tmp_path, f"a,b\n1,{huge}\n"))
    assert error.code == "malformed_csv"
    assert huge not in error.message


def test_it_refuses_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated, because the suite may run as root, which ignores permission bits.
    from profiling import profile as profiling

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(profiling, "open", denied, raising=False)
    error = refusal(write(tmp_path, "x\n1\n"))
    assert error.code == "file_unreadable"
    assert "permission denied" in error.message


# --------------------------------------------------------------------------- validate_profile


@pytest.fixture
def good(tmp_path: Path) -> DatasetProfile:
    body = "age,bmi,smoker,site\n30,21.5,true,A\n,30.25,false,B\n50,25.0,true,A\n41,27.5,,C\n"
    return profile_file(write(tmp_path, body))


def problems_after(good: DatasetProfile, change: Any, *, with_columns: bool = True) -> list[tuple]:
    profile = copy.deepcopy(good.profile)
    columns = copy.deepcopy(good.columns)
    change(profile, columns)
    return validate_profile(profile, columns if with_columns else None)


def test_validate_accepts_a_profile_it_computed(good: DatasetProfile) -> None:
    assert validate_profile(good.profile) == []
    assert validate_profile(good.profile, good.columns) == []
    assert (
        validate_profile(json.loads(json.dumps(good.profile)), json.loads(json.dumps(good.columns)))
        == []
    )


def codes(problems: list[tuple]) -> set[tuple[str | None, str]]:
    return {(field, code) for field, code, _ in problems}


def test_validate_reports_missing_keys(good: DatasetProfile) -> None:
    def change(profile: dict, columns: list) -> None:
        del profile["columns"]["bmi"]["min"]
        del profile["columns"]["site"]["other_rate"]

    assert codes(problems_after(good, change)) == {
        ("profile.columns.bmi.min", "missing_key"),
        ("profile.columns.site.other_rate", "missing_key"),
    }
    assert codes(validate_profile({"columns": good.profile["columns"]})) == {
        ("profile.version", "missing_key")
    }
    assert ("profile.columns", "missing_key") in codes(validate_profile({"version": 1}))


def test_validate_reports_min_greater_than_max(good: DatasetProfile) -> None:
    def change(profile: dict, columns: list) -> None:
        profile["columns"]["age"]["min"] = 99.0

    assert ("profile.columns.age.min", "min_greater_than_max") in codes(
        problems_after(good, change)
    )


def test_validate_reports_quantiles_not_ascending(good: DatasetProfile) -> None:
    def change(profile: dict, columns: list) -> None:
        edges = profile["columns"]["bmi"]["quantiles"]
        edges[3], edges[4] = edges[4], edges[3]

    assert ("profile.columns.bmi.quantiles", "not_ascending") in codes(problems_after(good, change))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("age", "missing_rate"), 1.5),
        (("age", "missing_rate"), -0.1),
        (("smoker", "categories", "true"), 2.0),
        (("site", "categories", "A"), -0.5),
        (("site", "other_rate"), 1.01),
        (("bmi", "bin_frequencies", 0), 7.0),
    ],
)
def test_validate_reports_rates_outside_zero_and_one(
    good: DatasetProfile, path: tuple, value: float
) -> None:
    def change(profile: dict, columns: list) -> None:
        target = profile["columns"]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    found = codes(problems_after(good, change))
    assert (".".join(["profile.columns", *map(str, path)]), "out_of_range") in found


def test_validate_reports_unknown_types(good: DatasetProfile) -> None:
    def change(profile: dict, columns: list) -> None:
        profile["columns"]["site"]["type"] = "text"
        columns[0]["type"] = "float"

    found = codes(problems_after(good, change))
    assert ("profile.columns.site.type", "unknown_type") in found
    assert ("columns.0.type", "unknown_type") in found


def test_validate_reports_columns_and_profile_disagreeing(good: DatasetProfile) -> None:
    def renamed(profile: dict, columns: list) -> None:
        columns[1]["name"] = "weight"

    problems = problems_after(good, renamed)
    assert codes(problems) == {("columns", "columns_mismatch")}
    assert "'weight'" in problems[0][2] and "'bmi'" in problems[0][2]

    def retyped(profile: dict, columns: list) -> None:
        columns[1]["type"] = "category"

    assert codes(problems_after(good, retyped)) == {("profile.columns.bmi.type", "type_mismatch")}

    def duplicated(profile: dict, columns: list) -> None:
        columns.append(dict(columns[0]))

    assert ("columns.4.name", "duplicate_columns") in codes(problems_after(good, duplicated))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda p: p["columns"]["bmi"].update(mean=float("nan")),
            ("profile.columns.bmi.mean", "not_finite"),
        ),
        (lambda p: p["columns"]["bmi"].update(max=True), ("profile.columns.bmi.max", "invalid")),
        (
            lambda p: p["columns"]["bmi"].update(std=-1.0),
            ("profile.columns.bmi.std", "out_of_range"),
        ),
        (
            lambda p: p["columns"]["bmi"].update(p99=1000.0),
            ("profile.columns.bmi.p99", "out_of_range"),
        ),
        (
            lambda p: p["columns"]["bmi"].update(quantiles="1,2"),
            ("profile.columns.bmi.quantiles", "invalid"),
        ),
        (
            lambda p: p["columns"]["bmi"]["bin_frequencies"].pop(),
            ("profile.columns.bmi.bin_frequencies", "length_mismatch"),
        ),
        (
            lambda p: p["columns"]["bmi"]["bin_frequencies"].__setitem__(0, 0.0),
            ("profile.columns.bmi.bin_frequencies", "bad_sum"),
        ),
        (lambda p: p["columns"]["age"].update(count=-1), ("profile.columns.age.count", "invalid")),
        (lambda p: p["columns"]["age"].update(count=2.5), ("profile.columns.age.count", "invalid")),
        (
            lambda p: p["columns"]["age"].update(extra="x"),
            ("profile.columns.age.extra", "unknown_key"),
        ),
        (
            lambda p: p["columns"]["smoker"].update(categories={"yes": 1.0}),
            ("profile.columns.smoker.categories", "invalid"),
        ),
        (
            lambda p: p["columns"]["smoker"]["categories"].update(true=0.9),
            ("profile.columns.smoker.categories", "bad_sum"),
        ),
        (
            lambda p: p["columns"]["site"]["categories"].update(Z=0.3),
            ("profile.columns.site.categories", "bad_sum"),
        ),
        (
            lambda p: p["columns"]["site"].update(distinct=1),
            ("profile.columns.site.categories", "invalid"),
        ),
        (lambda p: p["columns"].update(age=[1, 2]), ("profile.columns.age", "invalid")),
        (
            lambda p: p["columns"].update(age={"count": 1}),
            ("profile.columns.age.type", "missing_key"),
        ),
        (lambda p: p.update(version=2), ("profile.version", "unsupported_version")),
        (lambda p: p.update(rows=[[1, 2]]), ("profile.rows", "unknown_key")),
        (lambda p: p.update(columns=[]), ("profile.columns", "invalid")),
        (lambda p: p.update(columns={}), ("profile.columns", "no_columns")),
    ],
)
def test_validate_reports_other_malformed_profiles(
    good: DatasetProfile, change: Any, expected: tuple
) -> None:
    profile = copy.deepcopy(good.profile)
    change(profile)
    assert expected in codes(validate_profile(profile))


def test_validate_rejects_non_objects() -> None:
    assert codes(validate_profile([])) == {("profile", "invalid")}  # type: ignore[arg-type]
    assert ("columns", "invalid") in codes(validate_profile({"version": 1, "columns": {}}, "x"))  # type: ignore[arg-type]


def test_validate_reports_every_problem_at_once(good: DatasetProfile) -> None:
    def change(profile: dict, columns: list) -> None:
        profile["columns"]["age"]["missing_rate"] = 3
        profile["columns"]["bmi"]["min"] = 1e9
        profile["columns"]["site"]["type"] = "blob"

    fields = {field for field, _, _ in problems_after(good, change)}
    assert {
        "profile.columns.age.missing_rate",
        "profile.columns.bmi.min",
        "profile.columns.site.type",
    } <= fields


def test_it_translates_a_pandas_parser_error_into_ragged_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Safety net should pandas ever count fields differently from the csv module.
    from profiling import profile as profiling

    def parser_error(*args: Any, **kwargs: Any) -> Any:
        raise pd.errors.ParserError(
            "Error tokenizing data. C error: Expected 2 fields in line 9, saw 3\n"
        )

    monkeypatch.setattr(profiling.pd, "read_csv", parser_error)
    error = refusal(write(tmp_path, "a,b\n1,2\n"))
    assert error.code == "ragged_rows"
    assert error.message == "Line 9 has 3 fields but the header has 2."


def test_category_values_seen_in_fewer_than_five_rows_never_leave_the_machine(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setattr(profiling, "MIN_CATEGORY_COUNT", 5)
    rows = ["site,patient"] + [f"north,P{i:04d}" for i in range(6)] + \
        [f"south,P{i:04d}" for i in range(6, 10)]
    column = profile_file(write(tmp_path, "\n".join(rows) + "\n")).profile["columns"]
    assert column["site"]["categories"] == {"north": 0.6}  # south: 4 rows, not listed
    assert column["site"]["other_rate"] == pytest.approx(0.4)
    assert column["patient"]["categories"] == {} and column["patient"]["distinct"] == 10
    assert column["patient"]["other_rate"] == 1.0
    assert validate_profile(profile_file(write(tmp_path, "\n".join(rows) + "\n")).profile) == []
    every = profile_file(write(tmp_path, "\n".join(rows) + "\n"), min_category_count=1)
    assert len(every.profile["columns"]["patient"]["categories"]) == 10
    with pytest.raises(ValueError):
        profile_file(write(tmp_path, "\n".join(rows) + "\n"), min_category_count=0)
