"""The reproducibility check at registration: the owner's reference scores re-scored here."""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pandas as pd
import pytest

from audits.models import Action, AuditEvent
from registry.models import ModelVersion
from registry.reproducibility import TOLERANCE

from ..artifacts import FEATURES_SMALL, breast_cancer_frame, logistic_model, skops_bytes
from ..conftest import api_as
from ..pages import text, version_url
from .helpers import multipart_version, register_version

pytestmark = pytest.mark.django_db


def _claim(rows: list[dict], *, shift: float = 0.0, packages: dict | None = None) -> dict:
    """What the client sends: the rows, their scores in "the owner's environment", and it."""
    probabilities = logistic_model().predict_proba(pd.DataFrame(rows)[FEATURES_SMALL])
    probabilities = np.clip(probabilities + shift, 0, 1)
    return {"reference_rows": rows, "probabilities": probabilities.tolist(),
            "environment": {"python": "3.12.0", "platform": "laptop",
                            "packages": packages or {
                                "numpy": importlib.metadata.version("numpy"),
                                "scikit-learn": importlib.metadata.version("scikit-learn")}}}


def _rows(n: int = 5) -> list[dict]:
    frame = breast_cancer_frame()[FEATURES_SMALL]
    return [{k: float(v) for k, v in row.items()} for row in frame.iloc[:n].to_dict("records")]


def test_equal_scores_are_recorded_as_reproduced(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset,
                               reproducibility=_claim(_rows()))
    r = version.reproducibility
    assert r["status"] == "reproduced" and r["rows"] == 5
    assert r["max_abs_diff"] <= TOLERANCE and r["differing_rows"] == []
    assert r["server_environment"]["packages"]["numpy"] == importlib.metadata.version("numpy")
    assert {d["package"] for d in r["environment_differences"]} <= {"python"}
    event = AuditEvent.objects.get(action=Action.VERSION_REGISTERED, version_id=version.pk)
    assert event.details["reproducibility"]["status"] == "reproduced"
    assert "reference_rows" not in event.details["reproducibility"]  # rows stay on the version


def test_different_scores_are_evidence_not_a_refusal(personas, dataset, client_as):
    version = register_version(personas.owner, personas.model, dataset,
                               reproducibility=_claim(_rows(), shift=0.01,
                                                      packages={"numpy": "1.0.0"}))
    r = version.reproducibility
    assert r["status"] == "differs"
    assert r["max_abs_diff"] == pytest.approx(0.01, abs=1e-9)
    assert r["differing_rows"] == [0, 1, 2, 3, 4]
    assert {"package": "numpy", "owner": "1.0.0",
            "server": importlib.metadata.version("numpy")} in r["environment_differences"]
    page = text(client_as("pi").get(version_url(number=version.number)))
    assert "Scores differ." in page and "numpy 1.0.0 (owner)" in page


def test_the_record_is_part_of_the_content_hash(personas, dataset):
    data = skops_bytes(logistic_model())
    first = register_version(personas.owner, personas.model, dataset, data=data,
                             reproducibility=_claim(_rows()))
    second = register_version(personas.owner, personas.model, dataset, data=data,
                              reproducibility=_claim(_rows(), shift=0.01))
    plain = register_version(personas.owner, personas.model, dataset, data=data)
    assert first.artifact_sha256 == second.artifact_sha256 == plain.artifact_sha256
    assert len({first.content_hash, second.content_hash, plain.content_hash}) == 3
    assert plain.reproducibility == {}


def test_the_api_shows_it_and_refuses_to_edit_it(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset,
                               reproducibility=_claim(_rows(3)))
    url = f"/api/v1/models/{personas.model.name}/versions/{version.number}/"
    body = api_as(personas.auditor).get(url).json()
    assert body["reproducibility"]["status"] == "reproduced"
    assert len(body["reproducibility"]["server_probabilities"]) == 3
    response = api_as(personas.owner).patch(url, {"reproducibility": {}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "not_editable"


def _post(personas, metadata: dict):
    return api_as(personas.owner).post(
        f"/api/v1/models/{personas.model.name}/versions/",
        multipart_version(skops_bytes(logistic_model()), metadata), format="multipart")


def test_rows_for_another_schema_are_refused(personas, dataset):
    claim = _claim(_rows(2))
    del claim["reference_rows"][1]["mean radius"]
    response = _post(personas, {"dataset": dataset.pk, "input_schema": FEATURES_SMALL,
                                "reproducibility": claim})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["code"] == "schema_mismatch" and "missing: mean radius" in error["message"]
    assert error["field"] == "metadata.reproducibility.reference_rows.1"
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("claim, field", [
    ("rows", "metadata.reproducibility"),
    ({"reference_rows": [], "probabilities": [], "environment": {}},
     "metadata.reproducibility.reference_rows"),
    ({"reference_rows": [{"a": 1}], "probabilities": [[2.0]], "environment": {}},
     "metadata.reproducibility.probabilities"),
    ({"reference_rows": [{"a": 1}], "probabilities": [[1.0], [0.0]], "environment": {}},
     "metadata.reproducibility.probabilities"),
    ({"reference_rows": [{"a": 1}], "probabilities": [[1.0]],
      "environment": {"packages": {"numpy": 2}}}, "metadata.reproducibility.environment"),
    ({"reference_rows": [{"a": 1}], "probabilities": [[1.0]], "extra": 1},
     "metadata.reproducibility"),
])
def test_malformed_records_are_a_400_naming_the_field(personas, dataset, claim, field):
    response = _post(personas, {"dataset": dataset.pk, "reproducibility": claim})
    assert response.status_code == 400, response.json()
    assert field in [e["field"] for e in response.json()["errors"]]


def test_a_version_without_a_record_says_so_on_its_page(personas, version, client_as):
    page = text(client_as("owner").get(version_url()))
    assert "No reproducibility record" in page
    assert json.loads(json.dumps(version.reproducibility)) == {}
