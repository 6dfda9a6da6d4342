"""REST plumbing shared by every app: the structured error body and a base view.

Every error leaves the API as ``{"errors": [{"field", "code", "message"}]}``.
"""

from __future__ import annotations

import logging

from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.context import context_for_user, set_actor
from core.errors import MAX_ERROR_ITEMS, ApplicationError, PayloadTooLarge, capped_items
from core.uploads import UploadTooLarge, body_limit_message, upload_limit_message

log = logging.getLogger(__name__)


def _flatten(detail, field: str | None = None) -> list[dict]:
    """Turn DRF's nested error detail into a flat list with dotted field paths."""
    items: list[dict] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = None if key in ("non_field_errors", "detail") else (
                f"{field}.{key}" if field else str(key))
            items.extend(_flatten(value, name if key not in ("non_field_errors", "detail") else field))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            sub = field
            if isinstance(value, dict | list) and field is not None:
                sub = f"{field}.{index}"
            items.extend(_flatten(value, sub))
    else:
        code = getattr(detail, "code", None) or "invalid"
        items.append({"field": field, "code": str(code), "message": str(detail)})
    return items


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"errors": [{"field": field, "code": code, "message": message}]}


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, ApplicationError):
        return Response(exc.as_body(), status=exc.status, headers=getattr(exc, "headers", None))
    if isinstance(exc, UploadTooLarge) or (request is not None and getattr(
            getattr(request, "_request", request), "upload_too_large", False)):
        return Response(error_body("too_large", upload_limit_message(), "artifact"),
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, RequestDataTooBig):
        # Reading request.data: the form fields of a multipart body past the limit
        # (core.middleware.RequestSizeMiddleware refuses any other body before the view).
        return Response(error_body("too_large", body_limit_message()),
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("permission_denied", "You do not have permission to do this."),
                        status=403)
    if isinstance(exc, drf_exceptions.ValidationError):
        extra: dict = {}
        items = capped_items(_flatten(exc.detail), extra)
        return Response({"errors": items, **extra}, status=400)
    if isinstance(exc, drf_exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
            # 401 with a challenge, so clients know a token is expected.
            headers.setdefault("WWW-Authenticate", 'Token realm="api"')
            return Response(error_body(str(code), str(message)), status=401, headers=headers)
        return Response(error_body(str(code), str(message)), status=exc.status_code, headers=headers)
    return None  # a bug: let Django's handler500 answer (JSON for /api/)


class AttestAPIView(APIView):
    """Base for API views: records the authenticated actor for audit events."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        django_request = request._request
        if request.content_type.startswith("multipart/"):
            # Django's parser stops quietly at the size limit and drops the rest of the
            # form; answer 413 instead of complaining about missing fields.
            _ = request.data
            if getattr(django_request, "upload_too_large", False):
                raise PayloadTooLarge(upload_limit_message(), code="too_large", field="artifact")
        set_actor(context_for_user(request.user, via="api",
                                   request_id=getattr(django_request, "request_id", None),
                                   remote_addr=getattr(django_request, "client_addr", None)))


ErrorSerializer = inline_serializer(
    name="ErrorBody",
    fields={
        "errors": serializers.ListField(child=inline_serializer(
            name="ErrorItem",
            fields={
                "field": serializers.CharField(allow_null=True),
                "code": serializers.CharField(),
                "message": serializers.CharField(),
            },
        ), help_text=f"every problem found, at most {MAX_ERROR_ITEMS} of them and then one "
                     "item of code too_many_errors"),
        "errors_not_listed": serializers.IntegerField(
            required=False, help_text="how many problems the list leaves out, when it is cut"),
    },
)


def error_responses(*codes: int) -> dict:
    """OpenAPI entries for the error statuses an endpoint can answer."""
    text = {400: "Invalid input", 401: "Not authenticated", 403: "Not permitted",
            404: "Not found (or not visible to you)", 409: "Conflicts with the current state",
            413: "Request body or upload too large",
            429: "Too many attempts or requests: locked or rate-limited (see Retry-After)",
            503: "Service unavailable"}
    return {code: OpenApiResponse(ErrorSerializer, description=text.get(code, "Error"))
            for code in codes}


def json_400(request, exception=None):
    if isinstance(exception, DisallowedHost):
        return JsonResponse(error_body("disallowed_host", "This host name is not served here "
                                       "(ATTEST_ALLOWED_HOSTS).", "host"), status=400)
    return JsonResponse(error_body("bad_request", "The request is not valid."), status=400)


def json_404(request, exception=None):
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_413(request):
    return JsonResponse(error_body("too_large", body_limit_message()), status=413)


def json_500(request):
    return JsonResponse(error_body("server_error",
                                   "An unexpected error occurred; it has been logged."),
                        status=500)

