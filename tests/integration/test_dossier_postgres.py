"""The dossier's evidence snapshot on PostgreSQL: when the build opens the transaction, the
reads run under REPEATABLE READ, so a write committed meanwhile by another connection is
not in what the dossier states (one instant, as the cover says)."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.utils import timezone

from dossier import evidence

from ..inference.helpers import released_version

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _commit_elsewhere(username: str) -> None:
    """A user created and committed by another connection (its own thread)."""
    def write():
        try:
            get_user_model().objects.create(username=username)
        finally:
            connections.close_all()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()


def _isolation() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW transaction_isolation")
        return cursor.fetchone()[0]


def test_the_snapshot_reads_one_instant_under_repeatable_read(personas, monkeypatch):
    assert connection.vendor == "postgresql"
    version = released_version(personas, confidence_threshold=0.6)
    seen: dict = {}
    original = evidence._read

    def read(*args):
        seen["isolation"] = _isolation()
        users = get_user_model().objects
        seen["before"] = users.count()  # the transaction's snapshot is taken here
        _commit_elsewhere("late-writer")
        seen["during"] = users.filter(username="late-writer").exists()
        return original(*args)

    monkeypatch.setattr(evidence, "_read", read)
    snapshot = evidence.evidence_snapshot(version=version, at=timezone.now())
    assert snapshot["cover"]["version"] == version.number
    assert seen["isolation"] == "repeatable read"
    assert seen["during"] is False  # committed meanwhile, not in the snapshot's reads
    # ... and committed for everyone after it
    assert get_user_model().objects.filter(username="late-writer").exists()


def test_inside_a_callers_transaction_the_reads_share_its_isolation(personas, monkeypatch):
    """SET TRANSACTION must be a transaction's first statement: inside a caller's atomic
    block the snapshot does not try (it would fail) and reads at the caller's level."""
    from django.db import transaction

    version = released_version(personas, confidence_threshold=0.6)
    seen: dict = {}
    original = evidence._read

    def read(*args):
        seen["isolation"] = _isolation()
        return original(*args)

    monkeypatch.setattr(evidence, "_read", read)
    with transaction.atomic():
        get_user_model().objects.count()
        evidence.evidence_snapshot(version=version, at=timezone.now())
    assert seen["isolation"] == "read committed"
