"""API endpoints of the shell: personal API tokens."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from core.api import AttestAPIView, error_responses
from core.errors import ValidationFailed
from core.middleware import client_address

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
