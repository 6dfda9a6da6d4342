from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from core.middleware import client_address

from .throttling import login_lock_seconds


class ThrottledModelBackend(ModelBackend):
    """Django's backend, refusing every attempt while a username or address is locked."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        address = client_address(request) if request is not None else None
        if login_lock_seconds(username=username, address=address):
            if request is not None:
                request.attest_login_locked = True
            raise PermissionDenied("too many failed sign-in attempts")
        return super().authenticate(request, username=username, password=password, **kwargs)
