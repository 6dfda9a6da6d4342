"""The dossier's evidence package: a deterministic ZIP of the PDF and its evidence, served
to those who may read the dossier, and its offline check (``manage.py verify_evidence``)
failing on any changed byte, an unlisted file and a rewritten audit chain."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from attest_client.evidence import manifest_bytes
from django.core.management import CommandError, call_command

from audits.models import Action, AuditEvent
from dossier.models import Dossier, DossierStatus
from dossier.services import dossier_build, dossier_request

from ..conftest import api_as
from .helpers import RUNBOOK, scripted_history

pytestmark = pytest.mark.django_db

FILES = ["audit-export.json", "dossier.pdf", "manifest.json", "model-card.md", "runbook.md",
         "signoffs.json"]


@pytest.fixture
def dossier(personas) -> Dossier:
    version = scripted_history(personas, predictions=3)
    d = dossier_request(user=personas.owner, version=version)
    assert dossier_build(dossier_id=d.pk) == DossierStatus.COMPLETED
    return Dossier.objects.select_related("version").get(pk=d.pk)


def _download(user, dossier: Dossier):
    return api_as(user).get(f"/api/v1/dossiers/{dossier.public_id}/evidence/")


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _unpack(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _check(tmp_path, data: bytes, name: str = "package.zip") -> tuple[int, str]:
    path = tmp_path / name
    path.write_bytes(data)
    out = io.StringIO()
    try:
        call_command("verify_evidence", str(path), stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def _rehashed(files: dict[str, bytes], **changed: bytes) -> dict[str, bytes]:
    """``files`` with some replaced and the manifest's entries for them recomputed."""
    files = {**files, **changed}
    manifest = json.loads(files["manifest.json"])
    for entry in manifest["files"]:
        entry["sha256"] = hashlib.sha256(files[entry["name"]]).hexdigest()
        entry["size"] = len(files[entry["name"]])
    files["manifest.json"] = manifest_bytes(manifest)
    return files


