"""The explain app's API: a version's explanation figures and background samples.

Explanations of one prediction are served under the prediction
(``/api/v1/predictions/{id}/explanations/``, by ``inference``, which decides who may see
the prediction)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from core.api import AttestAPIView, error_responses
from core.errors import ValidationFailed
from registry.roles import Capability
from registry.selectors import dataset_get_for_user, require_capability, version_get_for_user

from .. import selectors, services
from ..background import MAX_BYTES, background_upload
from ..models import BackgroundSample
from ..present import version_explanation_as_dict


def _background_as_dict(sample: BackgroundSample | None) -> dict | None:
    if sample is None:
        return None
    return {"sha256": sample.sha256, "rows": sample.rows, "columns": sample.columns,
            "size": sample.size, "deidentification": sample.deidentification,
            "uploaded_by": sample.uploaded_by.get_username(),
            "created_at": sample.created_at.isoformat()}


class VersionExplanationView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="global importance and "
                                                   "explanation reliability of the version"),
                              202: OpenApiResponse(description="being computed: progress"),
                              **error_responses(401, 404)},
                   summary="A version's global importance and explanation reliability")
    def get(self, request, model, version):
        obj = version_get_for_user(user=request.user, model_name=model, number=version)
        row = selectors.version_explanation_latest(version=obj)
        job = None if row is not None else selectors.version_job_latest(version=obj)
        body = version_explanation_as_dict(row, job)
        body["background_sample"] = _background_as_dict(
            BackgroundSample.objects.filter(version=obj).select_related("uploaded_by").first()
            or BackgroundSample.objects.filter(dataset_id=obj.dataset_id)
            .select_related("uploaded_by").first())
        pending = row is None and job is not None and body["status"] in ("queued", "running")
        return Response(body, status=status.HTTP_202_ACCEPTED if pending else status.HTTP_200_OK)

    @extend_schema(request=None,
                   responses={202: OpenApiResponse(description="the job computing them"),
                              200: OpenApiResponse(description="computed already"),
                              **error_responses(401, 403, 404, 409)},
                   summary="Compute a version's explanation figures (submitted versions)")
    def post(self, request, model, version):
        obj = version_get_for_user(user=request.user, model_name=model, number=version)
        require_capability(user=request.user, model=obj.model,
                           capability=Capability.SUBMIT_VERSION)
        if obj.state == "draft":
            raise ValidationFailed("A draft's figures are computed when it is submitted.",
                                   code="draft")
        job = services.version_explanation_request(version=obj, user=request.user)
        if job is None:
            return self.get(request, model, version)
        return Response(version_explanation_as_dict(None, job), status=status.HTTP_202_ACCEPTED)


BackgroundRequest = inline_serializer(name="BackgroundUpload", fields={
    "file": serializers.FileField(help_text=f"CSV: a header naming the features, at most 1000 "
                                            f"rows, at most {MAX_BYTES // 1048576} MB"),
    "deidentification": serializers.CharField(help_text="how the rows were de-identified"),
})


def _upload_args(request) -> tuple[bytes, str]:
    upload = request.FILES.get("file")
    if upload is None:
        raise ValidationFailed("Send the sample as the multipart field 'file'.",
                               code="required", field="file")
    if upload.size > MAX_BYTES:
        raise ValidationFailed(f"A background sample is at most {MAX_BYTES // 1048576} MB.",
                               code="too_large", field="file")
    return upload.read(), str(request.data.get("deidentification", "") or "")


class VersionBackgroundView(AttestAPIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": BackgroundRequest},
                   responses={201: OpenApiResponse(description="the stored sample"),
                              **error_responses(400, 401, 403, 404, 409, 413)},
                   summary="Upload a de-identified background sample for a draft version")
    def post(self, request, model, version):
        obj = version_get_for_user(user=request.user, model_name=model, number=version)
        data, statement = _upload_args(request)
        sample = background_upload(user=request.user, data=data, deidentification=statement,
                                   version=obj)
        return Response(_background_as_dict(sample), status=status.HTTP_201_CREATED)


class DatasetBackgroundView(AttestAPIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": BackgroundRequest},
                   responses={201: OpenApiResponse(description="the stored sample"),
                              **error_responses(400, 401, 404, 409, 413)},
                   summary="Upload a de-identified background sample for a dataset version")
    def post(self, request, dataset_id):
        dataset = dataset_get_for_user(user=request.user, dataset_id=dataset_id)
        data, statement = _upload_args(request)
        sample = background_upload(user=request.user, data=data, deidentification=statement,
                                   dataset=dataset)
        return Response(_background_as_dict(sample), status=status.HTTP_201_CREATED)
