"""The prediction fast lane (portal/serving.py) answers as Django + DRF do.

Every request here is sent twice, through ``PredictLane`` (as gunicorn calls it) and
through Django alone, and the two answers are compared: status, JSON body (minus the
per-prediction id, time and latency) and headers (minus the request id).
"""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections

from audits.models import Action, AuditEvent
from inference.models import Prediction, RejectionCount
from portal import serving
from portal.serving import PredictLane
from portal.tokens import api_token_create, api_token_revoke

from ..inference.helpers import released_version, typical_input

pytestmark = pytest.mark.django_db

VARYING = {"id", "created_at", "latency_ms", "review_id"}


def _environ(path: str, body: bytes, *, token: str | None, content_type="application/json",
             host="testserver", method="POST", query="", **extra) -> dict:
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3", "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }
    if host is not None:
        environ["HTTP_HOST"] = host
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    environ.update(extra)
    return environ


class Answer:
    def __init__(self, status: str, headers: list[tuple[str, str]], content: bytes) -> None:
        self.code = int(status.split()[0])
        self.status = status
        self.headers = dict(headers)
        self.content = content

    def json(self):
        return json.loads(self.content)

    def comparable(self):
        body = self.json() if self.headers.get("Content-Type") == "application/json" else None
        if isinstance(body, dict):
            for item in [body, *body.get("predictions", [])]:
                for key in VARYING & set(item):
                    item[key] = "*"
        headers = {k: v for k, v in self.headers.items()
                   if k not in ("X-Request-ID", "Content-Length")}
        return self.status, body, headers


def _call(app, environ) -> Answer:
    """One WSGI call. As Django's test client does, the request signals do not close the
    database connection (it holds the test's transaction)."""
    seen = []
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        chunks = app(environ,
                     lambda status, headers, exc_info=None: seen.append((status, headers)))
        try:
            content = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return Answer(*seen[0], content)


def _refuse(environ, start_response):
    raise AssertionError(f"the lane handed {environ['PATH_INFO']} to Django")


@pytest.fixture
def django_app():
    return get_wsgi_application()


@pytest.fixture
def served(personas):
    version = released_version(personas, confidence_threshold=0.5)
    tokens = {who: api_token_create(user=personas.get(who), name="t")[1]
              for who in ("clinician", "owner", "auditor", "outsider")}
    return version, tokens


def _both(django_app, path, body, **kwargs) -> tuple[Answer, Answer]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    lane = _call(PredictLane(django_app), _environ(path, raw, **kwargs))
    plain = _call(django_app, _environ(path, raw, **kwargs))
    return lane, plain


def _path(personas, name=None):
    return f"/api/v1/models/{name or personas.model.name}/predict/"


def test_the_lane_answers_a_prediction_itself_as_django_would(personas, served, django_app):
    version, tokens = served
    body = json.dumps({"inputs": typical_input(version)}).encode()
    lane = _call(PredictLane(_refuse), _environ(_path(personas), body, token=tokens["clinician"]))
    plain = _call(django_app, _environ(_path(personas), body, token=tokens["clinician"]))
    assert lane.code == 200, lane.content
    assert lane.comparable() == plain.comparable()
    assert lane.headers["Content-Length"] == str(len(lane.content))
    assert len(lane.headers["X-Request-ID"]) == 32
    logged = Prediction.objects.get(public_id=lane.json()["id"])
    assert logged.requester == personas.clinician and logged.input_sha256 == \
        lane.json()["input_sha256"]
    assert Prediction.objects.count() == 2  # one log row per answer, whichever path


