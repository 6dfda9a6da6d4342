"""E-mail to signers when a version awaits their sign-off (console backend in the demo)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mass_mail

from .models import ModelAccessGrant, ModelVersion
from .roles import signing_roles

log = logging.getLogger(__name__)


def notify_signers(*, version_id: int) -> int:
    version = ModelVersion.objects.select_related("model", "submitted_by").get(pk=version_id)
    messages = []
    for meaning in version.signoff_policy:
        # Neither the registrant nor the submitter may sign (registry.duties).
        grants = (ModelAccessGrant.objects.filter(model=version.model,
                                                  role__in=signing_roles(meaning))
                  .exclude(user_id__in=[version.submitted_by_id, version.created_by_id])
                  .select_related("user"))
        for grant in grants:
            if not grant.user.email or not grant.user.is_active:
                continue
            messages.append((
                f"[Attest] {version.model.name} v{version.number} awaits your {meaning}",
                f"{version.submitted_by.get_full_name() or version.submitted_by.username} "
                f"submitted {version.model.name} v{version.number} for release.\n\n"
                f"Sign-off needed: {meaning} (as {grant.get_role_display()}).\n"
                f"Content hash: {version.content_hash}\n\n"
                f"Review it at /models/{version.model.name}/versions/{version.number}/review/\n",
                settings.DEFAULT_FROM_EMAIL, [grant.user.email]))
    if not messages:
        return 0
    try:
        return send_mass_mail(messages, fail_silently=False)
    except OSError as exc:  # mail is a courtesy: the dashboard lists what awaits signers
        log.warning("could not send sign-off notifications for %s: %s", version, exc)
        return 0