def test_it_packs_the_pdf_and_its_evidence_with_a_manifest(personas, dossier):
    response = _download(personas.auditor, dossier)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment;")
    data = response.content
    assert response["X-Content-SHA256"] == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == FILES
    at = dossier.evidence_at
    assert {i.date_time for i in infos} == {(at.year, at.month, at.day, at.hour, at.minute,
                                             at.second // 2 * 2)}
    files = _unpack(data)
    assert hashlib.sha256(files["dossier.pdf"]).hexdigest() == dossier.sha256
    assert files["runbook.md"].decode() == RUNBOOK == dossier.snapshot["runbook"]
    assert files["model-card.md"].decode() == dossier.snapshot["model_card"]
    assert json.loads(files["signoffs.json"]) == dossier.snapshot["signoffs"]

    manifest = json.loads(files["manifest.json"])
    assert manifest["dossier"] == str(dossier.public_id)
    assert manifest["version"] == dossier.version.number
    assert manifest["content_hash"] == dossier.version.content_hash
    assert manifest["evidence_at"] == dossier.snapshot["cover"]["evidence_at"]
    assert manifest["chain_head"] == {"seq": dossier.chain_head_seq,
                                      "hash": dossier.chain_head_hash}
    assert manifest["checkpoint"] == dossier.snapshot["cover"]["checkpoint"]
    assert [e["name"] for e in manifest["files"]] == [n for n in FILES if n != "manifest.json"]
    for entry in manifest["files"]:
        assert entry["sha256"] == hashlib.sha256(files[entry["name"]]).hexdigest()
        assert entry["size"] == len(files[entry["name"]])

    export = json.loads(files["audit-export.json"])
    assert export["chain_head"] == manifest["chain_head"]
    seqs = [e["seq"] for e in export["events"]]
    expected = list(AuditEvent.objects.filter(version_id=dossier.version_id,
                                              seq__lte=dossier.chain_head_seq)
                    .order_by("seq").values_list("seq", flat=True))
    assert seqs == expected and seqs
    assert {e["version_id"] for e in export["events"]} == {dossier.version_id}


def test_the_same_dossier_gives_the_same_bytes(personas, dossier):
    first = _download(personas.auditor, dossier).content
    # the first download is itself an event of the version: still past the chain head
    second = _download(personas.owner, dossier).content
    assert first == second


def test_each_download_is_an_audit_event(personas, dossier):
    data = _download(personas.irb, dossier).content
    event = AuditEvent.objects.filter(action=Action.DOSSIER_DOWNLOADED).get()
    assert event.actor_username == "irb" and event.version_id == dossier.version_id
    assert event.details["what"] == "evidence"
    assert event.details["package_sha256"] == hashlib.sha256(data).hexdigest()
    assert event.details["sha256"] == dossier.sha256


@pytest.mark.parametrize("who", ["clinician", "reviewer"])
def test_it_is_not_found_for_those_who_may_not_read_the_dossier(personas, dossier, who):
    assert _download(personas.get(who), dossier).status_code == 404
    assert not AuditEvent.objects.filter(action=Action.DOSSIER_DOWNLOADED).exists()


def test_it_refuses_when_the_stored_pdf_changed(personas, dossier):
    from registry.storage import artifact_storage

    store = artifact_storage()
    with store.open(dossier.storage_key, "rb") as handle:
        data = bytearray(handle.read())
    data[100] ^= 1
    store.delete(dossier.storage_key)
    store.save(dossier.storage_key, io.BytesIO(bytes(data)))
    assert _download(personas.auditor, dossier).status_code == 409
    assert not AuditEvent.objects.filter(action=Action.DOSSIER_DOWNLOADED).exists()


# -- the offline check --------------------------------------------------------------------------

def test_the_offline_check_passes_an_intact_package(personas, dossier, tmp_path):
    status, out = _check(tmp_path, _download(personas.auditor, dossier).content)
    assert status == 0, out
    assert out.startswith("ok: ") and str(dossier.public_id) in out
    assert f"head #{dossier.chain_head_seq}" in out


@pytest.mark.parametrize("name", FILES)
def test_the_offline_check_fails_on_a_changed_byte_in_any_file(personas, dossier, tmp_path,
                                                                name):
    files = _unpack(_download(personas.auditor, dossier).content)
    data = bytearray(files[name])
    data[len(data) // 2] ^= 1
    files[name] = bytes(data)
    status, out = _check(tmp_path, _zip(files))
    assert status != 0
    assert f"{name}: " in out, out


def test_the_offline_check_names_the_manifest_for_a_renamed_entry_key(personas, dossier,
                                                                      tmp_path):
    files = _unpack(_download(personas.auditor, dossier).content)
    manifest = json.loads(files["manifest.json"])
    entry = manifest["files"][0]
    entry["sizd"] = entry.pop("size")  # one flipped bit of "size", still canonical JSON
    files["manifest.json"] = manifest_bytes(manifest)
    status, out = _check(tmp_path, _zip(files))
    assert status == 1 and f"manifest.json: the entry for {entry['name']} is not" in out, out


@pytest.mark.parametrize(("field", "value"), [
    ("dossier", "00000000-0000-0000-0000-000000000000"), ("model", "other"), ("version", 99),
    ("content_hash", "0" * 64), ("pdf_sha256", "0" * 64),
    ("evidence_at", "2001-01-01T00:00:00+00:00"), ("chain_head", {"seq": 1, "hash": "0" * 64})])
def test_the_offline_check_fails_on_a_changed_statement_of_the_manifest(
        personas, dossier, tmp_path, field, value):
    """Rewritten in the server's own form, each statement still disagrees with a file."""
    files = _unpack(_download(personas.auditor, dossier).content)
    manifest = json.loads(files["manifest.json"])
    manifest[field] = value
    files["manifest.json"] = manifest_bytes(manifest)
    status, out = _check(tmp_path, _zip(files))
    assert status == 1 and ("manifest.json: " in out or "audit-export.json: " in out), out


def test_the_offline_check_fails_on_an_unlisted_file(personas, dossier, tmp_path):
    files = _unpack(_download(personas.auditor, dossier).content)
    files["notes.txt"] = b"added later"
    status, out = _check(tmp_path, _zip(files))
    assert status == 1
    assert "notes.txt: in the ZIP but not listed in the manifest" in out


def test_the_offline_check_fails_on_a_missing_file(personas, dossier, tmp_path):
    files = _unpack(_download(personas.auditor, dossier).content)
    del files["runbook.md"]
    status, out = _check(tmp_path, _zip(files))
    assert status == 1 and "runbook.md: listed in the manifest but missing" in out


def test_the_offline_check_fails_on_a_rewritten_chain(personas, dossier, tmp_path):
    """One event's details edited and the manifest re-hashed: only the chain catches it."""
    files = _unpack(_download(personas.auditor, dossier).content)
    export = json.loads(files["audit-export.json"])
    victim = export["events"][len(export["events"]) // 2]
    victim["details"] = {**(victim["details"] or {}), "edited": True}
    files = _rehashed(files, **{"audit-export.json": json.dumps(export).encode()})
    status, out = _check(tmp_path, _zip(files))
    assert status == 1, out
    assert f"audit-export.json: chain broken at event #{victim['seq']}" in out
    assert "sha256" not in out  # the manifest agrees with every file


def test_the_offline_check_fails_on_an_export_past_or_off_the_head(personas, dossier,
                                                                   tmp_path):
    files = _unpack(_download(personas.auditor, dossier).content)
    export = json.loads(files["audit-export.json"])
    export["chain_head"] = {"seq": export["chain_head"]["seq"] + 1, "hash": "f" * 64}
    files = _rehashed(files, **{"audit-export.json": json.dumps(export).encode()})
    status, out = _check(tmp_path, _zip(files))
    assert status == 1 and "is not the manifest's" in out, out


def test_the_offline_check_refuses_what_is_not_a_zip(tmp_path):
    status, out = _check(tmp_path, b"not a zip")
    assert status == 2 and "not a ZIP file" in out


def test_the_dossier_page_links_the_package_beside_the_pdf(client_as, dossier):
    page = client_as("auditor").get(f"/dossiers/{dossier.public_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    link = f'href="/api/v1/dossiers/{dossier.public_id}/evidence/"'
    assert link in html
    assert html.index(f'href="/api/v1/dossiers/{dossier.public_id}/pdf/"') < html.index(link)


def test_the_offline_check_names_an_export_event_missing_its_hash(personas, dossier, tmp_path):
    """An edit that removes a field the chain check reads is one line, not a traceback."""
    files = _unpack(_download(personas.auditor, dossier).content)
    export = json.loads(files["audit-export.json"])
    del export["events"][0]["hash"]
    files["audit-export.json"] = json.dumps(export).encode()
    status, out = _check(tmp_path, _zip(files))
    assert status == 1 and "audit-export.json: " in out and "Traceback" not in out, out