@pytest.mark.parametrize("case", [
    "many", "invalid", "unknown_key", "not_object", "no_permission", "invisible_model",
    "unknown_model", "owner_version", "owner_bad_version", "ood_reject", "escaped_text",
    "astral_text",
])
def test_answers_and_refusals_from_the_services_match(personas, served, django_app, case):
    version, tokens = served
    row = typical_input(version)
    who, name, body = "clinician", None, {"inputs": row}
    if case == "many":
        body = {"instances": [row, {**row, "mean radius": row["mean radius"] + 1}]}
    elif case == "invalid":
        body = {"inputs": {**row, "mean radius": "large", "colour": "red"}}
    elif case == "unknown_key":
        body = {"inputs": row, "extra": 1}
    elif case == "not_object":
        body = [row]
    elif case == "no_permission":
        who = "auditor"  # sees the model, may not predict
    elif case == "invisible_model":
        who = "outsider"
    elif case == "unknown_model":
        name = "no-such-model"
    elif case == "owner_version":
        who, body = "owner", {"inputs": row, "version": version.number}
    elif case == "owner_bad_version":
        who, body = "owner", {"inputs": row, "version": 99}
    elif case == "escaped_text":  # a backslash and a u, escaped: storable, walked
        body = {"inputs": {**row, "mean radius": "\\u0000"}}
    elif case == "astral_text":  # a surrogate pair is one character: storable
        body = {"inputs": {**row, "mean radius": "\U0001F600"}}
    elif case == "ood_reject":
        version.ood_policy = "reject"
        version.save(update_fields=["ood_policy"])
        body = {"inputs": {**row, "mean radius": 500.0}}
    lane, plain = _both(django_app, _path(personas, name), body, token=tokens[who])
    assert lane.comparable() == plain.comparable(), (lane.content, plain.content)
    assert lane.code == {"many": 200, "owner_version": 200, "no_permission": 403,
                         "invisible_model": 404, "unknown_model": 404}.get(case, 400)


def test_a_refusal_is_counted_once(personas, served, django_app):
    version, tokens = served
    body = json.dumps({"inputs": {**typical_input(version), "mean radius": "large"}}).encode()
    answer = _call(PredictLane(_refuse), _environ(_path(personas), body,
                                                  token=tokens["clinician"]))
    assert answer.code == 400 and answer.json()["errors"][0]["code"] == "invalid_type"
    assert RejectionCount.objects.get(code="invalid_type").count == 1


@pytest.mark.parametrize("case", [
    "bad_token", "revoked_token", "no_token", "not_json", "nan", "nul_text", "nul_key",
    "lone_surrogate", "raw_surrogate", "wrong_type", "accept_html", "accept_indent", "bad_host", "query", "get", "charset_latin1",
    "too_large",
])
def test_everything_else_is_answered_by_django(personas, served, django_app, settings, case):
    version, tokens = served
    body = json.dumps({"inputs": typical_input(version)}).encode()
    kwargs = {"token": tokens["clinician"]}
    if case == "bad_token":
        kwargs["token"] = tokens["clinician"][:-2] + "xx"
    elif case == "revoked_token":
        token, secret = api_token_create(user=personas.clinician, name="gone")
        api_token_revoke(user=personas.clinician, token_id=token.pk)
        kwargs["token"] = secret
    elif case == "no_token":
        kwargs["token"] = None
    elif case == "not_json":
        body = b'{"inputs": '
    elif case == "nan":
        body = body.replace(b"}}", b', "x": NaN}}')
    elif case == "nul_text":
        body = json.dumps({"inputs": {**typical_input(version), "mean radius": "a\x00"}}).encode()
    elif case == "nul_key":
        body = json.dumps({"inputs": {**typical_input(version), "a\x00": 1}}).encode()
    elif case == "lone_surrogate":
        body = json.dumps({"inputs": {**typical_input(version), "mean radius": "\ud800"}}).encode()
    elif case == "raw_surrogate":  # what json.loads(bytes) would decode with surrogatepass
        body = body.replace(b"}}", b', "x": "\xed\xa0\x80"}}')
    elif case == "wrong_type":
        kwargs["content_type"] = "text/plain"
    elif case == "accept_html":
        kwargs["HTTP_ACCEPT"] = "text/html"
    elif case == "accept_indent":
        kwargs["HTTP_ACCEPT"] = "application/json; indent=2"
    elif case == "bad_host":
        kwargs["host"] = "evil.example"
    elif case == "query":
        kwargs["query"] = "format=json"
    elif case == "get":
        kwargs["method"] = "GET"
    elif case == "charset_latin1":
        kwargs["content_type"] = "application/json; charset=latin-1"
    elif case == "too_large":
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body) - 1
    handed = []

    def recording_django(environ, start_response):
        handed.append(environ["wsgi.input"].read())
        environ["wsgi.input"] = io.BytesIO(handed[-1])
        return django_app(environ, start_response)

    raw_env = _environ(_path(personas), body, **kwargs)
    lane = _call(PredictLane(recording_django), raw_env)
    plain = _call(django_app, _environ(_path(personas), body, **kwargs))
    assert handed == [body], "Django must get the request, body included"
    assert lane.comparable() == plain.comparable()
    answered = case in ("query", "accept_indent", "charset_latin1")  # Django scores these
    assert (lane.code == 200) == answered
    assert Prediction.objects.filter(requester=personas.clinician).count() == (2 if answered else 0)


