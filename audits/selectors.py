"""Reads of the audit trail. Callers pass the set of model ids the user may audit
(None: every event); this app knows nothing of models or permissions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet, Subquery

from .models import AuditEvent

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class EventFilters:
    model_id: int | None = None
    version_label: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in self.__dict__.items() if v not in (None, "")}


def audit_event_queryset(*, visible_model_ids: set[int] | None,
                         filters: EventFilters) -> QuerySet[AuditEvent]:
    """Events the caller may see, filtered, newest first.

    Every filter maps to an indexed column; pagination is by ``seq`` (keyset),
    so the thousandth page costs what the first does.
    """
    qs = AuditEvent.objects.all()
    if visible_model_ids is not None:
        qs = qs.filter(model_id__in=visible_model_ids)
    if filters.model_id is not None:
        qs = qs.filter(model_id=filters.model_id)
    if filters.version_label:
        qs = qs.filter(version_label=filters.version_label)
    if filters.actor:
        qs = qs.filter(Q(actor_username=filters.actor))
    if filters.action:
        qs = qs.filter(action=filters.action)
    if filters.since:
        qs = qs.filter(time__gte=filters.since)
    if filters.until:
        qs = qs.filter(time__lt=filters.until)
        # Every event of the window has a seq at most the window's last one. Saying so lets
        # the page start there instead of walking back from the newest event through all
        # later ones: that last seq comes from an index-only scan of (seq, time)
        # (migration 0006). The result is the same; the time filters still decide.
        window = AuditEvent.objects.filter(time__lt=filters.until)
        if filters.since:
            window = window.filter(time__gte=filters.since)
        qs = qs.filter(seq__lte=Subquery(window.order_by("-seq").values("seq")[:1]))
    return qs.order_by("-seq")


def audit_event_page(qs: QuerySet[AuditEvent], *, before_seq: int | None,
                     size: int = PAGE_SIZE) -> tuple[list[AuditEvent], int | None]:
    """One page older than ``before_seq``; returns (events, cursor for the next page)."""
    size = max(1, min(size, MAX_PAGE_SIZE))
    if before_seq is not None:
        qs = qs.filter(seq__lt=before_seq)
    rows = list(qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].seq if more and rows else None)


def audit_event_get(*, visible_model_ids: set[int] | None, event_id: int) -> AuditEvent | None:
    qs = AuditEvent.objects.filter(pk=event_id)
    if visible_model_ids is not None:
        qs = qs.filter(model_id__in=visible_model_ids)
    return qs.first()


def audit_event_diff(event: AuditEvent) -> list[dict]:
    """Rows of (key, before, after, changed) for the event's before/after objects."""
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    keys = sorted(set(before) | set(after))
    return [{"key": k, "before": before.get(k), "after": after.get(k),
             "changed": before.get(k) != after.get(k)} for k in keys]


def audit_events_for_object(*, object_type: str, object_id: str | int) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(object_type=object_type, object_id=str(object_id))


def audit_events_for_model(*, model_id: int) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(model_id=model_id).order_by("-seq")
