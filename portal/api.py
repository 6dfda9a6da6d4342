"""API endpoints of the shell: personal API tokens and who the caller is."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core.api import AttestAPIView, error_responses
from core.errors import ValidationFailed
from core.middleware import client_address
from registry.roles import can_create_models, is_global_admin, is_global_auditor
from registry.selectors import model_list_for_user, user_capabilities, user_model_roles

from .models import ApiToken
from .throttling import TokenThrottle, login_lock_seconds, wait_text
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
                              **error_responses(400, 401, 429)},
                   summary="Exchange username + password for a personal API token")
    def post(self, request):
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wait = login_lock_seconds(username=body.validated_data["username"],
                                  address=client_address(request._request))
        if wait:
            return Response({"errors": [{"field": None, "code": "locked",
                                         "message": "Too many failed sign-in attempts; try again "
                                                    f"in {wait_text(wait)}."}]},
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


class WhoAmIView(AttestAPIView):
    """Who the caller is, how they authenticated and what they may do on which model:
    what a client shows after ``login`` and what a script checks before it acts."""

    @extend_schema(responses={200: OpenApiResponse(description=(
        "{username, name, email, is_admin, is_auditor, can_create_models, token: {id, name, "
        "prefix, expires_at} or null for a session, models: [{name, roles, capabilities}]}")),
        **error_responses(401)}, summary="The caller, their token and their roles per model")
    def get(self, request):
        user = request.user
        token = request.auth if isinstance(request.auth, ApiToken) else None
        models = [{"name": m.name, "roles": user_model_roles(user=user, model=m),
                   "capabilities": sorted(user_capabilities(user=user, model=m))}
                  for m in model_list_for_user(user=user)]
        return Response({
            "username": user.get_username(), "name": user.get_full_name(), "email": user.email,
            "is_admin": is_global_admin(user), "is_auditor": is_global_auditor(user),
            "can_create_models": can_create_models(user),
            "token": None if token is None else {
                "id": token.pk, "name": token.name, "prefix": token.prefix,
                "expires_at": token.expires_at.isoformat()},
            "models": models,
        })
