"""Recording audit events. Services call ``audit_event_record`` inside their own
transaction, so a change and its record commit or roll back together."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.context import ActorContext, current_actor
from core.hashing import normalize_json

from .chain import MATERIAL_FIELDS, chain_head, event_hash
from .models import Action, AuditEvent

# Any constant works; it names "the audit chain head" among advisory locks.
_CHAIN_LOCK_KEY = 0x41545354  # "ATST"


def lock_chain_head() -> None:
    """Serialize appends so concurrent writers never fork the chain.

    PostgreSQL: a transaction-scoped advisory lock, released at commit.
    SQLite: transactions are BEGIN IMMEDIATE (settings), so the database write
    lock is already held by the time we read the head.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])


def audit_event_record(
    *,
    action: Action | str,
    obj: Any = None,
    object_type: str = "",
    object_id: str | int = "",
    object_repr: str = "",
    model_id: int | None = None,
    model_name: str = "",
    version_id: int | None = None,
    version_label: str = "",
    before: Any = None,
    after: Any = None,
    details: Any = None,
    reason: str = "",
    actor: ActorContext | None = None,
) -> AuditEvent:
    """Append one event to the chain and return it.

    Call it inside the transaction that makes the change. ``obj`` (a model
    instance) fills object type, id and repr unless given explicitly.
    """
    if action not in Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    ctx = actor or current_actor()
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or obj.pk
        object_repr = object_repr or str(obj)
    with transaction.atomic():
        lock_chain_head()
        seq, prev_hash = chain_head()
        event = AuditEvent(
            seq=seq + 1,
            # microsecond precision survives every backend, so the hash re-computes
            time=timezone.now(),
            actor_id=ctx.user_id,
            actor_username=ctx.username,
            actor_name=ctx.display_name[:300],
            via=ctx.via,
            action=str(action),
            object_type=object_type,
            object_id=str(object_id),
            object_repr=str(object_repr)[:300],
            model_id=model_id,
            model_name=model_name,
            version_id=version_id,
            version_label=str(version_label),
            before=normalize_json(before),
            after=normalize_json(after),
            details=normalize_json(details),
            reason=reason,
            request_id=ctx.request_id,
            remote_addr=ctx.remote_addr or "",
            prev_hash=prev_hash,
        )
        material = {name: getattr(event, name) for name in MATERIAL_FIELDS}
        event.hash = event_hash(prev_hash, material)
        event.save(force_insert=True)
    return event
