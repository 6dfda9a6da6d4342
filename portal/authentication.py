from __future__ import annotations

from rest_framework import authentication, exceptions

from .tokens import api_token_authenticate


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer att_…`` (or ``Token att_…``) personal API tokens."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        row = api_token_authenticate(header[1])
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return row.user, row

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
