"""What one prediction costs the database, counted (as NetBox's query-count baselines do).

The prediction endpoint is the hottest path of the product: every statement it adds is
paid on each request. These tests pin the statements of a warm prediction (token,
authorization, the serving versions, the chain head's lock and move, the log row; a review item when routed) so that a
change which adds one fails here and has to say why. Transaction control (BEGIN,
SAVEPOINT, COMMIT) is left out: it differs between the databases and test modes.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from portal.tokens import api_token_create

from .helpers import released_version, typical_input

pytestmark = pytest.mark.django_db

CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO)",
                     re.I)
# token + its user + whether the user is a global auditor; the user's grants on the model, with the
# model; the production and shadow versions' ids and states; the model's chain head,
# locked before the log row gets its id; the log row; the head moved past it
WARM_AUTO = ("portal_apitoken", "registry_modelaccessgrant",
             "registry_modelversion", "\"inference_predictionchainhead\"",
             "INSERT INTO \"inference_prediction\"", "UPDATE \"inference_predictionchainhead\"")


def _statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if not CONTROL.match(q["sql"])]


def _client(personas) -> APIClient:
    _row, secret = api_token_create(user=personas.clinician, name="count")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _post(client, personas, row):
    return client.post(f"/api/v1/models/{personas.model.name}/predict/", {"inputs": row},
                       format="json")


def _matches(statements: list[str], expected: tuple[str, ...]) -> bool:
    return len(statements) == len(expected) and all(
        part in sql for sql, part in zip(statements, expected, strict=True))


def test_a_warm_prediction_costs_six_statements(personas):
    version = released_version(personas, confidence_threshold=0.5)
    client, row = _client(personas), typical_input(version)
    assert _post(client, personas, row).status_code == 200  # first use of the token; caches
    with CaptureQueriesContext(connection) as captured:
        response = _post(client, personas, row)
    assert response.status_code == 200 and response.json()["routing"] == "auto"
    statements = _statements(captured)
    assert _matches(statements, WARM_AUTO), "\n".join(s[:120] for s in statements)


def test_a_prediction_routed_to_review_adds_only_its_review_item(personas):
    version = released_version(personas, confidence_threshold=1.0)  # every answer to review
    client, row = _client(personas), typical_input(version)
    assert _post(client, personas, row).status_code == 200
    with CaptureQueriesContext(connection) as captured:
        response = _post(client, personas, row)
    assert response.status_code == 200 and response.json()["routing"] == "review"
    statements = _statements(captured)
    expected = (*WARM_AUTO, "INSERT INTO \"inference_reviewitem\"")
    assert _matches(statements, expected), "\n".join(s[:120] for s in statements)