def test_the_first_use_of_a_token_is_recorded_once_with_the_request(personas, served,
                                                                    django_app):
    version, _ = served
    _, secret = api_token_create(user=personas.clinician, name="fresh")
    body = json.dumps({"inputs": typical_input(version)}).encode()
    for _ in range(2):
        assert _call(PredictLane(_refuse), _environ(_path(personas), body, token=secret)).code \
            == 200
    first = AuditEvent.objects.filter(action=Action.TOKEN_FIRST_USE, object_repr__contains="fresh")
    assert first.count() == 1
    assert first.get().remote_addr == "10.1.2.3"


def test_https_headers_and_redirects_follow_the_settings(personas, served, settings):
    version, tokens = served
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    django_app = get_wsgi_application()  # middleware reads these settings when built
    body = {"inputs": typical_input(version)}
    lane, plain = _both(django_app, _path(personas), body, token=tokens["clinician"],
                        HTTP_X_FORWARDED_PROTO="https")
    assert lane.code == 200 and lane.comparable() == plain.comparable()
    assert lane.headers["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"
    lane, plain = _both(django_app, _path(personas), body, token=tokens["clinician"])
    assert lane.code == 301 and lane.comparable() == plain.comparable()


def test_an_unexpected_failure_is_a_json_500_and_the_connection_signals_fire(
        personas, served, django_app, monkeypatch):
    version, tokens = served
    fired = []

    def boom(**kwargs):
        raise RuntimeError("bug")

    def started(**kwargs):
        fired.append("started")

    def finished(**kwargs):
        fired.append("finished")

    monkeypatch.setattr(serving, "predict_answer", boom)
    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        answer = _call(PredictLane(_refuse), _environ(
            _path(personas), json.dumps({"inputs": typical_input(version)}).encode(),
            token=tokens["clinician"]))
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert answer.code == 500
    assert answer.json()["errors"][0]["code"] == "server_error"
    assert fired == ["started", "finished"]


def test_the_deployed_application_uses_the_lane_unless_turned_off():
    from portal import wsgi

    assert isinstance(wsgi.application.app, PredictLane)  # inside portal.environ's filter


def test_arbitrary_bodies_get_the_same_answer_both_ways(personas, served, django_app):
    """The fuzzer's bodies (tests/inference/test_fuzz.py), each sent both ways."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ..inference.test_fuzz import FUZZ, RAW_NUMBERS, predict_bodies

    version, tokens = served
    names = [f["name"] for f in version.input_schema]
    row = typical_input(version)

    def same(raw: bytes, who: str) -> None:
        lane, plain = _both(django_app, _path(personas), raw, token=tokens[who])
        assert lane.comparable() == plain.comparable(), (raw[:300], lane.content[:300])

    @settings(FUZZ, max_examples=80)
    @given(body=predict_bodies(names, row), who=st.sampled_from(["clinician", "owner"]))
    def check(body, who):
        same(json.dumps(body, allow_nan=True).encode(), who)

    check()
    for number in RAW_NUMBERS:
        fields = ", ".join(f"{json.dumps(k)}: {number if k == names[0] else json.dumps(v)}"
                           for k, v in row.items())
        same(f'{{"inputs": {{{fields}}}}}'.encode(), "clinician")
