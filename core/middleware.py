"""Request id, actor context and security headers for every request."""

from __future__ import annotations

import ipaddress

from django.conf import settings

from core.context import ActorContext, context_for_user, new_request_id, reset_actor, set_actor


def client_address(request) -> str | None:
    """The client's address, believing X-Forwarded-For only from configured proxies."""
    peer = request.META.get("REMOTE_ADDR")
    trusted = settings.ATTEST_TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
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


CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CSP)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response
