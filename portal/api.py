"""API endpoints of the shell: tokens and audit-trail verification."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from audits.chain import chain_head, verify_chain
from audits.checkpoints import audit_checkpoint_write, checkpoint_list, public_key_pem
from audits.models import Action
from audits.selectors import (
    PAGE_SIZE,
    audit_event_diff,
    audit_event_get,
    audit_event_page,
    audit_event_queryset,
)
from audits.services import audit_event_record
from core.api import AttestAPIView, error_responses
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.middleware import client_address
from registry.roles import is_global_admin, is_global_auditor

from .audit_access import audit_scope, parse_cursor, parse_event_filters
from .audit_export import csv_rows, event_as_dict, json_document
from .models import ApiToken
from .throttling import login_lock_seconds
from .tokens import api_token_create, api_token_revoke


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})
    name = serializers.CharField(required=False, default="API token", max_length=100)
    days = serializers.IntegerField(required=False, min_value=1, max_value=366)


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]


class TokenThrottle(AnonRateThrottle):
    rate = "20/min"


class TokenListView(AttestAPIView):
    def get_authenticators(self):
        # Exchanging a password for a token must not itself need a token or a session.
        if self.request is not None and self.request.method == "POST":
            return []
        return super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else super().get_permissions()

    def get_throttles(self):
        return [TokenThrottle()] if self.request.method == "POST" else []

    @extend_schema(responses={200: TokenSerializer(many=True), **error_responses(401)},
                   summary="Your API tokens (secrets are never shown again)")
    def get(self, request):
        return Response(TokenSerializer(ApiToken.objects.filter(user=request.user), many=True).data)

    @extend_schema(request=TokenRequestSerializer, auth=[],
                   responses={201: OpenApiResponse(description="token (shown once) and its record"),
                              **error_responses(400, 401)},
                   summary="Exchange username + password for a personal API token")
    def post(self, request):
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wait = login_lock_seconds(username=body.validated_data["username"],
                                  address=client_address(request._request))
        if wait:
            return Response({"errors": [{"field": None, "code": "locked",
                                         "message": "Too many failed sign-in attempts; try again "
                                                    "later."}]},
                            status=status.HTTP_429_TOO_MANY_REQUESTS,
                            headers={"Retry-After": str(wait)})
        user = authenticate(request._request, username=body.validated_data["username"],
                            password=body.validated_data["password"])
        if user is None or not user.is_active:
            return Response({"errors": [{"field": None, "code": "invalid_credentials",
                                         "message": "Wrong username or password."}]},
                            status=status.HTTP_401_UNAUTHORIZED)
        row, secret = api_token_create(user=user, name=body.validated_data["name"],
                                       days=body.validated_data.get("days"))
        return Response({"token": secret, **TokenSerializer(row).data},
                        status=status.HTTP_201_CREATED)


class TokenDetailView(AttestAPIView):
    @extend_schema(request=None, responses={204: None, **error_responses(401, 404)},
                   summary="Revoke one of your tokens")
    def delete(self, request, token_id):
        try:
            pk = int(token_id)
        except ValueError:
            raise ValidationFailed("token id must be a number.", field="id") from None
        api_token_revoke(user=request.user, token_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditVerifyView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(
        description='{"ok", "checked", "head_hash", "head_seq", "first_broken"}'),
        **error_responses(401, 403)}, summary="Recompute the audit hash chain")
    def get(self, request):
        audit_scope(request.user)
        return Response(verify_chain().as_dict())


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
    @extend_schema(responses={200: OpenApiResponse(description="checkpoints, newest first"),
                              **error_responses(401, 403)})
    def get(self, request):
        audit_scope_global(request.user)
        return Response({"checkpoints": checkpoint_list(), "public_key": public_key_pem()})

    @extend_schema(request=None, responses={201: OpenApiResponse(description="the checkpoint"),
                                            **error_responses(401, 403, 409)},
                   summary="Sign the chain head now")
    def post(self, request):
        audit_scope_global(request.user)
        checkpoint = audit_checkpoint_write()
        return Response({**checkpoint.as_document(), "storage_key": checkpoint.storage_key},
                        status=status.HTTP_201_CREATED)


def audit_scope_global(user) -> None:
    """Checkpoints cover the whole trail: admins and global auditors only."""
    if not (is_global_admin(user) or is_global_auditor(user)):
        raise PermissionDenied("Checkpoints cover the whole trail: admins and auditors only.")


def audit_export_response(request, user, params):
    """Streamed CSV or JSON of the filtered events; the export itself is an event."""
    scope = audit_scope(user)
    filters = parse_event_filters(params, user=user)
    fmt = params.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise ValidationFailed("format must be csv or json.", field="format")
    head = chain_head()
    audit_event_record(action=Action.AUDIT_EXPORTED, object_type="audits.export",
                       object_repr=f"{fmt} export", details={"filters": filters.as_dict(),
                                                             "format": fmt,
                                                             "chain_head_seq": head[0]})
    events = audit_event_queryset(visible_model_ids=scope, filters=filters).filter(
        seq__lte=head[0]).iterator(chunk_size=5000)
    name = f"attest-audit-head-{head[0]}-{head[1][:12]}.{fmt}"
    if fmt == "csv":
        response = StreamingHttpResponse(csv_rows(events), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(json_document(events, head=head,
                                                       filters=filters.as_dict()),
                                         content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Attest-Chain-Head"] = f"{head[0]} {head[1]}"
    return response
