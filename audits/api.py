"""The audit trail's API: events, verification, export, checkpoints."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from core.api import AttestAPIView, error_responses
from core.errors import NotFound, ValidationFailed

from .access import (
    audit_checkpoint_signer,
    audit_scope,
    audit_scope_global,
    parse_cursor,
    parse_event_filters,
)
from .chain import chain_head, verify_chain
from .checkpoints import (
    audit_checkpoint_write,
    checkpoint_latest,
    checkpoint_list,
    public_key_pem,
)
from .export import audit_export_response, event_as_dict
from .reconcile import reconcile
from .selectors import (
    PAGE_SIZE,
    audit_event_diff,
    audit_event_get,
    audit_event_page,
    audit_event_queryset,
)
from .throttling import AuditCheckpointThrottle, AuditVerifyThrottle


class AuditVerifyView(AttestAPIView):
    throttle_classes = [AuditVerifyThrottle]

    @extend_schema(responses={200: OpenApiResponse(
        description='{"ok", "checked", "head_hash", "head_seq", "first_broken", '
                    '"reconciliation": {"ok", "checked", "findings"}}; the reconciliation '
                    'covers the models whose trail the user may read'),
        **error_responses(401, 403, 429)},
        summary="Recompute the audit hash chain and reconcile signatures and version states "
                "with it (per user: ATTEST_AUDIT_VERIFY_RATE)")
    def get(self, request):
        scope = audit_scope(request.user)
        return Response(verify_chain().as_dict()
                        | {"reconciliation": reconcile(model_ids=scope).as_dict()})


# -- audit trail --------------------------------------------------------------------------

def _page_link(request, cursor: int | None) -> str | None:
    if cursor is None:
        return None
    params = request.query_params.copy()
    params["cursor"] = str(cursor)
    return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")


AUDIT_FILTER_PARAMS = [
    OpenApiParameter("model", str, description="model name"),
    OpenApiParameter("version", str, description="version number (with model)"),
    OpenApiParameter("actor", str, description="username"),
    OpenApiParameter("action", str, description="e.g. registry.version_submitted"),
    OpenApiParameter("since", str, description="ISO date or date-time (inclusive)"),
    OpenApiParameter("until", str, description="ISO date or date-time (a date includes the day)"),
]


class AuditEventListView(AttestAPIView):
    @extend_schema(parameters=[*AUDIT_FILTER_PARAMS,
                               OpenApiParameter("cursor", int, description="from `next`"),
                               OpenApiParameter("page_size", int, description="1–500, default 50")],
                   responses={200: OpenApiResponse(description="results, next, chain_head"),
                              **error_responses(400, 401, 403)},
                   summary="Audit events, newest first (cursor pagination)",
                   operation_id="audit_events_list")
    def get(self, request):
        scope = audit_scope(request.user)
        filters = parse_event_filters(request.query_params, user=request.user)
        try:
            size = int(request.query_params.get("page_size", PAGE_SIZE))
        except ValueError:
            raise ValidationFailed("page_size must be a number.", field="page_size") from None
        events, cursor = audit_event_page(
            audit_event_queryset(visible_model_ids=scope, filters=filters),
            before_seq=parse_cursor(request.query_params.get("cursor")), size=size)
        head = chain_head()
        return Response({"results": [event_as_dict(e) for e in events],
                         "next": _page_link(request, cursor),
                         "chain_head": {"seq": head[0], "hash": head[1]}})


class AuditEventDetailView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="event with before/after diff"),
                              **error_responses(401, 403, 404)})
    def get(self, request, event_id):
        scope = audit_scope(request.user)
        try:
            pk = int(event_id)
        except ValueError:
            raise NotFound("No such event.") from None
        event = audit_event_get(visible_model_ids=scope, event_id=pk)
        if event is None:
            raise NotFound("No such event.")
        return Response({**event_as_dict(event), "diff": audit_event_diff(event)})


class AuditExportView(AttestAPIView):
    @extend_schema(parameters=[*AUDIT_FILTER_PARAMS,
                               OpenApiParameter("format", str, enum=["csv", "json"])],
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR,
                                                                  description="CSV export"),
                              (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT,
                                                                         description="JSON"),
                              **error_responses(400, 401, 403)},
                   summary="Export the filtered events with the chain head hash")
    def get(self, request):
        return audit_export_response(request._request, request.user, request.query_params)


class AuditCheckpointView(AttestAPIView):
    def get_throttles(self):
        return [AuditCheckpointThrottle()] if self.request.method == "POST" else []

    @extend_schema(responses={200: OpenApiResponse(description="checkpoints, newest first"),
                              **error_responses(401, 403)})
    def get(self, request):
        audit_scope_global(request.user)
        return Response({"checkpoints": checkpoint_list(), "public_key": public_key_pem()})

    @extend_schema(request=None, responses={201: OpenApiResponse(description="the checkpoint"),
                                            **error_responses(400, 401, 403, 429)},
                   summary="Sign the chain head now (administrators; per user: "
                           "ATTEST_AUDIT_CHECKPOINT_RATE)")
    def post(self, request):
        audit_checkpoint_signer(request.user)
        checkpoint = audit_checkpoint_write()
        return Response({**checkpoint.as_document(), "storage_key": checkpoint.storage_key},
                        status=status.HTTP_201_CREATED)


class AuditCheckpointLatestView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="the newest signed checkpoint: "
                                                   "payload, signature, storage_key"),
                              **error_responses(401, 403, 404)},
                   summary="The newest signed checkpoint, to keep outside Attest")
    def get(self, request):
        audit_scope_global(request.user)
        latest = checkpoint_latest()
        if latest is None:
            raise NotFound("No checkpoint has been signed yet.")
        return Response(latest)
