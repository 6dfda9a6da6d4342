"""The "Compliance dossier" section of the registry's version page and its Generate button."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from core.pages import page_view
from registry.selectors import version_get_for_user

from . import selectors, services
from .models import ACTIVE_STATUSES

page = page_view("registry:model-list")
SHOWN = 10


def version_section(request, version, page_name: str) -> dict | None:
    """registry.extensions section (version page only): the version's dossiers for those
    who may read them, and the button for those who may generate one."""
    if page_name != "version" or version.state == "draft":
        return None
    user = request.user
    may_read = services.may_read(user=user, version=version)
    may_generate = services.may_generate(user=user, version=version)
    if not (may_read or may_generate):
        return None
    rows = list(selectors.dossiers_for_version(user=user, version=version)[:SHOWN])
    return {"template": "dossier/_version_section.html",
            "context": {"version": version, "dossiers": rows, "may_generate": may_generate,
                        "running": any(d.status in ACTIVE_STATUSES for d in rows)}}


@page
@require_POST
def dossier_generate(request, model, version):
    obj = version_get_for_user(user=request.user, model_name=model, number=version)
    services.dossier_request(user=request.user, version=obj)
    messages.success(request, "The compliance dossier is being generated.")
    return redirect(f"/models/{obj.model.name}/versions/{obj.number}/#dossiers")
