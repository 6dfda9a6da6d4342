"""The "Compliance dossier" section of the registry's version page, its Generate button and
one dossier's page."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
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
    dossier = services.dossier_request(user=request.user, version=obj)
    messages.success(request, "The compliance dossier is being generated.")
    return redirect("dossier:detail", dossier_id=dossier.public_id)


@page
def dossier_detail(request, dossier_id):
    """One dossier: its progress while it is built (the page reloads itself until it is
    done, so nobody has to), then its evidence instant, sha256, gaps and the download."""
    dossier = selectors.dossier_get_for_user(user=request.user, dossier_id=dossier_id)
    return render(request, "dossier/detail.html", {
        "dossier": dossier, "version": dossier.version,
        "active": dossier.status in ACTIVE_STATUSES,
        "gaps": [q for q in (dossier.snapshot or {}).get("questions", [])
                 if q.get("status") != "answered"]})
