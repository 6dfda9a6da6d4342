"""Fuzzing the predict endpoint: whatever arrives, the answer is never a 5xx.

Three sources of bodies, all sent through Django's test client with a real API
token of a clinician (and, for ``version``, of the owner) against a released
version:

1. schemathesis, generating cases (valid and invalid) from the OpenAPI schema
   drf-spectacular produces, checked against the documented status codes;
2. hypothesis, generating arbitrary JSON documents (nested junk, huge and tiny
   numbers, unicode, wrong types, missing and extra keys) around the shape of
   a predict request, plus raw texts JSON cannot hold (NaN, 1e999, a 400-digit
   integer, deep nesting);
3. fixed regressions for the 500s these found.

Every 4xx must be JSON with a non-empty ``errors`` list.
"""

from __future__ import annotations

import json
import math
import zlib
from urllib.parse import urlsplit

import numpy as np
import pytest
import schemathesis
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference import services
from inference.models import Prediction, RejectionCount
from portal.tokens import api_token_create
from registry.models import ModelVersion

from .helpers import released_version, typical_input

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

# The schema as served at /api/schema/ (which needs a signed-in user), generated in-process.
SCHEMA = schemathesis.openapi.from_dict(
    SchemaGenerator().get_schema(request=None, public=True)).include(
        path_regex=r"/predict/$", method="POST")


@pytest.fixture
def target(personas):
    """A released version and token-authenticated clients for a clinician and the owner."""
    version = released_version(personas)
    clients = {}
    for who in ("clinician", "owner"):
        _row, token = api_token_create(user=personas.get(who), name="fuzz")
        clients[who] = Client(headers={"Authorization": f"Bearer {token}"})
    url = f"/api/v1/models/{personas.model.name}/predict/"
    return version, clients, url


def _post(client: Client, url: str, body, *, raw: bool = False):
    data = body if raw else json.dumps(body, allow_nan=True)
    return client.generic("POST", url, data, content_type="application/json")


def _assert_sane(response, documented=("200", "400", "401", "403", "404", "409")) -> None:
    assert response.status_code < 500, response.content[:500]
    assert str(response.status_code) in documented, response.status_code
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("errors"), list) and body["errors"], body
        for item in body["errors"]:
            assert set(item) == {"field", "code", "message"}, item
    else:
        body = response.json()
        assert "predictions" in body or "id" in body, body


# -- 1. schemathesis, from the OpenAPI schema ----------------------------------------------

@SCHEMA.parametrize()
@FUZZ
def test_schema_generated_cases_never_fail(case, target):
    version, clients, url = target
    model_name = url.split("/")[4]
    names = [f["name"] for f in version.input_schema]
    # Point the path at the real model 3 times in 4; an unknown model must be a 404.
    salt = zlib.crc32(repr((case.path_parameters, case.body)).encode())
    if salt % 4:
        case.path_parameters = {**(case.path_parameters or {}), "model": model_name}
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("inputs"), dict) and salt % 3 == 0:
        # A third of the time, put the generated values under real feature names.
        case.body = {**body, "inputs": {**typical_input(version), **dict(
            zip(names, body["inputs"].values(), strict=False))}}
    who = "owner" if isinstance(case.body, dict) and "version" in case.body and salt % 2 \
        else "clinician"
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = {k.lower(): v for k, v in (kwargs.get("headers") or {}).items()}
    content_type = headers.get("content-type", "application/json")
    if "json" in kwargs:
        data = json.dumps(kwargs["json"], allow_nan=True)
    else:
        data = kwargs.get("data") or b""
    path = urlsplit(kwargs["url"]).path
    response = clients[who].generic(kwargs["method"], path, data, content_type=content_type)
    if kwargs["method"] == "OPTIONS":  # DRF's metadata answer
        assert response.status_code == 200
        return
    documented = tuple(case.operation.definition.raw["responses"])
    # schemathesis also tries other methods (405) and media types the endpoint does not
    # take (415); both must still be structured errors.
    _assert_sane(response, documented=(*documented, "405", "415"))


# -- 2. hypothesis: arbitrary JSON around the request's shape -------------------------------

EXTREMES = st.sampled_from([0, -0.0, 1e308, -1e308, 1e300, 5e-324, 2**53 + 1, 2**63, -(2**63),
                            2**64, 10**308, 10**309, -(10**400), True, False])
SCALARS = (st.none() | st.booleans()
           | st.integers(min_value=-(10**400), max_value=10**400)
           | st.floats(allow_nan=True, allow_infinity=True)
           | EXTREMES
           | st.text(max_size=30)
           | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "12.5", "", " ", "null",
                              "\u202e", "𝕏", "\ud7ff", "0x10"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)
# What goes into a feature's slot: half the time a number at the edge of what floats hold.
FEATURE_VALUE = st.one_of(EXTREMES, st.floats(allow_nan=True, allow_infinity=True), SCALARS,
                          JSON)


