"""The "Compliance dossier" section of the registry's version page, its Generate button,
one dossier's page and the IRB's signature of it."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import ApplicationError, NotFound, PermissionDenied
from core.pages import page_view
from registry.selectors import version_get_for_user

from . import selectors, services
from .crossref import crossref_summary
from .forms import DossierReviewForm
from .models import ACTIVE_STATUSES

page = page_view("registry:model-list")
VISIBLE = ("decision", "comment", "password")
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
    done, so nobody has to), then its evidence instant, sha256, gaps and the download, the
    signatures covering it and, for the IRB, the sign form."""
    dossier = selectors.dossier_get_for_user(user=request.user, dossier_id=dossier_id)
    return _detail(request, dossier)


def _detail(request, dossier, form: DossierReviewForm | None = None):
    signatures = selectors.dossier_signatures(dossier=dossier)
    signed = any(s["signer"] == request.user.get_username() for s in signatures)
    if form is None and not signed and services.may_sign(user=request.user, dossier=dossier):
        form = DossierReviewForm(initial={"sha256": dossier.sha256,
                                          "content_hash": dossier.version.content_hash})
    return render(request, "dossier/detail.html", {
        "dossier": dossier, "version": dossier.version,
        "active": dossier.status in ACTIVE_STATUSES,
        "gaps": [q for q in (dossier.snapshot or {}).get("questions", [])
                 if q.get("status") != "answered"],
        "crossref": crossref_summary(dossier.snapshot),
        "signatures": signatures, "signed_by_you": signed,
        "review_meaning": services.REVIEW_MEANING, "sign_form": form})


@page
@require_POST
def dossier_sign(request, dossier_id):
    """The IRB signs the dossier (password re-entered); back to its page, or the page again
    with the form's errors. A reader who may not sign is sent back with the reason."""
    dossier = selectors.dossier_get_for_user(user=request.user, dossier_id=dossier_id)
    form = DossierReviewForm(request.POST)
    if form.is_valid():
        try:
            signature = services.dossier_review_sign(user=request.user, dossier=dossier,
                                                     **form.cleaned_data)
        except (NotFound, PermissionDenied):
            raise  # the page's wrapper: 404, or back with the reason
        except ApplicationError as exc:
            # Next to the field the signer typed; the rest (the dossier changed, is not
            # completed, is already signed) above the form.
            for item in exc.items:
                shown = item.field if item.field in VISIBLE else None
                form.add_error(shown, item.message)
        else:
            messages.success(request, f"Signed: {signature.meaning} — {signature.decision}, "
                             f"bound to dossier sha256 {signature.document_sha256[:12]}… and "
                             f"content hash {signature.content_hash[:12]}…")
            return redirect("dossier:detail", dossier_id=dossier.public_id)
    return _detail(request, dossier, form)
