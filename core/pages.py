"""The one wrapper every portal page uses around its service calls."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from .errors import NotFound, PermissionDenied


def page_view(fallback: str = "home") -> Callable:
    """Login required; NotFound becomes 404 (no existence leak) and PermissionDenied a
    message and a redirect back — to the Referer when it is this site, else ``fallback``."""

    def decorate(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                return view(request, *args, **kwargs)
            except NotFound:
                raise Http404 from None
            except PermissionDenied as exc:
                messages.error(request, exc.message)
                referer = request.META.get("HTTP_REFERER")
                if referer and url_has_allowed_host_and_scheme(
                        referer, allowed_hosts={request.get_host()},
                        require_https=request.is_secure()):
                    return redirect(referer)
                return redirect(fallback)

        return wrapper

    return decorate
