"""Explanation sections of the registry's version and review pages, and the button that
asks for a version's figures."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from core.pages import page_view
from registry.roles import Capability
from registry.selectors import require_capability, user_capabilities, version_get_for_user

from . import selectors, services
from .models import JobStatus
from .present import importance_chart

page = page_view("registry:model-list")


def version_figures_context(*, user, version) -> dict:
    """The figures (or their progress) of a version for its pages."""
    row = selectors.version_explanation_latest(version=version)
    job = None if row is not None else selectors.version_job_latest(version=version)
    chart = None
    if row is not None:
        gi = row.content["global_importance"]
        chart = importance_chart(gi["features"], units=gi["units"],
                                 chart_id=f"gi-{version.pk}")
    caps = user_capabilities(user=user, model=version.model)
    return {"version": version, "figures": row, "content": row.content if row else None,
            "job": job, "chart": chart,
            "running": job is not None and job.status in (JobStatus.QUEUED, JobStatus.RUNNING),
            "percent": (round(100 * job.progress_done / job.progress_total)
                        if job is not None and job.progress_total else 0),
            "may_request": Capability.SUBMIT_VERSION in caps and version.state != "draft"}


def version_section(request, version, page_name: str) -> dict | None:
    """registry.extensions section: global importance and reliability (or progress)."""
    if version.state == "draft":
        return None
    return {"template": "explain/_version_figures.html",
            "context": {**version_figures_context(user=request.user, version=version),
                        "page": page_name}}


@page
@require_POST
def version_figures_request(request, model, version):
    """Ask for a version's figures again when none are stored (or their job failed)."""
    obj = version_get_for_user(user=request.user, model_name=model, number=version)
    require_capability(user=request.user, model=obj.model, capability=Capability.SUBMIT_VERSION)
    job = services.version_explanation_request(version=obj, user=request.user)
    if job is None:
        messages.info(request, "The explanation figures are computed already.")
    else:
        messages.success(request, "The explanation figures are being computed.")
    return redirect("registry:version-detail", model=obj.model.name, version=obj.number)
