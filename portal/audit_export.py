"""Serializing audit events for the API, the pages and exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from audits.models import AuditEvent
from core.hashing import canonical_json

EXPORT_FIELDS = ("seq", "id", "time", "actor_username", "actor_name", "via", "action",
                 "object_type", "object_id", "object_repr", "model_name", "version_label",
                 "before", "after", "details", "reason", "request_id", "remote_addr",
                 "prev_hash", "hash")


def event_as_dict(event: AuditEvent) -> dict:
    return {
        "id": event.pk, "seq": event.seq, "time": event.time.isoformat(),
        "actor": event.actor_username or None, "actor_name": event.actor_name, "via": event.via,
        "action": event.action, "action_label": event.get_action_display(),
        "object_type": event.object_type, "object_id": event.object_id,
        "object_repr": event.object_repr, "model": event.model_name or None,
        "version": event.version_label or None, "before": event.before, "after": event.after,
        "details": event.details, "reason": event.reason, "request_id": event.request_id,
        "remote_addr": event.remote_addr or None, "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


class _Echo:
    def write(self, value):
        return value


def csv_rows(events: Iterator[AuditEvent]) -> Iterator[str]:
    """CSV text row by row (streamed), JSON columns in canonical form."""
    writer = csv.writer(_Echo())
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
