"""Auditor pages: the event list with filters, event detail, exports, checkpoints."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import ApplicationError, PermissionDenied
from core.pages import page_view

from .access import (
    audit_checkpoint_signer,
    audit_scope,
    audit_scope_global,
    parse_cursor,
    parse_event_filters,
)
from .chain import chain_head, verify_chain
from .checkpoints import audit_checkpoint_write, checkpoint_list, checkpoint_read, public_key_pem
from .export import audit_export_response
from .models import Action
from .reconcile import reconcile
from .selectors import audit_event_diff, audit_event_get, audit_event_page, audit_event_queryset
from .throttling import AuditCheckpointThrottle, AuditVerifyThrottle, page_allows

_guarded = page_view("home")


@_guarded
def event_list(request):
    scope = audit_scope(request.user)
    error = None
    try:
        filters = parse_event_filters(request.GET, user=request.user)
        cursor = parse_cursor(request.GET.get("cursor"))
    except ApplicationError as exc:
        error, filters, cursor = exc, None, None
    events, next_cursor = ([], None)
    if filters is not None:
        events, next_cursor = audit_event_page(
            audit_event_queryset(visible_model_ids=scope, filters=filters), before_seq=cursor)
    params = request.GET.copy()
    params.pop("cursor", None)
    return render(request, "audits/event_list.html", {
        "events": events, "next_cursor": next_cursor, "query": params.urlencode(),
        "errors": error.items if error else [], "params": request.GET,
        "actions": Action.choices, "head": chain_head(), "is_global": scope is None,
    })


@_guarded
def event_detail(request, event_id: int):
    scope = audit_scope(request.user)
    event = audit_event_get(visible_model_ids=scope, event_id=event_id)
    if event is None:
        raise Http404
    return render(request, "audits/event_detail.html", {"event": event,
                                                        "diff": audit_event_diff(event)})


@_guarded
def export(request):
    try:
        return audit_export_response(request, request.user, request.GET)
    except ApplicationError as exc:
        if isinstance(exc, PermissionDenied):
            raise
        messages.error(request, exc.message)
        return redirect("audit-events")


@_guarded
def verify(request):
    scope = audit_scope(request.user)
    # The same per-user rate as GET /api/v1/audit/verify/ (one count for both).
    wait = page_allows(AuditVerifyThrottle, request)
    return render(request, "audits/verify.html", {
        "result": None if wait else verify_chain(), "wait_minutes": -(-wait // 60),
        "rows": None if wait else reconcile(model_ids=scope), "scoped": scope is not None,
        "checkpoints": checkpoint_list()[:20],
        "can_download": _allowed(audit_scope_global, request.user),
        "can_sign": _allowed(audit_checkpoint_signer, request.user)},
        status=429 if wait else 200)


def _allowed(rule, user) -> bool:
    try:
        rule(user)
    except PermissionDenied:
        return False
    return True


@_guarded
@require_POST
def checkpoint_create(request):
    audit_checkpoint_signer(request.user)
    wait = page_allows(AuditCheckpointThrottle, request)
    if wait:
        messages.error(request, f"Checkpoints on demand are limited per user; try again in "
                       f"{-(-wait // 60)} minute(s). The scheduler signs one daily.")
        return redirect("audit-verify")
    try:
        checkpoint = audit_checkpoint_write()
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Checkpoint signed at event #{checkpoint.payload['head_seq']}. "
                         "Download it and keep it somewhere the database's administrators "
                         "cannot change.")
    return redirect("audit-verify")


@_guarded
def checkpoint_download(request, storage_key: str):
    audit_scope_global(request.user)
    known = {c.get("storage_key") for c in checkpoint_list()}
    if storage_key not in known:
        raise Http404
    response = HttpResponse(checkpoint_read(storage_key), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{storage_key.rsplit("/", 1)[-1]}"'
    return response


@_guarded
def public_key(request):
    audit_scope_global(request.user)
    return HttpResponse(public_key_pem(), content_type="text/plain")
