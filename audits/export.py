"""Serializing audit events for the API, the pages and exports (CSV, JSON)."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator

from django.http import StreamingHttpResponse

from core import csvcells
from core.errors import ValidationFailed
from core.hashing import canonical_json

from .access import audit_scope, parse_event_filters
from .chain import chain_head
from .models import Action, AuditEvent
from .selectors import audit_event_queryset
from .services import audit_event_record

# Every field the chain hashes is exported (the ids too), so an export can be
# re-hashed offline (`attest audit verify --export`) without the database.
EXPORT_FIELDS = ("seq", "id", "time", "actor_id", "actor_username", "actor_name", "via",
                 "action", "object_type", "object_id", "object_repr", "model_id", "model_name",
                 "version_id", "version_label", "before", "after", "details", "reason",
                 "request_id", "remote_addr", "prev_hash", "hash")


def event_as_dict(event: AuditEvent) -> dict:
    return {
        "id": event.pk, "seq": event.seq, "time": event.time.isoformat(),
        "actor": event.actor_username or None, "actor_id": event.actor_id,
        "actor_name": event.actor_name, "via": event.via,
        "action": event.action, "action_label": event.action_label,
        "object_type": event.object_type, "object_id": event.object_id,
        "object_repr": event.object_repr, "model": event.model_name or None,
        "model_id": event.model_id, "version": event.version_label or None,
        "version_id": event.version_id, "before": event.before, "after": event.after,
        "details": event.details, "reason": event.reason, "request_id": event.request_id,
        "remote_addr": event.remote_addr or None, "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


class _Echo:
    def write(self, value):
        return value


def csv_rows(events: Iterator[AuditEvent]) -> Iterator[str]:
    """CSV text row by row (streamed), JSON columns in canonical form, text that a
    spreadsheet would run as a formula neutralised (core.csvcells)."""
    writer = csvcells.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for event in events:
        row = []
        for name in EXPORT_FIELDS:
            value = getattr(event, "pk" if name == "id" else name)
            if name in ("before", "after", "details"):
                value = "" if value is None else canonical_json(value)
            elif name == "time":
                value = value.isoformat()
            row.append(value)
        yield writer.writerow(row)


def json_document(events: Iterator[AuditEvent], *, head: tuple[int, str],
                  filters: dict) -> Iterator[str]:
    """A JSON export streamed in pieces: header with the chain head, then events."""
    import json

    yield '{"chain_head": ' + json.dumps({"seq": head[0], "hash": head[1]})
    yield ', "filters": ' + json.dumps(filters) + ', "events": ['
    first = True
    for event in events:
        yield ("" if first else ",") + "\n" + json.dumps(event_as_dict(event), ensure_ascii=False)
        first = False
    yield "\n]}\n"


def csv_text(events: list[AuditEvent]) -> str:
    out = io.StringIO()
    for line in csv_rows(iter(events)):
        out.write(line)
    return out.getvalue()


def _started(events: Iterator[AuditEvent]) -> Iterator[AuditEvent]:
    """The same events, the first one already read (so the query has run)."""
    first = next(events, None)
    return events if first is None else itertools.chain((first,), events)


def audit_export_response(request, user, params):
    """Streamed CSV or JSON of the filtered events; the export itself is an event."""
    scope = audit_scope(user)
    filters = parse_event_filters(params, user=user)
    fmt = params.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise ValidationFailed("format must be csv or json.", field="format")
    head = chain_head()
    # The query runs (its first rows are read) before the export is recorded and before
    # the response starts: once a streamed 200 has begun, a failure can only cut the
    # file short, an export that looks complete and was recorded as made.
    events = _started(audit_event_queryset(visible_model_ids=scope, filters=filters).filter(
        seq__lte=head[0]).iterator(chunk_size=5000))
    audit_event_record(action=Action.AUDIT_EXPORTED, object_type="audits.export",
                       object_repr=f"{fmt} export", details={"filters": filters.as_dict(),
                                                             "format": fmt,
                                                             "chain_head_seq": head[0]})
    name = f"attest-audit-head-{head[0]}-{head[1][:12]}.{fmt}"
    if fmt == "csv":
        response = StreamingHttpResponse(csv_rows(events), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(json_document(events, head=head,
                                                       filters=filters.as_dict()),
                                         content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Attest-Chain-Head"] = f"{head[0]} {head[1]}"
    return response
