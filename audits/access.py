"""Who may read which part of the audit trail, and parsing the trail's filters.

Admins and global auditors read every event; other users read the events of
models on which they hold ``view_audit``. Shared by the API and the pages.

The trail refers to models by id only and imports no domain app, so which
models a user may audit is answered by a *model directory* that the registry
registers at start-up (``register_model_directory``, called from
``registry.apps``): the registry's own selectors stay the one authorization rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.errors import ErrorItem, PermissionDenied, ValidationFailed
from core.moments import parse_moment

from .models import Action
from .selectors import EventFilters


class ModelDirectory(Protocol):
    """What the trail asks of the registry about a user."""

    def reads_whole_trail(self, user) -> bool:
        """Admins and global auditors."""

    def auditable_model_ids(self, user) -> set[int]:
        """Models on which the user holds view_audit."""

    def visible_model_id(self, user, name: str) -> int | None:
        """The id of the named model if the user may view it."""

    def administers(self, user) -> bool:
        """Admins: they may sign a checkpoint on demand."""


_directory: ModelDirectory | None = None


def register_model_directory(directory: ModelDirectory) -> None:
    global _directory
    _directory = directory


def model_directory() -> ModelDirectory:
    if _directory is None:
        raise RuntimeError("no model directory registered (registry.apps registers it)")
    return _directory


def audit_scope(user) -> set[int] | None:
    """Model ids whose events the user may read; None for every event."""
    directory = model_directory()
    if directory.reads_whole_trail(user):
        return None
    ids = directory.auditable_model_ids(user)
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
        model_id = model_directory().visible_model_id(user, name)
        if model_id is None:
            problems.append(ErrorItem("unknown_model", f"No model named '{name}'.", "model"))
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


def audit_scope_global(user) -> None:
    """Checkpoints cover the whole trail: admins and global auditors only."""
    if not model_directory().reads_whole_trail(user):
        raise PermissionDenied("Checkpoints cover the whole trail: admins and auditors only.")


def audit_checkpoint_signer(user) -> None:
    """Signing a checkpoint on demand is for administrators; the scheduler signs one
    daily. Auditors read and download checkpoints, and verify against them: a checkpoint
    vouches for the server, so those who check the server do not make it."""
    if not model_directory().administers(user):
        raise PermissionDenied("Checkpoints are signed by the scheduler and by "
                               "administrators; auditors download and verify them.")
