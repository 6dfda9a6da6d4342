"""No code runs from an upload (issue 15, part 1).

Every payload here is *live*: a control test loads it with skops, trusting its
types the way the old build let an uploader do, and watches it write a marker
file. Then the same bytes go through the API and must be refused, with the
marker still absent and nothing stored.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import time
import zipfile

import pytest
import skops.io as sio
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings

from audits.models import Action, AuditEvent
from core.errors import PermissionDenied, ValidationFailed
from registry.loading import artifact_model_load
from registry.models import ModelVersion, TrustedType
from registry.sandbox import sandbox_run
from registry.trust import DEFAULT_TRUSTED_TYPES, forbidden_reason, trusted_type_add

from ..artifacts import FEATURES_SMALL, logistic_model, skops_bytes, tree_model_bytes
from ..conftest import api_as
from .helpers import multipart_version, register_dataset, register_version

pytestmark = pytest.mark.django_db

TREE = "sklearn.tree._tree.Tree"


def reduce_payload(func: str, *args) -> bytes:
    """A skops file whose root is ``func(*args)`` (a ConstructorFromReduceNode), the way a
    hostile uploader writes one by hand."""
    module, name = func.rsplit(".", 1)
    inner = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps(tuple(args)))).read("schema.json"))
    protocol, version = inner.pop("protocol"), inner.pop("_skops_version")
    schema = {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
              "content": inner, "__id__": 1, "protocol": protocol, "_skops_version": version}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _payloads(tmp_path) -> dict[str, tuple[bytes, object]]:
    """name -> (skops bytes, marker path the payload creates when it runs)."""
    pickled = tmp_path / "payload.pkl"
    pickled.write_bytes(pickle.dumps(_Marker(tmp_path / "read_pickle.ran")))
    write = "open({!r}, 'w').write('ran')"
    marks = {n: tmp_path / f"{n.rsplit('.', 1)[1]}.ran" for n in (
        "pydoc.pipepager", "numpy.testing._private.utils.runstring", "cProfile.run",
        "pandas.read_pickle")}
    return {
        "pydoc.pipepager": (reduce_payload("pydoc.pipepager", "x",
                                           f"touch {marks['pydoc.pipepager']}"),
                            marks["pydoc.pipepager"]),
        "numpy.testing._private.utils.runstring": (
            reduce_payload("numpy.testing._private.utils.runstring",
                           write.format(str(marks["numpy.testing._private.utils.runstring"])), {}),
            marks["numpy.testing._private.utils.runstring"]),
        "cProfile.run": (reduce_payload("cProfile.run",
                                        write.format(str(marks["cProfile.run"]))),
                         marks["cProfile.run"]),
        "pandas.read_pickle": (reduce_payload("pandas.read_pickle", str(pickled)),
                               tmp_path / "read_pickle.ran"),
    }


@pytest.fixture
def dataset(personas):
    return register_dataset(personas.owner)


def _post(personas, data: bytes, metadata: dict, user=None):
    return api_as(user or personas.owner).post(
        f"/api/v1/models/{personas.model.name}/versions/",
        multipart_version(data, metadata), format="multipart")


PAYLOADS = ["pydoc.pipepager", "numpy.testing._private.utils.runstring", "cProfile.run",
            "pandas.read_pickle"]


@pytest.mark.parametrize("name", PAYLOADS)
def test_the_payload_is_live_when_its_types_are_trusted(name, tmp_path, capsys):
    """Control: skops itself runs the payload once its type is trusted, so the refusal
    below is what stops it, not a broken file."""
    data, marker = _payloads(tmp_path)[name]
    assert sio.get_untrusted_types(data=data) == [name]
    sio.loads(data, trusted=[name])
    assert marker.exists()


@pytest.mark.parametrize("name", PAYLOADS)
def test_a_code_running_upload_is_refused_whatever_the_uploader_trusts(name, personas, dataset,
                                                                       tmp_path):
    data, marker = _payloads(tmp_path)[name]
    response = _post(personas, data, {"dataset": dataset.pk, "input_schema": FEATURES_SMALL,
                                      "trusted_types": [name]})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["errors"][0]["code"] == "forbidden_types"
    assert body["errors"][0]["field"] == "artifact"
    assert body["untrusted_types"] == [name]
    assert not marker.exists()
    assert not ModelVersion.objects.exists()
    assert not AuditEvent.objects.filter(action=Action.VERSION_REGISTERED).exists()


@pytest.mark.parametrize("name", PAYLOADS)
def test_not_even_an_administrator_can_trust_a_code_running_name(name, personas):
    assert forbidden_reason(name)
    with pytest.raises(ValidationFailed) as caught:
        trusted_type_add(user=personas.admin, name=name, reason="please")
    assert caught.value.items[0].code == "forbidden_type"
    assert not TrustedType.objects.filter(name=name).exists()


def test_an_off_list_type_is_refused_with_its_name_and_how_to_ask(personas, dataset, tmp_path):
    data = reduce_payload("statistics.fmean", [1.0, 2.0])
    assert forbidden_reason("statistics.fmean") is None
    response = _post(personas, data, {"dataset": dataset.pk, "input_schema": FEATURES_SMALL,
                                      "trusted_types": ["statistics.fmean"]})
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["code"] == "untrusted_types"
    assert body["untrusted_types"] == ["statistics.fmean"]
    assert "administrator" in body["errors"][0]["message"]


def test_the_defaults_are_seeded_and_none_is_forbidden(db):
    assert set(TrustedType.objects.values_list("name", flat=True)) >= set(DEFAULT_TRUSTED_TYPES)
    assert [n for n in DEFAULT_TRUSTED_TYPES if forbidden_reason(n)] == []


# --- zip limits -------------------------------------------------------------------------

def _with_member(data: bytes, name: str, payload: bytes, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a", compression=compression) as archive:
        archive.writestr(name, payload)
    return buffer.getvalue()


def test_a_decompression_bomb_is_refused_from_the_headers(personas, dataset):
    bomb = _with_member(skops_bytes(logistic_model()), "bomb.bin", bytes(64 * 1024 * 1024))
    assert len(bomb) < 200_000  # 64 MB of zeros in well under 200 KB
    response = _post(personas, bomb, {"dataset": dataset.pk, "input_schema": FEATURES_SMALL})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == "archive_too_large"
    assert "bomb.bin" in error["message"] and "decompression bomb" in error["message"]
    assert not ModelVersion.objects.exists()


def test_member_and_schema_size_limits(personas, dataset):
    plain = skops_bytes(logistic_model())
    assert _post(personas, plain, {"dataset": dataset.pk, "input_schema": FEATURES_SMALL}
                 ).status_code == 201
    big = _with_member(plain, "big.bin", os.urandom(2 * 1024 * 1024), zipfile.ZIP_STORED)
    with override_settings(ATTEST_SKOPS_MAX_MEMBER_BYTES=1024 * 1024):
        response = _post(personas, big, {"dataset": dataset.pk, "input_schema": FEATURES_SMALL})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "archive_too_large"
    assert "big.bin" in response.json()["errors"][0]["message"]
    with override_settings(ATTEST_SKOPS_MAX_SCHEMA_BYTES=64):
        response = _post(personas, plain, {"dataset": dataset.pk, "input_schema": FEATURES_SMALL})
    assert response.status_code == 400
    assert "schema.json" in response.json()["errors"][0]["message"]
    assert ModelVersion.objects.count() == 1


# --- the allowlist: administrators only, audited, checked on every load -----------------

def test_administrators_curate_the_list_through_the_api(personas):
    admin = api_as(personas.admin)
    TrustedType.objects.filter(name=TREE).delete()
    created = admin.post("/api/v1/trusted-types/", {"name": TREE, "reason": "trees"},
                         format="json")
    assert created.status_code == 201, created.content
    assert created.json()["added_by"] == personas.admin.username
    event = AuditEvent.objects.get(action=Action.TRUSTED_TYPE_ADDED)
    assert event.actor == personas.admin and event.after["name"] == TREE
    listed = api_as(personas.clinician).get("/api/v1/trusted-types/")
    assert listed.status_code == 200 and TREE in {e["name"] for e in listed.json()}
    again = admin.post("/api/v1/trusted-types/", {"name": TREE}, format="json")
    assert again.status_code == 400 and again.json()["errors"][0]["code"] == "duplicate"
    bad = admin.post("/api/v1/trusted-types/", {"name": "os.system"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "forbidden_type"
    removed = admin.delete(f"/api/v1/trusted-types/{TREE}/")
    assert removed.status_code == 204
    assert AuditEvent.objects.get(action=Action.TRUSTED_TYPE_REMOVED).before["name"] == TREE
    assert admin.delete(f"/api/v1/trusted-types/{TREE}/").status_code == 404


def test_no_one_else_may_change_it_and_the_attempt_is_recorded(personas):
    owner = api_as(personas.owner)
    response = owner.post("/api/v1/trusted-types/", {"name": "statistics.fmean"}, format="json")
    assert response.status_code == 403
    assert owner.delete(f"/api/v1/trusted-types/{TREE}/").status_code == 403
    assert TrustedType.objects.filter(name=TREE).exists()
    assert not TrustedType.objects.filter(name="statistics.fmean").exists()
    denied = AuditEvent.objects.filter(action=Action.PERMISSION_DENIED, actor=personas.owner,
                                       object_type="registry.trustedtype")
    assert denied.count() == 2
    with pytest.raises(PermissionDenied):
        trusted_type_add(user=personas.owner, name="statistics.fmean")


def test_the_portal_page_adds_and_removes_for_administrators(client, personas):
    TrustedType.objects.filter(name=TREE).delete()
    client.force_login(personas.admin)
    page = client.get("/trusted-types/")
    assert page.status_code == 200
    response = client.post("/trusted-types/", {"action": "add", "name": TREE, "reason": "trees"})
    assert response.status_code == 302
    assert TrustedType.objects.get(name=TREE).added_by == personas.admin
    refused = client.post("/trusted-types/", {"action": "add", "name": "pydoc.pipepager"},
                          follow=True)
    assert b"pydoc" in refused.content and not TrustedType.objects.filter(
        name="pydoc.pipepager").exists()
    client.post("/trusted-types/", {"action": "remove", "name": TREE})
    assert not TrustedType.objects.filter(name=TREE).exists()


def test_a_stored_version_stops_loading_when_its_type_is_removed(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset, data=tree_model_bytes())
    assert version.trusted_types == [TREE]
    assert artifact_model_load(version=version) is not None  # cached now
    TrustedType.objects.filter(name=TREE).delete()
    with pytest.raises(ValidationFailed) as caught:
        artifact_model_load(version=ModelVersion.objects.get(pk=version.pk))
    assert caught.value.items[0].code == "untrusted_types"
    assert caught.value.extra == {"untrusted_types": [TREE]}


# --- the sandbox --------------------------------------------------------------------------

def test_the_child_has_no_secrets_and_no_environment():
    os.environ["ATTEST_TEST_SECRET"] = "hunter2"
    try:
        env, secret, key = sandbox_run(
            lambda: (dict(os.environ), os.environ.get("ATTEST_TEST_SECRET"),
                     vars(settings._wrapped).get("SECRET_KEY")), what="probe")
    finally:
        del os.environ["ATTEST_TEST_SECRET"]
    assert secret is None and key is None
    assert set(env) <= {"PATH", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}
    assert settings.SECRET_KEY  # the parent's own settings are untouched


def test_the_child_cannot_reach_the_database_and_the_parent_still_can(personas):
    User = get_user_model()
    with pytest.raises(ValidationFailed) as caught:
        sandbox_run(lambda: User.objects.count(), what="probe")
    assert caught.value.items[0].code == "sandbox_refused"
    assert User.objects.filter(pk=personas.owner.pk).exists()


def test_a_validation_error_in_the_child_keeps_its_code_and_field():
    def refuse():
        raise ValidationFailed("nope", code="corrupt_file", field="artifact",
                               extra={"untrusted_types": ["x.y"]})

    with pytest.raises(ValidationFailed) as caught:
        sandbox_run(refuse, what="probe")
    item = caught.value.items[0]
    assert (item.code, item.field, item.message) == ("corrupt_file", "artifact", "nope")
    assert caught.value.extra == {"untrusted_types": ["x.y"]}


@override_settings(ATTEST_SANDBOX_CPU_SECONDS=1, ATTEST_SANDBOX_TIMEOUT_SECONDS=60)
def test_a_child_that_burns_cpu_is_ended():
    def spin():
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(ValidationFailed) as caught:
        sandbox_run(spin, what="model file")
    assert "CPU time" in caught.value.items[0].message
    assert time.monotonic() - started < 30


@override_settings(ATTEST_SANDBOX_MEMORY_MB=128)
def test_a_child_that_wants_too_much_memory_is_refused():
    with pytest.raises(ValidationFailed) as caught:
        sandbox_run(lambda: len(bytearray(2 * 1024 ** 3)), what="model file")
    assert caught.value.items[0].code == "sandbox_refused"
    assert "128 MB" in caught.value.items[0].message


@override_settings(ATTEST_SANDBOX_TIMEOUT_SECONDS=1)
def test_a_child_that_hangs_is_killed_at_the_timeout():
    started = time.monotonic()
    with pytest.raises(ValidationFailed) as caught:
        sandbox_run(lambda: time.sleep(30), what="model file")
    assert "did not finish within 1 s" in caught.value.items[0].message
    assert time.monotonic() - started < 10


def test_registration_runs_the_first_load_in_the_child(personas, dataset, monkeypatch):
    """The upload path goes through the sandbox (a refusal there stops the upload)."""
    calls = []
    import registry.services as services

    real = services.sandbox_run

    def spy(fn, *, what):
        calls.append(what)
        return real(fn, what=what)

    monkeypatch.setattr(services, "sandbox_run", spy)
    assert settings.ATTEST_SANDBOX
    register_version(personas.owner, personas.model, dataset)
    assert calls == ["model file"]
