"""Monitoring pages: the monitoring page of a model, running it now, its policy, and
uploading outcomes. Each view parses, calls one service or selector, renders."""

from __future__ import annotations

import json

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import ApplicationError, NotFound, PermissionDenied
from core.pages import page_view
from core.uploads import upload_limit_message
from registry.roles import Capability
from registry.selectors import model_get_for_user, version_get_for_user

from . import selectors, services
from .forms import OutcomeUploadForm, PolicyForm
from .health import SPECS
from .models import OutcomeSource

page = page_view("registry:model-list")


def _monitoring_url(model: str, version=None) -> str:
    from django.urls import reverse

    url = reverse("monitoring:page", kwargs={"model": model})
    return f"{url}?version={version}" if version else url


@page
def monitoring_page(request, model):
    try:
        view = selectors.monitoring_view(user=request.user, model_name=model, params=request.GET)
    except (NotFound, PermissionDenied):
        raise
    except ApplicationError as exc:  # a bad window or version: the page without it
        messages.error(request, exc.message)
        return redirect("monitoring:page", model=model)
    caps = view["caps"]
    policy_form = None
    if selectors.can_run(caps):
        policy_form = PolicyForm(initial={
            "thresholds": json.dumps(view["policy"]["thresholds"], indent=2)
            if view["policy"]["thresholds"] else "",
            "subgroups": json.dumps(view["policy"]["subgroups"], indent=2, ensure_ascii=False)
            if view["policy"]["subgroups"] else "",
            "cpu_hour_price": view["policy"]["cpu_hour_price"] or ""})
    return render(request, "monitoring/page.html", {
        **view, "charts": selectors.monitoring_charts(view, feature=request.GET.get("feature")),
        "can_run": selectors.can_run(caps), "can_record": selectors.can_record_outcomes(caps),
        "policy_form": policy_form, "specs": SPECS,
        "since": request.GET.get("since", ""), "until": request.GET.get("until", ""),
        "feature": request.GET.get("feature", "")})


@page
@require_POST
def monitoring_run_now(request, model):
    obj = model_get_for_user(user=request.user, name=model)
    number = request.POST.get("version", "")
    version = version_get_for_user(user=request.user, model_name=obj.name, number=number)
    run = services.monitoring_run_for_user(user=request.user, version=version)
    messages.success(request, f"Monitoring of v{version.number} computed now "
                     f"({run.duration_ms:.0f} ms).")
    return redirect(_monitoring_url(obj.name, version.number))


@page
@require_POST
def monitoring_policy(request, model):
    obj = model_get_for_user(user=request.user, name=model,
                             capability=Capability.REGISTER_VERSION)
    form = PolicyForm(request.POST)
    if not form.is_valid():
        for name, errors in form.errors.items():
            messages.error(request, f"{form.fields[name].label}: {' '.join(errors)}")
        return redirect("monitoring:page", model=obj.name)
    try:
        services.monitoring_policy_update(user=request.user, model=obj, **form.cleaned_data)
    except PermissionDenied:
        raise
    except ApplicationError as exc:
        for item in exc.items:
            messages.error(request, f"{item.field}: {item.message}" if item.field
                           else item.message)
    else:
        messages.success(request, "Monitoring policy saved; it applies from the next run.")
    return redirect("monitoring:page", model=obj.name)


@page
@require_http_methods(["GET", "POST"])
def outcomes_upload(request, model):
    obj = model_get_for_user(user=request.user, name=model,
                             capability=Capability.RECORD_OUTCOMES)
    form = OutcomeUploadForm(request.POST or None, request.FILES or None)
    problems = []
    if request.method == "POST":
        if getattr(request, "upload_too_large", False):
            form.add_error(None, upload_limit_message())
        elif form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                rows, digest = services.outcome_rows_from_csv(upload)
                recorded = services.outcomes_record(
                    user=request.user, model=obj, rows=rows, source=OutcomeSource.CSV,
                    file_name=upload.name, sha256=digest)
            except PermissionDenied:
                raise
            except ApplicationError as exc:
                problems = exc.items
                form.add_error(None, "Nothing was recorded: correct the rows listed below and "
                               "upload the file again." if len(problems) > 1 or (
                                   problems and problems[0].field != "file")
                               else problems[0].message)
            else:
                messages.success(request, f"{recorded.rows} outcomes recorded (sha256 "
                                 f"{recorded.sha256[:12]}…). They count from the next "
                                 "monitoring run.")
                return redirect("monitoring:page", model=obj.name)
    return render(request, "monitoring/outcomes.html", {"model": obj, "form": form,
                                                        "problems": problems})
