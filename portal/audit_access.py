"""Who may read which part of the audit trail, and parsing the trail's filters.

Admins and global auditors read every event; other users read the events of
models on which they hold ``view_audit``. Shared by the API and the pages.
"""

from __future__ import annotations

from datetime import datetime

from audits.models import Action
from audits.selectors import EventFilters
from core.errors import ErrorItem, PermissionDenied, ValidationFailed
from core.moments import parse_moment
from registry.roles import Capability, is_global_admin, is_global_auditor
from registry.selectors import model_list_for_user


def audit_scope(user) -> set[int] | None:
    """Model ids whose events the user may read; None for every event."""
    if is_global_admin(user) or is_global_auditor(user):
        return None
    ids = set(model_list_for_user(user=user, capability=Capability.VIEW_AUDIT)
              .values_list("pk", flat=True))
    if not ids:
        raise PermissionDenied("Reading the audit trail needs the view_audit permission.",
                               code="permission_denied")
    return ids


def _when(value: str, field: str, *, end: bool, problems: list[ErrorItem]) -> datetime | None:
    try:
        return parse_moment(value, field=field, end_of_day=end, default_now=False)
    except ValidationFailed as exc:
        problems.extend(exc.items)
        return None


def parse_event_filters(params, *, user) -> EventFilters:
    """Filters from query parameters: model, version, actor, action, since, until."""
    problems: list[ErrorItem] = []
    model_id = None
    name = (params.get("model") or "").strip()
    if name:
        model = model_list_for_user(user=user).filter(name=name).first()
        if model is None:
            problems.append(ErrorItem("unknown_model", f"No model named '{name}'.", "model"))
        else:
            model_id = model.pk
    version = (params.get("version") or "").strip()
    if version and not version.startswith("v"):
        version = f"v{version}"
    if version and not name:
        problems.append(ErrorItem("invalid", "version filters need a model.", "version"))
    action = (params.get("action") or "").strip()
    if action and action not in Action.values:
        problems.append(ErrorItem("unknown_action", f"Unknown action '{action}'.", "action"))
    since = _when((params.get("since") or "").strip(), "since", end=False, problems=problems)
    until = _when((params.get("until") or "").strip(), "until", end=True, problems=problems)
    if problems:
        raise ValidationFailed(items=problems)
    return EventFilters(model_id=model_id, version_label=version or None,
                        actor=(params.get("actor") or "").strip() or None, action=action or None,
                        since=since, until=until)


def parse_cursor(value) -> int | None:
    if value in (None, ""):
        return None
    try:
        cursor = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed("cursor must be the number from the previous page's next link.",
                               code="invalid_cursor", field="cursor") from None
    if cursor < 1:
        raise ValidationFailed("cursor must be positive.", code="invalid_cursor", field="cursor")
    return cursor
