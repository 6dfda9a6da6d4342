"""Request id, actor context and security headers for every request."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from core.context import ActorContext, context_for_user, new_request_id, reset_actor, set_actor


def client_address(request) -> str | None:
    """The client's address, believing X-Forwarded-For only from configured proxies."""
    return client_address_from(request.META)


def client_address_from(meta: Mapping[str, Any]) -> str | None:
    """client_address from a WSGI environ (or request.META)."""
    peer = meta.get("REMOTE_ADDR")
    trusted = settings.ATTEST_TRUSTED_PROXIES
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
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


def request_is_secure(meta: Mapping[str, Any]) -> bool:
    """HttpRequest.is_secure() from a WSGI environ (SECURE_PROXY_SSL_HEADER, else the
    WSGI url scheme), for code that answers without building a request."""
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = meta.get(header)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return meta.get("wsgi.url_scheme") == "https"


def stack_headers(*, secure: bool) -> list[tuple[str, str]]:
    """The headers the middleware stack puts on an API response (Django's
    SecurityMiddleware and XFrameOptionsMiddleware, SecurityHeadersMiddleware, and the
    Vary: Cookie of the session lookup), for ``portal.serving``'s fast lane, which
    answers without that stack. A test compares both paths' headers."""
    headers = []
    if settings.SECURE_HSTS_SECONDS and secure:
        sts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            sts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            sts += "; preload"
        headers.append(("Strict-Transport-Security", sts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        values = policy.split(",") if isinstance(policy, str) else policy
        headers.append(("Referrer-Policy", ",".join(v.strip() for v in values)))
    headers += [
        ("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY or "same-origin"),
        ("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()),
        ("Content-Security-Policy", CSP),
        ("Permissions-Policy", PERMISSIONS_POLICY),
        ("Vary", "Cookie"),
    ]
    return headers
