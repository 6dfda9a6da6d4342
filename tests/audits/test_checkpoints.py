from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audits.chain import MATERIAL_FIELDS, event_hash, verify_chain
from audits.checkpoints import (
    audit_checkpoint_write,
    checkpoint_read,
    verify_against_checkpoint,
)
from audits.models import GENESIS_HASH, Action, AuditEvent
from audits.services import audit_event_record
from audits.triggers import run as run_triggers
from core.errors import ValidationFailed

pytestmark = pytest.mark.django_db


def _append(n: int) -> None:
    for i in range(n):
        audit_event_record(action=Action.MODEL_UPDATED, object_type="t", object_id=i,
                           details={"i": i})


def _rewrite_history(seq: int) -> None:
    """What an attacker with database access does: change one event, then
    recompute every later hash so the plain chain verifies again."""
    run_triggers(connection, install=False)
    try:
        prev = GENESIS_HASH
        for event in AuditEvent.objects.order_by("seq"):
            material = {f: getattr(event, f) for f in MATERIAL_FIELDS}
            if event.seq == seq:
                material["details"] = {"i": "rewritten"}
            new_hash = event_hash(prev, material)
            with connection.cursor() as cursor:
                cast = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
                sql = f"UPDATE audits_auditevent SET details = {cast}, prev_hash = %s, hash = %s WHERE id = %s"  # noqa: S608
                cursor.execute(sql, [json.dumps(material["details"]), prev, new_hash, event.pk])
            prev = new_hash
    finally:
        run_triggers(connection, install=True)


def test_a_checkpoint_is_signed_stored_and_recorded():
    _append(5)
    checkpoint = audit_checkpoint_write()
    payload = checkpoint.payload
    assert payload["count"] == 5 and payload["head_seq"] == 5
    assert [s for s, _ in payload["marks"]] == [1, 2, 3, 4, 5]
    stored = checkpoint_read(checkpoint.storage_key)
    assert json.loads(stored)["signature"] == checkpoint.signature
    event = AuditEvent.objects.filter(action=Action.AUDIT_CHECKPOINT).get()
    assert event.details["head_hash"] == payload["head_hash"]
    assert verify_against_checkpoint(stored).ok


def test_the_chain_keeps_extending_a_checkpoint():
    _append(3)
    data = audit_checkpoint_write().as_bytes()
    _append(4)
    verdict = verify_against_checkpoint(data)
    assert verdict.ok and verdict.checkpoint_seq == 3


def test_a_rebuilt_history_is_caught_and_located():
    _append(10)
    data = audit_checkpoint_write().as_bytes()
    _rewrite_history(6)
    assert verify_chain().ok, "the rewrite recomputed every hash: the plain chain verifies"
    verdict = verify_against_checkpoint(data)
    assert not verdict.ok
    assert verdict.last_matching_seq == 5 and verdict.first_differing_seq == 6
    assert "after event #5, at or before event #6" in verdict.message


def test_a_truncated_history_is_caught():
    _append(6)
    data = audit_checkpoint_write().as_bytes()
    run_triggers(connection, install=False)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audits_auditevent WHERE seq >= 5")
    run_triggers(connection, install=True)
    verdict = verify_against_checkpoint(data)
    assert not verdict.ok and verdict.first_differing_seq == 5 and "missing" in verdict.message


def test_an_altered_checkpoint_file_is_refused():
    _append(2)
    document = json.loads(audit_checkpoint_write().as_bytes())
    document["payload"]["head_hash"] = "0" * 64
    with pytest.raises(ValidationFailed) as excinfo:
        verify_against_checkpoint(json.dumps(document).encode())
    assert excinfo.value.items[0].code == "bad_signature"
    with pytest.raises(ValidationFailed):
        verify_against_checkpoint(b"not json at all")


def test_a_checkpoint_from_an_unknown_key_is_not_trusted(settings):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _append(2)
    data = audit_checkpoint_write().as_bytes()
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    settings.ATTEST_AUDIT_SIGNING_KEY = other
    verdict = verify_against_checkpoint(data)
    assert not verdict.ok and "does not trust" in verdict.message


def test_a_broken_chain_is_not_signed():
    _append(3)
    run_triggers(connection, install=False)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audits_auditevent SET reason = 'x' WHERE seq = 2")
    run_triggers(connection, install=True)
    with pytest.raises(ValidationFailed, match="refusing to sign"):
        audit_checkpoint_write()


def test_the_commands_round_trip(tmp_path, capsys):
    _append(4)
    path = tmp_path / "cp.json"
    call_command("audit_checkpoint", output=str(path))
    assert "checkpoint: 4 events" in capsys.readouterr().out
    call_command("verify_audit", checkpoint=str(path))
    assert "checkpoint ok" in capsys.readouterr().out
    _rewrite_history(2)
    with pytest.raises(CommandError, match="histories part") as excinfo:
        call_command("verify_audit", checkpoint=str(path))
    assert excinfo.value.returncode == 1
    with pytest.raises(CommandError, match="cannot read"):
        call_command("verify_audit", checkpoint=str(tmp_path / "missing.json"))


def test_marks_are_spaced_for_long_chains():
    from audits.checkpoints import MAX_MARKS, _mark_seqs

    seqs = _mark_seqs(1_000_000)
    assert len(seqs) <= MAX_MARKS + 1 and seqs[-1] == 1_000_000 and seqs == sorted(seqs)


def _chain_lock_held() -> bool:
    """Whether this connection holds what appends wait for: on SQLite the write
    transaction (BEGIN IMMEDIATE), on PostgreSQL the chain's advisory lock."""
    if connection.vendor != "postgresql":
        return connection.in_atomic_block
    from audits.services import _CHAIN_LOCK_KEY

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                       "AND pid = pg_backend_pid() AND objid = %s", [_CHAIN_LOCK_KEY])
        return cursor.fetchone()[0] > 0


def test_the_long_walk_runs_outside_the_chain_lock(transactional_db, monkeypatch):
    """Appends go on during a checkpoint's verification; the checkpoint still covers
    them, through a short walk from the verified head under the lock."""
    from audits import checkpoints

    _append(5)
    seen = []

    def walking_while_others_append(**kwargs):
        seen.append(_chain_lock_held())
        result = verify_chain(**kwargs)
        _append(2)  # what predictions and sign-offs do meanwhile
        return result

    monkeypatch.setattr(checkpoints, "verify_chain", walking_while_others_append)
    checkpoint = audit_checkpoint_write()
    assert seen == [False]
    assert checkpoint.payload["head_seq"] == checkpoint.payload["count"] == 7
    assert verify_against_checkpoint(checkpoint.as_bytes()).ok


def test_a_head_changed_during_the_walk_is_not_signed():
    from audits.chain import verify_chain_after

    _append(3)
    walked = verify_chain()
    _rewrite_history(3)
    after = verify_chain_after(walked)
    assert not after.ok and after.first_broken.seq == 3
    assert "while the chain was being verified" in after.first_broken.problem


def test_events_appended_after_a_walk_are_checked_by_the_short_one():
    from audits.chain import verify_chain_after

    _append(3)
    walked = verify_chain()
    _append(4)
    after = verify_chain_after(walked)
    assert after.ok and after.checked == after.head_seq == 7
    assert after == verify_chain()
