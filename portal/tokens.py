"""Services for personal API tokens: create (shown once), authenticate, revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.context import actor_with_user
from core.errors import NotFound, ValidationFailed
from registry.roles import AUDITORS_GROUP

from .models import ApiToken

TOKEN_PREFIX = "att_"  # noqa: S105 - a public prefix, not a secret
TOKEN_TOUCH_SECONDS = 60  # last_used_at is written at most this often per token


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def api_token_create(*, user, name: str, days: int | None = None) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the secret (never stored)."""
    name = (name or "").strip() or "API token"
    if len(name) > 100:
        raise ValidationFailed("Token name must be at most 100 characters.", field="name")
    days = days or settings.ATTEST_TOKEN_DAYS
    if not 1 <= days <= 366:
        raise ValidationFailed("Token lifetime must be between 1 and 366 days.", field="days")
    prefix = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        row = ApiToken.objects.create(user=user, name=name, prefix=prefix, token_hash=_digest(token),
                                      expires_at=timezone.now() + timedelta(days=days))
        audit_event_record(action=Action.TOKEN_CREATED, obj=row, actor=actor_with_user(user),
                           details={"name": name, "expires_at": row.expires_at.isoformat()})
    return row, token


def _token_with_user(prefix: str) -> ApiToken | None:
    """The token with its user, and whether that user is a global auditor (the one group
    every authorization asks about) in the same query, kept where ``is_global_auditor``
    reads it for the rest of the request."""
    in_auditors = Group.objects.filter(user=OuterRef("user_id"), name=AUDITORS_GROUP)
    try:
        row = (ApiToken.objects.select_related("user")
               .annotate(user_is_auditor=Exists(in_auditors)).get(prefix=prefix))
    except ApiToken.DoesNotExist:
        return None
    row.user._attest_is_auditor = row.user_is_auditor
    return row


def api_token_authenticate(raw: str) -> ApiToken | None:
    """The active token matching ``raw``, or None. Records first use as an event."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    parts = raw[len(TOKEN_PREFIX):].split("_", 1)
    if len(parts) != 2:
        return None
    row = _token_with_user(parts[0])
    if row is None or not hmac.compare_digest(row.token_hash, _digest(raw)):
        return None
    if not row.is_active or not row.user.is_active:
        return None
    now = timezone.now()
    if row.last_used_at is None:
        with transaction.atomic():
            first = ApiToken.objects.filter(pk=row.pk, last_used_at__isnull=True).update(
                last_used_at=now)
            if first:
                audit_event_record(action=Action.TOKEN_FIRST_USE, obj=row,
                                   object_repr=str(row), actor=actor_with_user(row.user))
    elif (now - row.last_used_at).total_seconds() > TOKEN_TOUCH_SECONDS:
        # Coarse last-used time: one write a minute per token, not one per request.
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    row.last_used_at = now
    return row


def api_token_revoke(*, user, token_id: int) -> ApiToken:
    with transaction.atomic():
        row = ApiToken.objects.select_for_update().filter(pk=token_id, user=user).first()
        if row is None:
            raise NotFound("No such token.")
        if row.revoked_at is None:
            row.revoked_at = timezone.now()
            row.save(update_fields=["revoked_at"])
            audit_event_record(action=Action.TOKEN_REVOKED, obj=row)
    return row
