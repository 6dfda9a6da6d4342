"""Navigation by role for the base layout."""

from __future__ import annotations

from monitoring.selectors import model_banner
from registry.roles import Capability, can_create_models, is_global_admin, is_global_auditor
from registry.selectors import model_list_for_user

# Pages of one model (their URLs carry its name) that show its monitoring banner; the
# monitoring page itself shows the alerts in full.
BANNER_NAMESPACES = {"registry", "inference", "batches"}


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": []}
    nav = [("Models", "registry:model-list"), ("Datasets", "registry:dataset-list")]
    if model_list_for_user(user=user, capability=Capability.PREDICT).exists():
        nav.append(("My predictions", "inference:my-predictions"))
    if model_list_for_user(user=user, capability=Capability.REVIEW).exists():
        nav.append(("Review queue", "inference:review-queue"))
    if is_global_admin(user) or is_global_auditor(user) or model_list_for_user(
            user=user, capability=Capability.VIEW_AUDIT).exists():
        nav.append(("Audit trail", "audit-events"))
    if is_global_admin(user) or can_create_models(user):
        nav.append(("Trusted types", "registry:trusted-types"))
    nav.append(("API", "api-docs"))
    return {
        "nav": nav,
        "nav_roles": {
            "admin": is_global_admin(user),
            "auditor": is_global_auditor(user),
            "can_create_models": can_create_models(user),
        },
    }


def monitoring_banner(request):
    """Open monitoring alerts (and a retraining signal) of the model a page is about."""
    user = getattr(request, "user", None)
    match = getattr(request, "resolver_match", None)
    if user is None or not user.is_authenticated or match is None:
        return {}
    name = match.kwargs.get("model")
    if not name or match.namespace not in BANNER_NAMESPACES:
        return {}
    return {"monitoring_banner": model_banner(user=user, model_name=name)}
