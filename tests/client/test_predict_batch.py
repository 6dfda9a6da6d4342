"""`attest predict MODEL FILE.csv`: a batch job against a live server, followed to its end,
its files downloaded; some rows failing (exit 8), and pass-through columns (--passthrough).

Jobs run eagerly in-process (conftest's ``_eager``), as the server's own batch tests run them.
"""

from __future__ import annotations

import csv
import hashlib

import pytest
from attest_client import errors

from inference.models import BatchJob, BatchStatus, Prediction

from ..artifacts import FEATURES_SMALL, breast_cancer_frame
from ..inference.helpers import released_version

MODEL = "sepsis-risk"
BAD_ROWS = {3: ("mean radius", "invalid_type"), 17: ("mean texture", "required")}


@pytest.fixture
def version(personas):
    return released_version(personas)


@pytest.fixture
def clinician(logged_in, version):
    logged_in("clinician")
    return "clinician"


def _write(path, n: int = 30, *, bad: dict = BAD_ROWS, ids: bool = False, site: bool = False):
    frame = breast_cancer_frame()[FEATURES_SMALL].iloc[:n].copy().astype(object)
    for i, (column, code) in bad.items():
        frame.loc[i, column] = "large" if code == "invalid_type" else None
    if site:
        frame.insert(0, "site", ["north" if i % 2 else "south" for i in range(n)])
    if ids:
        frame.insert(0, "record_id", [f"R{i:04d}" for i in range(n)])
    frame.to_csv(path, index=False)
    return path


def _rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- some rows fail -------------------------------------------------------------------------

def test_some_rows_failing_downloads_both_files_and_exits_8(attest, clinician, tmp_path):
    out = tmp_path / "out"
    source = _write(tmp_path / "batch.csv")
    result = attest("predict", MODEL, str(source), "-d", str(out), "--json", as_user=clinician)

    assert result.status == errors.EXIT_PARTIAL == 8, result.err
    job = result.json
    assert (job["status"], job["predictions"], job["rows_failed"]) == ("completed", 28, 2)
    stored = BatchJob.objects.get(public_id=job["id"])
    assert stored.status == BatchStatus.COMPLETED and stored.rows_failed == 2
    assert Prediction.objects.filter(batch=stored).count() == 28
    # Both files downloaded, named after the input, exactly as the server wrote them.
    assert job["files"] == {"results": str(out / "batch-results.csv"),
                            "errors": str(out / "batch-errors.csv")}
    assert _sha256(out / "batch-results.csv") == stored.result_sha256
    assert _sha256(out / "batch-errors.csv") == stored.error_sha256
    results = _rows(out / "batch-results.csv")
    assert sorted(int(r["row_index"]) for r in results) == sorted(set(range(30)) - set(BAD_ROWS))
    failed = _rows(out / "batch-errors.csv")
    assert {int(r["row_index"]): (r["field"], r["code"]) for r in failed} == BAD_ROWS

    # For people: the counts, why rows failed and where the files are; the same status.
    text = attest("predict", MODEL, str(source), "-d", str(out), "--force", as_user=clinician)
    assert text.status == errors.EXIT_PARTIAL
    assert "completed; 28 predictions, 2 rows failed" in text.out
    assert "why rows failed: " in text.out
    assert "invalid_type on mean radius (1 row)" in text.out
    assert "required on mean texture (1 row)" in text.out
    assert f"results: {out / 'batch-results.csv'}" in text.out
    assert f"errors: {out / 'batch-errors.csv'}" in text.out
    # Following the job later says the same.
    status = attest("batch", "status", job["id"], as_user=clinician)
    assert status.status == errors.EXIT_PARTIAL and "2 failed" in status.out


def test_every_row_scored_is_0_and_every_row_failed_is_1(attest, clinician, tmp_path):
    clean = attest("predict", MODEL, str(_write(tmp_path / "clean.csv", bad={})), "-d",
                   str(tmp_path), "--json", as_user=clinician)
    assert clean.status == errors.EXIT_OK, clean.err
    assert clean.json["rows_failed"] == 0 and clean.json["predictions"] == 30

    bad = dict.fromkeys(range(5), ("mean radius", "invalid_type"))
    failed = attest("predict", MODEL, str(_write(tmp_path / "bad.csv", 5, bad=bad)), "-d",
                    str(tmp_path), "--json", as_user=clinician)
    assert failed.status == errors.EXIT_CHECK_FAILED
    assert failed.json["status"] == "failed" and failed.json["rows_failed"] == 5
    assert "errors" in failed.json["files"]


def test_help_documents_the_partial_failure_status(capsys):
    from attest_client import cli

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "    8  a batch job completed but some rows failed" in capsys.readouterr().out


# -- pass-through columns ---------------------------------------------------------------------

