"""Registry API views: parse, call one service or selector, render."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from core.api import AttestAPIView, error_responses
from core.errors import ValidationFailed
from core.moments import parse_moment
from core.parsers import StrictJSONParser, require_storable

from .. import release, selectors, services, trust
from ..roles import ROLE_CAPABILITIES, Capability
from .serializers import (
    DatasetCreateSerializer,
    DatasetSerializer,
    GrantSerializer,
    ModelCreateSerializer,
    ModelPatchSerializer,
    ModelSerializer,
    ReasonSerializer,
    RollbackSerializer,
    SignoffSerializer,
    TrustedTypeCreateSerializer,
    TrustedTypeSerializer,
    VersionCreateSerializer,
    VersionPatchSerializer,
    VersionSerializer,
)


def _model_context(user, models) -> dict:
    return {"capabilities": {m.pk: selectors.user_capabilities(user=user, model=m) for m in models}}


class ModelListView(AttestAPIView):
    @extend_schema(responses={200: ModelSerializer(many=True), **error_responses(401)},
                   summary="Models you may view")
    def get(self, request):
        models = list(selectors.model_versions_summary(user=request.user))
        return Response(ModelSerializer(models, many=True,
                                        context=_model_context(request.user, models)).data)

    @extend_schema(request=ModelCreateSerializer,
                   responses={201: ModelSerializer, **error_responses(400, 401, 403, 409)},
                   summary="Register a model (you become its owner)")
    def post(self, request):
        body = ModelCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        model = services.registered_model_create(user=request.user, **body.validated_data)
        return Response(ModelSerializer(model, context=_model_context(request.user, [model])).data,
                        status=status.HTTP_201_CREATED)


class ModelDetailView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(responses={200: ModelSerializer, **error_responses(401, 404)})
    def get(self, request, model):
        obj = selectors.model_get_for_user(user=request.user, name=model)
        return Response(ModelSerializer(obj, context=_model_context(request.user, [obj])).data)

    @extend_schema(request=ModelPatchSerializer,
                   responses={200: ModelSerializer, **error_responses(400, 401, 403, 404, 409)},
                   summary="Change the release policy (not while a version is in review)")
    def patch(self, request, model):
        obj = selectors.model_get_for_user(user=request.user, name=model)
        body = ModelPatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        updated = release.release_policy_update(
            user=request.user, model=obj, required_signoffs=body.validated_data["required_signoffs"])
        return Response(ModelSerializer(updated, context=_model_context(request.user,
                                                                        [updated])).data)


class DatasetListView(AttestAPIView):
    parser_classes = [StrictJSONParser, MultiPartParser, FormParser]

    @extend_schema(responses={200: DatasetSerializer(many=True), **error_responses(401)})
    def get(self, request):
        qs = selectors.dataset_list_for_user(user=request.user).select_related("created_by")
        return Response(DatasetSerializer(qs, many=True).data)

    @extend_schema(request={"multipart/form-data": DatasetCreateSerializer,
                            "application/json": DatasetCreateSerializer},
                   responses={201: DatasetSerializer, **error_responses(400, 401, 403, 409, 413)},
                   summary="Register a dataset version (file, or hash + profile made locally)")
    def post(self, request):
        body = DatasetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        upload = data.pop("file", None)
        dataset = services.dataset_version_register(user=request.user, data_file=upload, **data)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailView(AttestAPIView):
    @extend_schema(responses={200: DatasetSerializer, **error_responses(401, 404)})
    def get(self, request, dataset_id):
        dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=dataset_id)
        return Response(DatasetSerializer(dataset).data)


class VersionListView(AttestAPIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses={200: VersionSerializer(many=True), **error_responses(401, 404)})
    def get(self, request, model):
        obj = selectors.model_get_for_user(user=request.user, name=model)
        versions = selectors.version_list_for_model(user=request.user, model=obj)
        return Response(VersionSerializer(versions, many=True).data)

    @extend_schema(request={"multipart/form-data": VersionCreateSerializer},
                   responses={201: VersionSerializer, **error_responses(400, 401, 403, 404, 413)},
                   summary="Register a model version (multipart: artifact + metadata JSON)")
    def post(self, request, model):
        obj = selectors.model_get_for_user(user=request.user, name=model)
        metadata = request.data.get("metadata")
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except json.JSONDecodeError as exc:
                raise ValidationFailed(f"metadata is not valid JSON ({exc.msg} at line "
                                       f"{exc.lineno} column {exc.colno}).", code="invalid_json",
                                       field="metadata") from None
        elif metadata is None:
            metadata = {}
        require_storable(metadata, "metadata")
        version = services.model_version_register(user=request.user, model=obj,
                                                  artifact=request.FILES.get("artifact"),
                                                  metadata=metadata)
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(responses={200: VersionSerializer, **error_responses(401, 404)})
    def get(self, request, model, version):
        obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
        return Response(VersionSerializer(obj).data)

    @extend_schema(request=VersionPatchSerializer,
                   responses={200: VersionSerializer, **error_responses(400, 401, 403, 404, 409)},
                   summary="Edit a draft version (409 once submitted)")
    def patch(self, request, model, version):
        obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
        if not isinstance(request.data, dict):
            raise ValidationFailed("Send a JSON object.", code="invalid")
        updated = services.model_version_update(user=request.user, version=obj,
                                                changes=dict(request.data))
        return Response(VersionSerializer(updated).data)


class VersionSubmitView(AttestAPIView):
    @extend_schema(request=None,
                   responses={200: VersionSerializer, **error_responses(401, 403, 404, 409)},
                   summary="Freeze the draft and send it for review")
    def post(self, request, model, version):
        obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
        return Response(VersionSerializer(services.model_version_submit(user=request.user,
                                                                        version=obj)).data)


class VersionArtifactView(AttestAPIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(
        description="The artifact bytes, verified against the recorded sha256"),
        **error_responses(401, 403, 404, 409)})
    def get(self, request, model, version):
        obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
        data = services.model_version_artifact_download(user=request.user, version=obj)
        response = HttpResponse(data, content_type="application/octet-stream")
        response["Content-Disposition"] = (
            f'attachment; filename="{obj.model.name}-v{obj.number}.{obj.artifact_format}"')
        response["X-Content-SHA256"] = obj.artifact_sha256
        return response


class AccessView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    def _grants(self, model):
        return [{"user": g.user.username, "name": g.user.get_full_name(), "role": g.role,
                 "granted_by": g.granted_by.username, "granted_at": g.granted_at}
                for g in selectors.model_grants(model=model)]

    @extend_schema(responses={200: OpenApiResponse(description="grants and the role map"),
                              **error_responses(401, 403, 404)})
    def get(self, request, model):
        obj = selectors.model_get_for_user(user=request.user, name=model)
        return Response({"grants": self._grants(obj),
                         "roles": {r: sorted(c) for r, c in ROLE_CAPABILITIES.items()}})

    def _grantee(self, username):
        return get_user_model().objects.filter(username=username, is_active=True).first()

    @extend_schema(request=GrantSerializer, responses={201: OpenApiResponse(description="granted"),
                                                       **error_responses(400, 401, 403, 404)})
    def post(self, request, model):
        obj = selectors.model_get_for_user(user=request.user, name=model)
        body = GrantSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.access_grant(user=request.user, model=obj,
                              grantee=self._grantee(body.validated_data["user"]),
                              role=body.validated_data["role"])
        return Response({"grants": self._grants(obj)}, status=status.HTTP_201_CREATED)

    @extend_schema(request=GrantSerializer, responses={200: OpenApiResponse(description="revoked"),
                                                       **error_responses(400, 401, 403, 404, 409)})
    def delete(self, request, model):
        obj = selectors.model_get_for_user(user=request.user, name=model)
        body = GrantSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        grantee = self._grantee(body.validated_data["user"])
        if grantee is None:
            raise ValidationFailed("No active user by that name.", code="unknown_user", field="user")
        services.access_revoke(user=request.user, model=obj, grantee=grantee,
                               role=body.validated_data["role"])
        return Response({"grants": self._grants(obj)})




# -- release workflow -----------------------------------------------------------------

class SignoffView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(responses={200: OpenApiResponse(description="sign-off manifest"),
                              **error_responses(401, 404)})
    def get(self, request, model, version):
        obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
        return Response({"content_hash": obj.content_hash, "state": obj.state,
                         "manifest": selectors.signature_manifest(version=obj)})

    @extend_schema(request=SignoffSerializer,
                   responses={201: OpenApiResponse(description="manifest after signing"),
                              **error_responses(400, 401, 403, 404, 409, 429)},
                   summary="Sign (approve or reject) a version in review; re-enter your password")
    def post(self, request, model, version):
        obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
        body = SignoffSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        release.signoff_record(user=request.user, version=obj, **body.validated_data)
        obj.refresh_from_db()
        return Response({"content_hash": obj.content_hash, "state": obj.state,
                         "manifest": selectors.signature_manifest(version=obj)},
                        status=status.HTTP_201_CREATED)


def _release_action(func, summary: str, request_serializer=None):
    """A POST endpoint on one version that calls one release service."""

    class View(AttestAPIView):
        parser_classes = [StrictJSONParser]

        @extend_schema(request=request_serializer,
                       responses={200: VersionSerializer, **error_responses(401, 403, 404, 409)},
                       summary=summary)
        def post(self, request, model, version):
            obj = selectors.version_get_for_user(user=request.user, model_name=model,
                                                 number=version)
            kwargs = {}
            if request_serializer is not None:
                body = request_serializer(data=request.data)
                body.is_valid(raise_exception=True)
                kwargs = dict(body.validated_data)
            return Response(VersionSerializer(func(user=request.user, version=obj,
                                                   **kwargs)).data)

    View.__name__ = f"{func.__name__.title().replace('_', '')}View"
    return View


PromoteView = _release_action(release.version_promote, "Promote an approved version to production")
RetireView = _release_action(release.version_retire, "Retire a version", ReasonSerializer)
DiscardView = _release_action(release.version_discard, "Discard a draft")


class ShadowView(AttestAPIView):
    @extend_schema(request=None, responses={200: VersionSerializer,
                                            **error_responses(401, 403, 404, 409)},
                   summary="Start shadow scoring (in review or approved versions)")
    def post(self, request, model, version):
        obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
        return Response(VersionSerializer(release.shadow_start(user=request.user,
                                                               version=obj)).data)

    @extend_schema(request=None, responses={200: VersionSerializer,
                                            **error_responses(401, 403, 404)},
                   summary="Stop shadow scoring")
    def delete(self, request, model, version):
        obj = selectors.version_get_for_user(user=request.user, model_name=model, number=version)
        return Response(VersionSerializer(release.shadow_stop(user=request.user,
                                                              version=obj)).data)


class RollbackView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(request=RollbackSerializer,
                   responses={200: VersionSerializer, **error_responses(400, 401, 403, 404, 409)},
                   summary="Re-promote an earlier approved or superseded version, with a reason")
    def post(self, request, model):
        obj = selectors.model_get_for_user(user=request.user, name=model)
        body = RollbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        target = release.model_rollback(user=request.user, model=obj, **body.validated_data)
        return Response(VersionSerializer(target).data)


class ProductionAtView(AttestAPIView):
    @extend_schema(parameters=[OpenApiParameter("at", str, description="ISO date-time "
                                                "(default: now)")],
                   responses={200: OpenApiResponse(description="version in production then, "
                                                   "and its approvals, from the audit trail "
                                                   "(needs view_audit, as on the model page)"),
                              **error_responses(400, 401, 403, 404)},
                   summary="What was in production at a moment, approved by whom")
    def get(self, request, model):
        # The release history is read from the audit trail: the same capability as the
        # model page's "in production at" panel and the trail itself.
        obj = selectors.model_get_for_user(user=request.user, name=model,
                                           capability=Capability.VIEW_AUDIT)
        when = parse_moment(request.query_params.get("at"))
        return Response({"model": obj.name, "at": when.isoformat(),
                         **selectors.production_at(model=obj, when=when)})


class TrustedTypeListView(AttestAPIView):
    """The skops allowlist: readable by every signed-in user (uploaders need to know it),
    changed by administrators only."""

    @extend_schema(responses={200: TrustedTypeSerializer(many=True), **error_responses(401)},
                   summary="Types a skops model file may contain beyond skops' defaults")
    def get(self, request):
        entries = trust.trusted_type_list()
        return Response(TrustedTypeSerializer(entries, many=True).data)

    @extend_schema(request=TrustedTypeCreateSerializer,
                   responses={201: TrustedTypeSerializer, **error_responses(400, 401, 403)},
                   summary="Trust one more type (administrators)")
    def post(self, request):
        body = TrustedTypeCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        entry = trust.trusted_type_add(user=request.user, **body.validated_data)
        return Response(TrustedTypeSerializer(entry).data, status=status.HTTP_201_CREATED)


class TrustedTypeDetailView(AttestAPIView):
    @extend_schema(request=None,
                   responses={204: OpenApiResponse(description="removed"),
                              **error_responses(401, 403, 404)},
                   summary="Stop trusting a type (administrators; versions holding it no "
                           "longer load)")
    def delete(self, request, name):
        trust.trusted_type_remove(user=request.user, name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)
