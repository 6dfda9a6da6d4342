"""Sign-in events. Django's auth signals are the only hook into its login flow,
so these two receivers are the one place Attest records events from signals."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from audits.models import Action
from audits.services import audit_event_record
from core.context import context_for_user, current_actor


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    ctx = current_actor()
    actor = context_for_user(user, via=ctx.via or "web", request_id=ctx.request_id,
                             remote_addr=ctx.remote_addr)
    audit_event_record(action=Action.LOGIN, obj=user, object_repr=user.get_username(), actor=actor)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    # Attempts refused during a lock are recorded apart, so they do not extend it.
    locked = getattr(request, "attest_login_locked", False)
    audit_event_record(action=Action.LOGIN_THROTTLED if locked else Action.LOGIN_FAILED,
                       object_type="auth.user", object_repr=username,
                       details={"username": username})
