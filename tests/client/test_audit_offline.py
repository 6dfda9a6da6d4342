"""The client's offline verification against the server's own: the same verdict on the same
export, intact, edited, rewritten with every hash recomputed, and truncated."""

from __future__ import annotations

import base64
import json

import pytest
from attest_client import audit
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection

from audits.chain import verify_chain
from audits.checkpoints import audit_checkpoint_write, public_key_pem, verify_against_checkpoint
from audits.models import Action, AuditEvent
from audits.services import audit_event_record
from audits.triggers import run as run_triggers

from ..audits.test_checkpoints import _rewrite_history
from ..conftest import api_as

pytestmark = pytest.mark.django_db


def _events(personas, n: int = 8) -> None:
    """Varied events: unicode, floats in exponent form, nested JSON, null and blank fields."""
    for i in range(n):
        audit_event_record(action=Action.MODEL_UPDATED, object_type="registry.registeredmodel",
                           object_id=i, object_repr=f"modèle {i} — ✓",
                           model_id=personas.model.pk if i % 2 else None,
                           model_name=personas.model.name if i % 2 else "",
                           details={"i": i, "tiny": 1e-7 * (i + 1), "big": 1e16, "nested":
                                    {"b": [1, 2.5, None], "a": "ünï"}},
                           before=None if i % 3 else {"x": -0.0})


def _export(user) -> dict:
    response = api_as(user).get("/api/v1/audit/export/?format=json")
    assert response.status_code == 200
    return json.loads(b"".join(response.streaming_content))


def test_both_agree_an_intact_trail_is_intact_and_extends_its_checkpoint(personas):
    _events(personas)
    checkpoint = audit_checkpoint_write().as_bytes()
    _events(personas, 3)
    document = _export(personas.auditor)
    server = verify_chain()
    client = audit.verify_export(document, checkpoint,
                                 public_key_pem=public_key_pem().encode())
    assert server.ok and verify_against_checkpoint(checkpoint).ok
    assert client.ok and client.complete, client
    assert client.checkpoint["ok"] and client.checkpoint["key_pinned"]
    # The export ends at the head the server announced (the export event itself comes after).
    assert client.head_seq == document["chain_head"]["seq"] == server.head_seq - 1
    assert client.head_hash == AuditEvent.objects.get(seq=client.head_seq).hash


def test_both_name_the_same_broken_link(personas):
    _events(personas)
    target = AuditEvent.objects.get(seq=5)
    run_triggers(connection, install=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audits_auditevent SET object_repr = %s WHERE id = %s",
                           ["edited", target.pk])
    finally:
        run_triggers(connection, install=True)
    server = verify_chain()
    assert not server.ok and server.first_broken.seq == 5
    document = _export(personas.admin)
    client = audit.verify_export(document)
    assert not client.ok and client.first_broken["seq"] == 5
    assert client.first_broken["problem"] == server.first_broken.problem


def test_both_catch_a_rewritten_history_at_the_same_place(personas):
    _events(personas, 10)
    checkpoint = audit_checkpoint_write().as_bytes()
    _rewrite_history(6)
    server = verify_against_checkpoint(checkpoint)
    client = audit.verify_export(_export(personas.admin), checkpoint)
    assert verify_chain().ok  # every hash was recomputed: the chain alone verifies
    assert audit.verify_events(_export(personas.admin)["events"]).ok
    assert not server.ok and not client.ok
    assert client.checkpoint["first_differing_seq"] == server.first_differing_seq == 6
    assert client.checkpoint["last_matching_seq"] == server.last_matching_seq == 5


def test_a_truncated_export_cannot_pass_for_the_checkpointed_history(personas):
    _events(personas, 6)
    checkpoint = audit_checkpoint_write().as_bytes()
    document = _export(personas.admin)
    document["events"] = [e for e in document["events"] if e["seq"] < 4]
    verdict = audit.verify_export(document, checkpoint)
    assert not verdict.ok and "before the checkpoint's head" in verdict.checkpoint["message"]


def test_a_filtered_export_is_checked_as_far_as_it_goes(personas):
    _events(personas)
    checkpoint = audit_checkpoint_write().as_bytes()
    response = api_as(personas.owner).get("/api/v1/audit/export/?format=json")
    document = json.loads(b"".join(response.streaming_content))
    verdict = audit.verify_export(document, checkpoint)
    assert verdict.ok and not verdict.complete and verdict.missing > 0
    assert verdict.checkpoint["marks_compared"] < verdict.checkpoint["marks"]
    assert "the export is filtered" in verdict.checkpoint["message"]


def test_altered_or_foreign_checkpoints_are_rejected(personas):
    _events(personas, 3)
    checkpoint = audit_checkpoint_write().as_bytes()
    document = _export(personas.admin)
    altered = json.loads(checkpoint)
    altered["payload"]["head_hash"] = "0" * 64
    verdict = audit.verify_export(document, json.dumps(altered).encode())
    assert not verdict.ok and "altered" in verdict.checkpoint["message"]
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    verdict = audit.verify_export(document, checkpoint, public_key_pem=other)
    assert not verdict.ok and "not with the public key given" in verdict.checkpoint["message"]
    assert base64.b64decode(json.loads(checkpoint)["payload"]["public_key"])


def test_the_command_exits_1_on_a_broken_export(personas, attest, tmp_path):
    _events(personas, 4)
    document = _export(personas.admin)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document))
    assert attest("audit", "verify", "--export", str(path)).status == 0
    document["events"][1]["details"] = {"forged": True}
    path.write_text(json.dumps(document))
    result = attest("audit", "verify", "--export", str(path))
    assert result.status == 1 and result.out.startswith("BROKEN at event #")
    path.write_text("seq,id\n1,2\n")
    result = attest("audit", "verify", "--export", str(path))
    assert result.status == 2 and "export with --format json" in result.error_line()
