"""`attest dossier verify ZIP`: the evidence package checked offline by the client, the
same verdict as the server's `manage.py verify_evidence` (one implementation)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from attest_client.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE

from audits.checkpoints import audit_checkpoint_write
from dossier.models import Dossier, DossierStatus
from dossier.services import dossier_build, dossier_request

from ..conftest import api_as
from ..dossier.helpers import scripted_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def package(personas, tmp_path):
    version = scripted_history(personas, predictions=3)
    d = dossier_request(user=personas.owner, version=version)
    assert dossier_build(dossier_id=d.pk) == DossierStatus.COMPLETED
    dossier = Dossier.objects.get(pk=d.pk)
    response = api_as(personas.auditor).get(f"/api/v1/dossiers/{dossier.public_id}/evidence/")
    assert response.status_code == 200
    path = tmp_path / "evidence.zip"
    path.write_bytes(response.content)
    return dossier, path


def test_it_says_ok_for_an_intact_package(attest, package):
    dossier, path = package
    result = attest("dossier", "verify", str(path))
    assert result.status == EXIT_OK, result.err
    assert result.out.startswith("ok: ") and len(result.out.strip().splitlines()) == 1
    assert str(dossier.public_id) in result.out
    body = attest("dossier", "verify", str(path), "--json").json
    assert body["ok"] is True and body["manifest"]["chain_head"]["seq"] == dossier.chain_head_seq


def test_it_names_each_changed_file_and_exits_1(attest, package, tmp_path):
    _dossier, path = package
    with zipfile.ZipFile(path) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    files["runbook.md"] += b"\nand also this"
    files["model-card.md"] = files["model-card.md"].replace(b"a", b"b", 1)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    (tmp_path / "changed.zip").write_bytes(out.getvalue())
    result = attest("dossier", "verify", str(tmp_path / "changed.zip"))
    assert result.status == EXIT_CHECK_FAILED
    lines = result.out.strip().splitlines()
    assert any(line.startswith("runbook.md: size") for line in lines)
    assert any(line.startswith("model-card.md: sha256") for line in lines)
    assert lines[-1].startswith("FAILED: ")


def test_a_checkpoint_signed_after_the_dossier_cannot_vouch_for_its_export(
        attest, package, tmp_path):
    """The package's export is the version's events up to the dossier's head: a later
    checkpoint's head lies beyond it, and the check says so instead of passing."""
    _dossier, path = package
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_bytes(audit_checkpoint_write().as_bytes())
    result = attest("dossier", "verify", str(path), "--checkpoint", str(checkpoint))
    assert result.status == EXIT_CHECK_FAILED
    assert any(line.startswith("checkpoint: the export ends at event")
               for line in result.out.splitlines()), result.out


def test_a_tampered_checkpoint_fails(attest, package, tmp_path):
    _dossier, path = package
    document = json.loads(audit_checkpoint_write().as_bytes())
    document["payload"]["head_seq"] += 1
    (tmp_path / "checkpoint.json").write_text(json.dumps(document))
    result = attest("dossier", "verify", str(path), "--checkpoint",
                    str(tmp_path / "checkpoint.json"))
    assert result.status == EXIT_CHECK_FAILED
    assert "checkpoint: the checkpoint's signature does not match" in result.out


def test_what_is_not_a_zip_is_a_usage_error(attest, tmp_path):
    (tmp_path / "x.zip").write_text("hello")
    result = attest("dossier", "verify", str(tmp_path / "x.zip"))
    assert result.status == EXIT_USAGE and "not a ZIP file" in result.err
