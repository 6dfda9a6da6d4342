"""verify_chain on PostgreSQL split between this process and helper processes.

The helpers read over their own connections, so the events must be committed:
these tests use the transactional database. The range size is lowered so a few
dozen events make several ranges; every verdict must equal one walk from the start.
"""

from __future__ import annotations

import logging
import sys

import pytest

from audits import chain
from audits.chain import verify_chain
from audits.models import Action, AuditEvent
from audits.services import audit_event_record

from ..audits.helpers import raw_sql

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def small_ranges(monkeypatch):
    monkeypatch.setattr(chain, "MIN_EVENTS_PER_PROCESS", 10)
    started = []
    original = chain._Helper.result

    def result(self):
        walk = original(self)
        started.append(walk)
        return walk

    monkeypatch.setattr(chain._Helper, "result", result)
    return started


def _append(n: int) -> None:
    for i in range(n):
        audit_event_record(action=Action.MODEL_UPDATED, object_type="test.thing", object_id=i,
                           details={"i": i, "note": "tab\there, é ✓", "nested": {"b": 1, "a": [i]}})




def test_an_untouched_chain_verifies_in_three_processes(small_ranges):
    _append(45)
    one = verify_chain(processes=1)
    three = verify_chain(processes=3)
    assert one.ok and one.checked == 45
    assert three == one
    assert len(small_ranges) == 2 and all(w is not None and w.ok for w in small_ranges), \
        "two helpers walked their ranges"
    assert verify_chain(processes=3, upto_seq=31) == verify_chain(processes=1, upto_seq=31)
    assert verify_chain(processes=3, upto_seq=31).head_seq == 31


@pytest.mark.parametrize("seq", [3, 16, 17, 30, 44])
def test_tampering_in_any_range_is_reported_as_one_walk_reports_it(small_ranges, seq):
    _append(45)
    raw_sql("UPDATE audits_auditevent SET reason = 'edited' WHERE seq = %s", [seq])
    one, three = verify_chain(processes=1), verify_chain(processes=3)
    assert not one.ok and one.first_broken.seq == seq
    assert three == one


@pytest.mark.parametrize("seq", [15, 16, 31])
def test_a_deleted_event_at_a_range_boundary_is_a_gap(small_ranges, seq):
    _append(45)
    raw_sql("DELETE FROM audits_auditevent WHERE seq = %s", [seq])
    one, three = verify_chain(processes=1), verify_chain(processes=3)
    assert not one.ok and "sequence gap" in one.first_broken.problem
    assert three == one


def test_a_helper_that_cannot_run_is_replaced_by_walking_its_range_here(
        small_ranges, monkeypatch, caplog):
    _append(30)
    raw_sql("UPDATE audits_auditevent SET details = '{\"i\": 0}' WHERE seq = 25")
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with caplog.at_level(logging.WARNING, logger="audits.chain"):
        result = verify_chain(processes=3)
    assert result == verify_chain(processes=1)
    assert not result.ok and result.first_broken.seq == 25
    assert "walking it here" in caplog.text
    assert AuditEvent.objects.count() == 30
