"""Scheduled integrity check of the audit chain (Celery beat runs it hourly)."""

from __future__ import annotations

from celery import shared_task

from core.context import acting_as

from .chain import verify_chain
from .models import Action
from .reconcile import reconcile
from .services import audit_event_record


@shared_task(name="audits.verify_chain", acks_late=True)
def verify_audit_chain() -> dict:
    """Recompute the chain, reconcile the rows with it, record the outcome as an event."""
    outcome = verify_chain().as_dict() | {"reconciliation": reconcile().as_dict(limit=50)}
    with acting_as(None, via="task"):
        audit_event_record(action=Action.AUDIT_VERIFIED, object_type="audits.chain",
                           object_repr="audit chain", details=outcome)
    return outcome


@shared_task(name="audits.checkpoint", acks_late=True)
def write_audit_checkpoint() -> dict:
    """Sign the chain's head (Celery beat runs it daily)."""
    from .checkpoints import audit_checkpoint_write

    with acting_as(None, via="task"):
        return audit_checkpoint_write().payload | {"marks": None}
