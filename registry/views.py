"""Registry pages. Each view parses a form, calls one service or selector, renders.

Objects the user may not view answer 404 (the selectors raise NotFound).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from audits.selectors import audit_events_for_model
from core.errors import ApplicationError, NotFound, PermissionDenied
from core.moments import parse_moment
from core.pages import page_view
from core.uploads import upload_limit_message

from . import release, selectors, services, trust
from .compare import compare_versions
from .extensions import version_sections
from .forms import (
    DatasetCreateForm,
    GrantForm,
    ModelCreateForm,
    PolicyForm,
    RollbackForm,
    SignoffForm,
    TrustedTypeForm,
    VersionEditForm,
    VersionRegisterForm,
    add_service_errors,
    lines,
)
from .lifecycle import allowed_next
from .models import VersionState
from .roles import (
    ROLE_CAPABILITIES,
    SIGNING_ROLES,
    Capability,
    ModelRole,
    can_create_models,
    is_global_admin,
)

page = page_view("registry:model-list")


def _too_large(request, form) -> bool:
    if getattr(request, "upload_too_large", False):
        form.add_error(None, upload_limit_message())
        return True
    return False


@page
def model_list(request):
    models = selectors.model_versions_summary(user=request.user)
    return render(request, "registry/model_list.html", {
        "models": models, "can_create": can_create_models(request.user)})


@page
@require_http_methods(["GET", "POST"])
def model_create(request):
    if request.method == "GET" and not can_create_models(request.user):
        # Say so before they fill the form in; a POST still reaches the service, which
        # refuses it and records the attempt.
        messages.error(request, "You do not have permission to register models. Ask an "
                       "administrator.")
        return redirect("registry:model-list")
    admin = is_global_admin(request.user)
    form = ModelCreateForm(request.POST or None, admin=admin)
    if request.method == "POST" and form.is_valid():
        try:
            model = services.registered_model_create(
                user=request.user, name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                required_signoffs=(lines(form.cleaned_data["required_signoffs"]) or None)
                if admin else None,
                retention_days=form.cleaned_data["retention_days"])
        except PermissionDenied:
            raise
        except ApplicationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Model {model.name} registered. You are its owner.")
            return redirect("registry:model-detail", model=model.name)
    return render(request, "registry/model_create.html", {"form": form})


@page
def model_detail(request, model):
    obj = selectors.model_get_for_user(user=request.user, name=model)
    caps = selectors.user_capabilities(user=request.user, model=obj)
    versions = selectors.version_list_for_model(user=request.user, model=obj)
    history = (audit_events_for_model(model_id=obj.pk)[:25]
               if Capability.VIEW_AUDIT in caps else None)
    at_text = request.GET.get("at", "")
    point_in_time = None
    if at_text and Capability.VIEW_AUDIT in caps:
        try:
            point_in_time = {"at": parse_moment(at_text),
                             **selectors.production_at(model=obj, when=parse_moment(at_text))}
        except ApplicationError as exc:
            messages.error(request, exc.message)
    candidates = _rollback_candidates(obj)
    return render(request, "registry/model_detail.html", {
        "model": obj, "versions": versions, "caps": caps, "history": history,
        "rollback_form": RollbackForm(candidates=candidates) if candidates else None,
        "policy_form": PolicyForm(initial={"required_signoffs": ", ".join(
            obj.required_signoffs)}) if is_global_admin(request.user) else None,
        "point_in_time": point_in_time, "at_text": at_text,
        "grants": selectors.model_grants(model=obj),
        "roles": selectors.user_model_roles(user=request.user, model=obj),
        "role_map": [(ModelRole(r).label, sorted(c)) for r, c in ROLE_CAPABILITIES.items()],
        "production": next((v for v in versions if v.state == VersionState.PRODUCTION), None),
    })


@page
def version_detail(request, model, version):
    obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
    caps = selectors.user_capabilities(user=request.user, model=obj.model)
    subgroups = (obj.metrics or {}).get("subgroups", [])
    metric_names = sorted({k for g in subgroups for k in (g.get("metrics") or {})})
    return render(request, "registry/version_detail.html", {
        "model": obj.model, "version": obj, "caps": caps,
        "allowed_next": [(s, VersionState(s).label) for s in allowed_next(obj.state)],
        "overall": (obj.metrics or {}).get("overall", {}), "subgroups": subgroups,
        "metric_names": metric_names, "profile": obj.dataset.profile.get("columns", {}),
        "manifest": selectors.signature_manifest(version=obj) if obj.state != VersionState.DRAFT
        else [],
        "signable": release.signable_meanings(user=request.user, version=obj),
        "sections": version_sections(request=request, version=obj, page="version"),
    })


@page
@require_http_methods(["GET", "POST"])
def version_register(request, model):
    obj = selectors.model_get_for_user(user=request.user, name=model,
                                       capability=Capability.REGISTER_VERSION)
    datasets = selectors.dataset_list_for_user(user=request.user).order_by("name", "-created_at")
    form = VersionRegisterForm(request.POST or None, request.FILES or None, datasets=datasets)
    if request.method == "POST" and not _too_large(request, form) and form.is_valid():
        try:
            created = services.model_version_register(
                user=request.user, model=obj, artifact=form.cleaned_data["artifact"],
                metadata=form.metadata())
        except PermissionDenied:
            raise
        except ApplicationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Version {created.number} registered as a draft; its dry "
                             f"run succeeded. Content hash {created.content_hash[:12]}…")
            return redirect("registry:version-detail", model=obj.name, version=created.number)
    return render(request, "registry/version_register.html", {"model": obj, "form": form})


@page
@require_http_methods(["GET", "POST"])
def version_edit(request, model, version):
    obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version,
                                         capability=Capability.EDIT_DRAFT)
    if obj.state != VersionState.DRAFT:
        messages.error(request, f"Version {obj.number} is {obj.get_state_display().lower()}: "
                       "its content is frozen.")
        return redirect("registry:version-detail", model=model, version=obj.number)
    initial = {k: getattr(obj, k) for k in ("description", "confidence_threshold", "ood_policy",
                                            "code_reference", "model_card", "runbook")}
    import json

    for key in ("input_schema", "hyperparameters", "metrics"):
        initial[key] = json.dumps(getattr(obj, key), indent=2)
    form = VersionEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = form.changes(obj)
        if not changes:
            messages.info(request, "Nothing changed.")
            return redirect("registry:version-detail", model=model, version=obj.number)
        try:
            updated = services.model_version_update(user=request.user, version=obj, changes=changes)
        except PermissionDenied:
            raise
        except ApplicationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Draft saved. New content hash {updated.content_hash[:12]}…")
            return redirect("registry:version-detail", model=model, version=obj.number)
    return render(request, "registry/version_edit.html", {"model": obj.model, "version": obj,
                                                          "form": form})


@page
@require_POST
def version_submit(request, model, version):
    obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
    try:
        submitted = services.model_version_submit(user=request.user, version=obj)
    except PermissionDenied:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Version {submitted.number} submitted for review. Content hash "
                         f"{submitted.content_hash} is now fixed.")
    return redirect("registry:version-detail", model=model, version=obj.number)


@page
def version_artifact(request, model, version):
    obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
    try:
        data = services.model_version_artifact_download(user=request.user, version=obj)
    except PermissionDenied:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("registry:version-detail", model=model, version=obj.number)
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = (
        f'attachment; filename="{obj.model.name}-v{obj.number}.{obj.artifact_format}"')
    return response


@page
@require_http_methods(["GET", "POST"])
def trusted_types(request):
    """The skops allowlist: everyone signed in sees it; administrators change it."""
    form = TrustedTypeForm(request.POST or None, initial={"action": "add"})
    if request.method == "POST":
        if not form.is_valid():
            messages.error(request, "Give the exact type name (at most 300 characters).")
        elif form.cleaned_data["action"] == "remove":
            name = form.cleaned_data["name"]
            try:
                trust.trusted_type_remove(user=request.user, name=name)
            except NotFound as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"{name} is no longer trusted; versions holding it "
                                          "will not load until it is trusted again.")
            return redirect("registry:trusted-types")
        else:
            try:
                entry = trust.trusted_type_add(user=request.user, name=form.cleaned_data["name"],
                                               reason=form.cleaned_data["reason"])
            except PermissionDenied:
                raise
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"{entry.name} is now trusted in model files.")
                return redirect("registry:trusted-types")
    return render(request, "registry/trusted_types.html", {
        "entries": trust.trusted_type_list(), "form": form,
        "can_edit": is_global_admin(request.user), "how_to_ask": trust.HOW_TO_ASK})


@page
def dataset_list(request):
    datasets = selectors.dataset_list_for_user(user=request.user).select_related("created_by")
    return render(request, "registry/dataset_list.html", {
        "datasets": datasets, "can_register": services.can_register_datasets(request.user)})


@page
def dataset_detail(request, dataset_id):
    dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=dataset_id)
    return render(request, "registry/dataset_detail.html", {
        "dataset": dataset, "profile": dataset.profile.get("columns", {})})


@page
@require_http_methods(["GET", "POST"])
def dataset_create(request):
    if request.method == "GET" and not services.can_register_datasets(request.user):
        messages.error(request, "You do not have permission to register datasets: it needs the "
                       "register_version role on a model.")
        return redirect("registry:dataset-list")
    form = DatasetCreateForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and not _too_large(request, form) and form.is_valid():
        data = dict(form.cleaned_data)
        pasted = data.pop("profile_json") or {}
        upload = data.pop("file")
        try:
            dataset = services.dataset_version_register(
                user=request.user, data_file=upload, sha256=pasted.get("sha256"),
                profile=pasted.get("profile"), columns=pasted.get("columns"),
                row_count=pasted.get("row_count"), file_format=pasted.get("file_format"), **data)
        except PermissionDenied:
            raise
        except ApplicationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Dataset {dataset} registered ({dataset.row_count:,} rows, "
                             f"sha256 {dataset.sha256[:12]}…).")
            return redirect("registry:dataset-detail", dataset_id=dataset.pk)
    return render(request, "registry/dataset_create.html", {"form": form})


@page
@require_http_methods(["GET", "POST"])
def model_access(request, model):
    """Grants of one model: who holds which role; owners and admins change them."""
    from django.contrib.auth import get_user_model

    obj = selectors.model_get_for_user(user=request.user, name=model)
    caps = selectors.user_capabilities(user=request.user, model=obj)
    can_manage = Capability.MANAGE_ACCESS in caps
    admin = is_global_admin(request.user)
    form = GrantForm(request.POST or None, admin=admin) if can_manage else None
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied(f"You lack the 'manage_access' permission on {obj.name}.")
        User = get_user_model()
        if "revoke" in request.POST:
            grantee = User.objects.filter(username=request.POST.get("username", "")).first()
            try:
                if grantee is None:
                    raise NotFound("No such user.")
                services.access_revoke(user=request.user, model=obj, grantee=grantee,
                                       role=request.POST.get("role", ""))
            except PermissionDenied:
                raise
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Revoked {request.POST.get('role')} from "
                                 f"{grantee.username}.")
            return redirect("registry:model-access", model=obj.name)
        if form.is_valid():
            grantee = User.objects.filter(username=form.cleaned_data["username"],
                                          is_active=True).first()
            try:
                services.access_grant(user=request.user, model=obj, grantee=grantee,
                                      role=form.cleaned_data["role"])
            except PermissionDenied:
                raise
            except ApplicationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Granted {form.cleaned_data['role']} to "
                                 f"{grantee.username}.")
                return redirect("registry:model-access", model=obj.name)
    return render(request, "registry/model_access.html", {
        "model": obj, "grants": selectors.model_grants(model=obj), "form": form,
        "can_manage": can_manage, "is_admin": admin, "signing_roles": sorted(SIGNING_ROLES),
        "role_map": [(ModelRole(r).label, sorted(c)) for r, c in ROLE_CAPABILITIES.items()],
        "capabilities": Capability.choices,
    })


# -- release workflow pages -------------------------------------------------------------

def _back_to_version(obj):
    return redirect("registry:version-detail", model=obj.model.name, version=obj.number)


def _release_post(request, obj, action, success: str, **kwargs):
    try:
        action(user=request.user, version=obj, **kwargs)
    except PermissionDenied:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return _back_to_version(obj)


@page
@require_POST
def version_promote(request, model, version):
    obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
    return _release_post(request, obj, release.version_promote,
                         f"v{obj.number} is now in production.")


@page
@require_POST
def version_retire(request, model, version):
    obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
    return _release_post(request, obj, release.version_retire, f"v{obj.number} retired.",
                         reason=request.POST.get("reason", ""))


@page
@require_POST
def version_discard(request, model, version):
    obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
    return _release_post(request, obj, release.version_discard, f"Draft v{obj.number} discarded.")


@page
@require_POST
def version_shadow(request, model, version):
    obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
    if request.POST.get("stop"):
        return _release_post(request, obj, release.shadow_stop,
                             f"Shadow scoring of v{obj.number} stopped.")
    return _release_post(request, obj, release.shadow_start,
                         f"v{obj.number} now scores live requests in shadow.")


@page
@require_http_methods(["GET", "POST"])
def version_review(request, model, version):
    """The PI/IRB review page: what changes against production, and the signing form."""
    obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
    caps = selectors.user_capabilities(user=request.user, model=obj.model)
    production = (obj.model.versions.filter(state=VersionState.PRODUCTION)
                  .exclude(pk=obj.pk).select_related("dataset").first())
    meanings = release.signable_meanings(user=request.user, version=obj)
    form = None
    if Capability.SIGN_RELEASE in caps:
        form = SignoffForm(request.POST or None, meanings=meanings,
                           initial={"content_hash": obj.content_hash})
    if request.method == "POST":
        if form is None:
            raise PermissionDenied(f"You lack the 'sign_release' permission on {obj.model.name}.")
        if form.is_valid():
            try:
                signature = release.signoff_record(user=request.user, version=obj,
                                                   **form.cleaned_data)
            except PermissionDenied as exc:
                form.add_error(None, exc.message)
            except ApplicationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"Signed: {signature.meaning} — {signature.decision}, "
                                 f"bound to content hash {signature.content_hash[:12]}…")
                return _back_to_version(obj)
    return render(request, "registry/version_review.html", {
        "model": obj.model, "version": obj, "form": form, "meanings": meanings, "caps": caps,
        "comparison": compare_versions(obj, production),
        "manifest": selectors.signature_manifest(version=obj),
        "sections": version_sections(request=request, version=obj, page="review"),
    })


@page
@require_POST
def model_rollback(request, model):
    obj = selectors.model_get_for_user(user=request.user, name=model)
    form = RollbackForm(request.POST, candidates=_rollback_candidates(obj))
    if not form.is_valid():
        messages.error(request, "Choose a version and give a reason for the rollback.")
        return redirect("registry:model-detail", model=obj.name)
    try:
        target = release.model_rollback(user=request.user, model=obj, **form.cleaned_data)
    except PermissionDenied:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Rolled back: v{target.number} is in production again.")
    return redirect("registry:model-detail", model=obj.name)


@page
@require_POST
def model_policy(request, model):
    obj = selectors.model_get_for_user(user=request.user, name=model)
    form = PolicyForm(request.POST)
    if form.is_valid():
        try:
            release.release_policy_update(user=request.user, model=obj,
                                          required_signoffs=lines(form.cleaned_data[
                                              "required_signoffs"]))
        except PermissionDenied:
            raise
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Release policy updated.")
    return redirect("registry:model-detail", model=obj.name)


def _rollback_candidates(model):
    return list(model.versions.filter(state__in=[VersionState.SUPERSEDED, VersionState.APPROVED])
                .order_by("-number"))