def test_a_passthrough_column_reaches_the_result_and_error_files(attest, clinician, tmp_path):
    source = _write(tmp_path / "batch.csv", ids=True)
    result = attest("predict", MODEL, str(source), "--passthrough", "record_id", "-d",
                    str(tmp_path / "out"), "--json", as_user=clinician)
    assert result.status == errors.EXIT_PARTIAL, result.err
    assert result.json["passthrough_columns"] == ["record_id"]
    assert BatchJob.objects.get(public_id=result.json["id"]).passthrough_columns == ["record_id"]
    results = _rows(result.json["files"]["results"])
    assert list(results[0])[:2] == ["record_id", "row_index"] and len(results) == 28
    for row in results:
        assert row["record_id"] == f"R{int(row['row_index']):04d}"
    failed = _rows(result.json["files"]["errors"])
    assert [(r["record_id"], r["code"]) for r in failed] == [("R0003", "invalid_type"),
                                                             ("R0017", "required")]
    # Copied to the files, never into the prediction log.
    assert not any("R00" in str(p.input) for p in Prediction.objects.all())


@pytest.mark.parametrize("options", [["--passthrough", "record_id", "--passthrough", "site"],
                                     ["--passthrough", "record_id, site"]],
                         ids=["repeated", "comma-separated"])
def test_several_passthrough_columns(attest, clinician, tmp_path, options):
    source = _write(tmp_path / "batch.csv", bad={}, ids=True, site=True)
    result = attest("predict", MODEL, str(source), *options, "-d", str(tmp_path), "--json",
                    as_user=clinician)
    assert result.status == errors.EXIT_OK, result.err
    assert result.json["passthrough_columns"] == ["record_id", "site"]
    first = _rows(result.json["files"]["results"])[0]
    assert list(first)[:3] == ["record_id", "site", "row_index"]
    assert (first["record_id"], first["site"]) == ("R0000", "south")


def test_bad_passthrough_names_are_the_servers_refusal_on_one_line(attest, clinician, tmp_path):
    source = _write(tmp_path / "batch.csv", ids=True)
    result = attest("predict", MODEL, str(source), "--passthrough", "record_id,nope",
                    "--passthrough", "mean radius", "-d", str(tmp_path), as_user=clinician)
    assert result.status == errors.EXIT_REFUSED
    line = result.error_line()
    assert result.err.strip() == line  # one line, nothing else on stderr
    assert "Pass-through column 'nope' is not a column of the file." in line
    assert "Column 'mean radius' is an input of this model" in line
    assert not BatchJob.objects.exists()
    assert not (tmp_path / "batch-results.csv").exists()


def test_an_extra_column_not_passed_through_names_the_option(attest, clinician, tmp_path):
    source = _write(tmp_path / "batch.csv", ids=True)
    result = attest("predict", MODEL, str(source), "-d", str(tmp_path), as_user=clinician)
    assert result.status == errors.EXIT_REFUSED
    line = result.error_line()
    assert "Column 'record_id' is not an input of this model" in line
    assert line.endswith("(to copy it with attest: --passthrough record_id)")
    assert not BatchJob.objects.exists()


def test_passthrough_needs_a_batch_file(attest, clinician):
    result = attest("predict", MODEL, "--data", "{}", "--passthrough", "record_id",
                    as_user=clinician)
    assert result.status == errors.EXIT_USAGE
    assert "--passthrough is for batch files" in result.error_line()


# -- --explain --------------------------------------------------------------------------------

def test_explain_adds_contribution_columns_to_a_batch(attest, clinician, tmp_path):
    out = tmp_path / "out"
    source = _write(tmp_path / "batch.csv", n=12, bad={})
    result = attest("predict", MODEL, str(source), "-d", str(out), "--explain", "shap",
                    "--json", as_user=clinician)
    assert result.status == errors.EXIT_OK, result.err
    job = result.json
    assert job["explain"] == "shap" and job["explanation"]["rows_explained"] == 12
    rows = _rows(out / "batch-results.csv")
    features = [c[len("shap_"):] for c in rows[0] if c.startswith("shap_")
                and c not in ("shap_base_value", "shap_output", "shap_units")]
    assert sorted(features) == sorted(FEATURES_SMALL)
    for row in rows:  # base value + contributions = the model's output, row by row
        total = float(row["shap_base_value"]) + sum(float(row[f"shap_{f}"]) for f in features)
        assert total == pytest.approx(float(row["shap_output"]), abs=1e-6)
    text = attest("predict", MODEL, str(source), "-d", str(out), "--force", "--explain", "shap",
                  as_user=clinician)
    assert text.status == 0 and "explained: 12 rows by the" in text.out


def test_explain_on_one_input_answers_with_its_explanation(attest, clinician, version):
    import json

    from ..inference.helpers import typical_input

    row = json.dumps(typical_input(version))
    result = attest("predict", MODEL, "--data", row, "--explain", "shap", "--json",
                    as_user=clinician)
    assert result.status == 0, result.err
    explanation = result.json["explanation"]
    # The test version is a scaled logistic regression: LinearSHAP answers inline.
    assert explanation["method"] == "shap" and explanation["model_version"] == version.number
    text = attest("predict", MODEL, "--data", row, "--explain", "shap", as_user=clinician)
    assert text.status == 0 and f"explanation: shap in {explanation['units']}" in text.out
