"""Request id, actor context and security headers for every request."""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.shortcuts import render

from core.api import json_413
from core.context import ActorContext, context_for_user, new_request_id, reset_actor, set_actor
from core.uploads import body_limit_message

log = logging.getLogger(__name__)
_untrusted_forwarding_seen = False


def client_address(request) -> str | None:
    """The client's address, believing X-Forwarded-For only from configured proxies."""
    meta = request.META
    peer = meta.get("REMOTE_ADDR")
    trusted = settings.ATTEST_TRUSTED_PROXIES
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if forwarded and not trusted:
        _warn_untrusted_forwarding(peer)
    if not forwarded or not peer or peer not in trusted:
        return peer
    # Walk from the right, skipping our own proxies; the first other hop is the client.
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if hop not in trusted:
            return hop
    return peer


def _warn_untrusted_forwarding(peer: str | None) -> None:
    """Once per process: requests carry X-Forwarded-For, so a proxy is probably in front,
    but none is trusted (the runtime side of the check ``attest.W001``)."""
    global _untrusted_forwarding_seen
    if _untrusted_forwarding_seen:
        return
    _untrusted_forwarding_seen = True
    log.warning("A request from %s carries X-Forwarded-For but ATTEST_TRUSTED_PROXIES is empty: "
                "if a proxy is in front, every client looks like it to the sign-in throttle "
                "and the audit trail. Set ATTEST_TRUSTED_PROXIES to its address.", peer)


class RequestContextMiddleware:
    """Gives each request an id (echoed as X-Request-ID) and an actor context.

    The actor is resolved lazily through ``request.user`` after authentication;
    API views (token auth happens inside DRF) refresh it in the DRF view layer.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = new_request_id()
        request.client_addr = client_address(request)
        token = set_actor(ActorContext(request_id=request.request_id,
                                       remote_addr=request.client_addr, via="web"))
        try:
            response = self.get_response(request)
        finally:
            reset_actor(token)
        response["X-Request-ID"] = request.request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = getattr(request, "user", None)
        via = "api" if request.path.startswith("/api/") else "web"
        set_actor(context_for_user(user, via=via, request_id=request.request_id,
                                   remote_addr=request.client_addr))
        return None


class RequestSizeMiddleware:
    """Answers 413 to a request body past DATA_UPLOAD_MAX_MEMORY_SIZE before anything
    reads it.

    Left to Django, the first read of such a body (DRF's ``request.data``, the CSRF
    check's ``request.POST``) raises RequestDataTooBig: an HTML "Bad Request (400)" page,
    and an ERROR with its traceback in the log. Here the answer is the API's error body
    under ``/api/`` and a page elsewhere, logged as any other 4xx. It runs as the views'
    first hook (placed before CsrfViewMiddleware), when the user is known, so the page
    shows the usual navigation:

    1. A body that is not multipart is refused by its Content-Length, unread, as
       Django itself would refuse to read it (so an over-limit prediction answers
       413 with or without a valid token).
    2. A multipart body's files stream to disk under their own limit (core.uploads),
       but its other fields count against this one, which only parsing shows. For a
       page, parse it here, as the CSRF check is about to; an API view meets the
       error when it reads ``request.data`` (core.api.exception_handler).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is None:
            return None
        if request.content_type != "multipart/form-data":
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0  # Django reads such a body as empty
            return self.too_large(request) if length > limit else None
        if (request.method == "POST" and not request.path.startswith("/api/")
                and not getattr(view_func, "csrf_exempt", False)):
            try:
                request.POST  # noqa: B018 - parsed now, as the CSRF check would
            except RequestDataTooBig:
                request._mark_post_parse_error()  # as Django's handler does: not read twice
                return self.too_large(request)
        return None

    @staticmethod
    def too_large(request):
        if request.path.startswith("/api/"):
            return json_413(request)
        return render(request, "413.html", {"message": body_limit_message()}, status=413)


CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=()"


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CSP)
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        response.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response