@st.composite
def predict_bodies(draw, names: list[str], typical: dict):
    """Mostly almost-right requests, with junk in the places that matter."""
    def one_input():
        row = dict(typical) if draw(st.booleans()) else {}
        for name in draw(st.lists(st.sampled_from(names), max_size=len(names))):
            row[name] = draw(FEATURE_VALUE)
        for name in draw(st.lists(st.sampled_from(names), max_size=2)):
            row.pop(name, None)
        if draw(st.integers(0, 4)) == 0:
            row[draw(st.text(max_size=10))] = draw(JSON)
        return row if draw(st.integers(0, 9)) else draw(JSON)

    kind = draw(st.sampled_from(["inputs", "instances", "both", "neither", "junk"]))
    if kind == "junk":
        return draw(JSON)
    body = {}
    if kind in ("inputs", "both"):
        body["inputs"] = one_input()
    if kind in ("instances", "both"):
        body["instances"] = [one_input() for _ in range(draw(st.integers(0, 3)))] \
            if draw(st.integers(0, 5)) else draw(JSON)
    if draw(st.integers(0, 5)) == 0:
        body["version"] = draw(JSON | st.integers(-3, 3))
    if draw(st.integers(0, 6)) == 0:
        body[draw(st.text(max_size=8))] = draw(JSON)
    return body


def test_arbitrary_json_bodies_never_fail(target):
    version, clients, url = target
    names = [f["name"] for f in version.input_schema]

    @FUZZ
    @given(body=predict_bodies(names, typical_input(version)),
           who=st.sampled_from(["clinician", "clinician", "owner"]))
    def check(body, who):
        _assert_sane(_post(clients[who], url, body))

    check()


RAW_NUMBERS = ["NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 400,
               "-" + "9" * 400, "1e-999", "0.0000000000000000000000001", "1" + "0" * 5000]


@settings(FUZZ, max_examples=40)
@given(number=st.sampled_from(RAW_NUMBERS), where=st.integers(0, 3),
       depth=st.integers(0, 3))
def test_raw_json_texts_that_python_reads_oddly(target, number, where, depth):
    """Literals outside strict JSON and numbers beyond a double, in every slot."""
    version, clients, url = target
    row = typical_input(version)
    name = version.input_schema[where]["name"]
    value = "[" * depth + number + "]" * depth
    fields = ", ".join(f"{json.dumps(k)}: {value if k == name else json.dumps(v)}"
                       for k, v in row.items())
    for text in (f'{{"inputs": {{{fields}}}}}', f'{{"instances": [{{{fields}}}]}}',
                 f'{{"inputs": {{{fields}}}, "version": {value}}}'):
        for who in ("clinician", "owner"):
            _assert_sane(_post(clients[who], url, text, raw=True))


# -- 3. regressions ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,code", [
    ('{"inputs": ' + "[" * 5000 + "]" * 5000 + "}", "parse_error"),  # RecursionError
    ('{"inputs": ' + '{"a": ' * 3000 + "1" + "}" * 3001, "parse_error"),
    ('{"inputs": {"mean radius": ' + "9" * 400 + "}}", "invalid_type"),  # OverflowError
    ('{"inputs": {"mean radius": 1e999}}', "invalid_type"),
    ('{"inputs": {"mean radius": NaN}}', "parse_error"),
])
def test_inputs_python_cannot_handle_are_400s(target, text, code):
    _version, clients, url = target
    response = _post(clients["clinician"], url, text, raw=True)
    assert response.status_code == 400, response.content[:300]
    assert code in {e["code"] for e in response.json()["errors"]}
    assert not Prediction.objects.exists()


@pytest.mark.parametrize("number", ["1e999", "-1e999", "9" * 400])
def test_an_owner_naming_an_impossible_version_gets_a_400(target, number):
    _version, clients, url = target
    response = _post(clients["owner"], url, f'{{"inputs": {{}}, "version": {number}}}', raw=True)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["errors"][0]["code"] == "unknown_version"


class _Exploding:
    """A loaded model that cannot score what it was given, as sklearn does for 1e308."""

    runtime = "sklearn"

    def __init__(self, result=None) -> None:
        self.result = result

    def predict_proba(self, rows):
        if self.result is None:
            raise ValueError("Input X contains infinity or a value too large for "
                             "dtype('float64').")
        return np.array([self.result(i) for i in range(len(rows))], dtype=float)


@pytest.mark.parametrize("model,many,fields", [
    (_Exploding(), False, ["inputs"]),
    (_Exploding(), True, ["instances"]),
    (_Exploding(lambda i: [math.nan, math.nan] if i == 1 else [0.3, 0.7]), True,
     ["instances.1"]),
    (_Exploding(lambda i: [math.nan, 1.0]), False, ["inputs"]),
])
def test_a_model_that_cannot_score_an_input_is_a_counted_400(target, monkeypatch, model, many,
                                                             fields):
    version, clients, url = target
    monkeypatch.setattr(services, "version_model_load",
                        lambda *, version, purpose="single": model)
    row = typical_input(version)
    body = {"instances": [row, row]} if many else {"inputs": row}
    response = _post(clients["clinician"], url, body)
    assert response.status_code == 400, response.content[:300]
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == fields and {e["code"] for e in errors} == {"unscorable"}
    assert not Prediction.objects.exists()
    assert RejectionCount.objects.get(code="unscorable").version_id == version.pk
    assert ModelVersion.objects.filter(pk=version.pk).exists()
