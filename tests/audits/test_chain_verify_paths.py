"""verify_chain's fast readers (COPY on PostgreSQL, keyset queries elsewhere) agree with the
reference: event_hash over the values Django loads, checked link by link.

(Not covered: -0.0 and integral floats from 1e16 to 2**64 do not survive PostgreSQL's jsonb,
which stores numbers as numeric, so such events fail verification there with either code.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from audits import services
from audits.chain import MATERIAL_FIELDS, _time_text, event_hash, verify_chain
from audits.models import GENESIS_HASH, Action, AuditEvent
from audits.services import audit_event_record

from .helpers import raw_sql

pytestmark = pytest.mark.django_db

AWKWARD = "tab\there, new\nline, cr\r, back\\slash \\N, quote \" ' é ✓ 🚀 \u2028 \x01\x1f \x7f"


def reference_verify() -> tuple[bool, int, str, int, tuple | None]:
    """The original algorithm: Django's values, event_hash, one link at a time."""
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    for row in AuditEvent.objects.filter(seq__gte=1).order_by("seq").values_list(
            "id", "prev_hash", "hash", *MATERIAL_FIELDS):
        material = dict(zip(MATERIAL_FIELDS, row[3:], strict=True))
        problem = None
        if material["seq"] != expected_seq:
            problem = "gap"
        elif row[1] != expected_prev:
            problem = "prev"
        elif event_hash(row[1], material) != row[2]:
            problem = "content"
        if problem:
            return (False, checked, expected_prev, expected_seq - 1,
                    (material["seq"], row[0], _time_text(material["time"]), problem))
        checked, expected_prev, expected_seq = checked + 1, row[2], material["seq"] + 1
    return True, checked, expected_prev, expected_seq - 1, None


def assert_agrees() -> None:
    got = verify_chain()
    ok, checked, head_hash, head_seq, broken = reference_verify()
    assert (got.ok, got.checked, got.head_hash, got.head_seq) == (ok, checked, head_hash, head_seq)
    if broken is None:
        assert got.first_broken is None
    else:
        seq, event_id, time, problem = broken
        assert (got.first_broken.seq, got.first_broken.id, got.first_broken.time) == (
            seq, event_id, time)
        assert got.first_broken.problem.startswith(
            {"gap": "sequence gap", "prev": "prev_hash", "content": "content"}[problem])
    # and chunk boundaries change nothing
    for size in (1, 2, 3):
        assert verify_chain(chunk_size=size) == got


def _awkward_events() -> list[AuditEvent]:
    events = [
        audit_event_record(action=Action.MODEL_UPDATED, object_type="t", object_id=1,
                           object_repr=AWKWARD, model_id=7, model_name="m\tx", version_id=2**62,
                           version_label="v1", reason=AWKWARD,
                           before={"z": 1, "a": [3, 2, {"y": None, "b": "\\"}], "é": 0.1},
                           after={"quote": "\"", "nl": "a\nb", "tab": "\t", "ctl": "\x01",
                                  "big": 2**63 + 5, "neg": -(2**62), "small": 1e-7,
                                  "exp": 1.5e-300, "float": 123.456, "list": []},
                           details="just a string"),
        audit_event_record(action=Action.LOGIN, details=[1, "two", {"3": [4.25]}]),
        audit_event_record(action=Action.LOGOUT),  # every optional field empty or NULL
        audit_event_record(action=Action.AUDIT_VERIFIED, details={"ok": True, "n": 0},
                           before=True, after=False),
    ]
    return events




def test_awkward_content_verifies_like_the_reference():
    events = _awkward_events()
    result = verify_chain()
    assert result.ok and result.checked == 4 and result.head_hash == events[-1].hash
    assert_agrees()
    assert verify_chain(upto_seq=2).head_seq == 2 and verify_chain(upto_seq=2).checked == 2


def test_a_time_on_a_whole_second_verifies(monkeypatch):
    monkeypatch.setattr(services.timezone, "now", lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    audit_event_record(action=Action.LOGIN)
    monkeypatch.undo()
    audit_event_record(action=Action.LOGOUT)
    assert verify_chain().ok
    assert_agrees()


@pytest.mark.parametrize("column,value", [
    ("reason", "rewritten\twith\\escapes\n"),
    ("object_repr", AWKWARD + "!"),
    ("model_name", ""),
    ("actor_username", "someone"),
])
def test_changed_text_is_found_at_the_same_link(column, value):
    _awkward_events()
    raw_sql(f"UPDATE audits_auditevent SET {column} = %s WHERE seq = 1", [value])  # noqa: S608
    assert not verify_chain().ok
    assert_agrees()


@pytest.mark.parametrize("column,value", [
    ("model_id", None), ("model_id", 0), ("version_id", 2**62 + 1), ("seq", 9),
])
def test_changed_numbers_are_found_at_the_same_link(column, value):
    _awkward_events()
    raw_sql(f"UPDATE audits_auditevent SET {column} = %s WHERE seq = 1", [value])  # noqa: S608
    assert not verify_chain().ok
    assert_agrees()


@pytest.mark.parametrize("seq,text", [
    (1, '{"é": 0.1, "a": [3, 2, {"b": "\\\\", "y": null}], "z": 1}'),  # same value, new order
    (1, '{"z": 1}'),
    (2, "null"),  # JSON null where there was a list
    (3, '"x"'),
    (4, '{"ok": true, "n": 0.0}'),  # 0 and 0.0 differ in the canonical bytes
])
def test_changed_json_is_judged_like_the_reference(seq, text):
    _awkward_events()
    cast = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    raw_sql(f"UPDATE audits_auditevent SET details = {cast} WHERE seq = %s", [text, seq])  # noqa: S608
    assert_agrees()


def test_a_number_beyond_64_bits_is_a_broken_link_not_a_crash():
    _awkward_events()
    cast = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    raw_sql(f"UPDATE audits_auditevent SET details = {cast} WHERE seq = 2",  # noqa: S608
         ['{"n": 123456789012345678901234567890}'])
    result = verify_chain()
    assert not result.ok and result.first_broken.seq == 2
    assert result.first_broken.problem == "content does not match its hash"


def test_a_chain_broken_early_in_a_long_chunk_leaves_the_connection_usable():
    for i in range(30):
        audit_event_record(action=Action.MODEL_UPDATED, object_type="t", object_id=i)
    raw_sql("UPDATE audits_auditevent SET object_id = 'x' WHERE seq = 3")
    result = verify_chain(chunk_size=1000)
    assert not result.ok and result.first_broken.seq == 3 and result.checked == 2
    assert AuditEvent.objects.count() == 30  # the next query works
    assert_agrees()


def test_the_server_time_zone_changes_nothing(settings):
    settings.TIME_ZONE = "Pacific/Chatham"  # +12:45/+13:45: no offset hides in whole hours
    _awkward_events()
    assert verify_chain().ok
    assert_agrees()
