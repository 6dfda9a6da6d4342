"""System checks of the deployment (``manage.py check --deploy``)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def proxy_without_trusted_addresses(app_configs, **kwargs) -> list[Warning]:
    """Behind a proxy that Attest is not told about, every request seems to come from the
    proxy: the sign-in throttle's per-address count, the token endpoint's rate and the
    audit trail's remote_addr all see one address for everybody."""
    behind_proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None) is not None
    if behind_proxy and not settings.ATTEST_TRUSTED_PROXIES:
        return [Warning(
            "ATTEST_BEHIND_TLS_PROXY is set but ATTEST_TRUSTED_PROXIES is empty: client "
            "addresses are the proxy's, so sign-in throttling, the token rate limit and the "
            "audit trail cannot tell users apart.",
            hint="Set ATTEST_TRUSTED_PROXIES to the proxy's address as the web server sees it "
                 "(comma-separated), and have the proxy set X-Forwarded-For.",
            id="attest.W001")]
    return []
