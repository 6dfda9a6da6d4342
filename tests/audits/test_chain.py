from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audits.chain import verify_chain
from audits.models import Action, AuditEvent
from audits.services import audit_event_record
from core.context import acting_as

from .helpers import raw_sql

pytestmark = pytest.mark.django_db


def _append(n: int) -> list[AuditEvent]:
    return [audit_event_record(action=Action.MODEL_UPDATED, object_type="test.thing",
                               object_id=i, object_repr=f"thing {i}", details={"i": i,
                                                                                "note": "é ✓"})
            for i in range(n)]




def test_an_untouched_chain_verifies():
    events = _append(5)
    result = verify_chain()
    assert result.ok and result.checked == 5 and result.first_broken is None
    assert result.head_hash == events[-1].hash and result.head_seq == 5
    assert events[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))


def test_an_empty_chain_verifies():
    assert verify_chain().ok


def test_events_record_the_actor_from_the_context(django_user_model):
    user = django_user_model.objects.create_user("alice", first_name="Alice", last_name="Ng")
    with acting_as(user, via="command") as ctx:
        event = audit_event_record(action=Action.MODEL_UPDATED, object_type="x", object_id=1)
    assert (event.actor_id, event.actor_username, event.actor_name, event.via) == (
        user.pk, "alice", "Alice Ng", "command")
    assert event.request_id == ctx.request_id


def test_the_model_and_queryset_refuse_update_and_delete():
    event = _append(1)[0]
    event.reason = "changed"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()


@pytest.mark.parametrize("sql", [
    "UPDATE audits_auditevent SET reason = 'rewritten'",
    "DELETE FROM audits_auditevent",
])
def test_the_database_refuses_update_and_delete(sql):
    _append(2)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEvent.objects.count() == 2


def test_changed_details_are_named_as_the_first_broken_link():
    events = _append(5)
    cast = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    raw_sql(f"UPDATE audits_auditevent SET details = {cast} WHERE seq = 3", ['{"i": 99}'])  # noqa: S608
    result = verify_chain()
    assert not result.ok and result.checked == 2
    assert result.first_broken.seq == 3 and result.first_broken.id == events[2].pk
    assert result.first_broken.problem == "content does not match its hash"


def test_a_deleted_event_is_named():
    _append(5)
    raw_sql("DELETE FROM audits_auditevent WHERE seq = 2")
    result = verify_chain()
    assert not result.ok and result.checked == 1
    assert result.first_broken.seq == 3 and "sequence gap" in result.first_broken.problem


def test_reordered_events_are_named():
    events = _append(4)
    # Swap the positions of events 2 and 3 (their seq numbers), keeping their hashes.
    raw_sql("UPDATE audits_auditevent SET seq = -2 WHERE seq = 2")
    raw_sql("UPDATE audits_auditevent SET seq = 2 WHERE seq = 3")
    raw_sql("UPDATE audits_auditevent SET seq = 3 WHERE seq = -2")
    result = verify_chain()
    assert not result.ok
    assert result.first_broken.seq == 2 and result.first_broken.id == events[2].pk


def test_verify_audit_command_exit_codes(capsys):
    _append(3)
    call_command("verify_audit")
    assert "ok: 3 events checked" in capsys.readouterr().out
    raw_sql("UPDATE audits_auditevent SET object_repr = 'x' WHERE seq = 2")
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit")
    assert excinfo.value.returncode == 1
    assert "broken at event #2" in str(excinfo.value)


def test_an_event_rolls_back_with_its_change():
    with pytest.raises(RuntimeError), transaction.atomic():
        _append(1)
        raise RuntimeError("the change failed")
    assert AuditEvent.objects.count() == 0
    _append(1)
    assert verify_chain().ok and AuditEvent.objects.get().seq == 1


def test_unknown_actions_are_refused():
    with pytest.raises(ValueError):
        audit_event_record(action="registry.made_up")
