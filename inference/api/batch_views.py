"""Batch job API: upload a file to score, follow the job, cancel it, download its files."""

from __future__ import annotations

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from core.api import AttestAPIView, error_responses
from core.errors import ValidationFailed
from registry.selectors import model_get_for_user

from .. import batches
from ..batches import files
from ..models import BatchJob
from ..tasks import batch_enqueue, batch_resume_embedded

FORM_FIELDS = {"file", "version", "file_format", "passthrough_columns", "explain"}


def batch_as_dict(job: BatchJob, request) -> dict:
    def link(name: str, *args) -> str:
        return request.build_absolute_uri(reverse(name, args=args))

    job_id = str(job.public_id)
    return {
        "id": job_id, "model": job.model.name, "model_version": job.version.number,
        "status": job.status, "cancel_requested": job.cancel_requested,
        "file_name": job.file_name, "file_format": job.file_format,
        "passthrough_columns": list(job.passthrough_columns),
        "explain": job.explain or None, "explanation": job.explanation or None,
        "files_purged": job.files_purged,
        "input_sha256": job.input_sha256, "input_size": job.input_size,
        "chunk_size": job.chunk_size, "chunk_seconds": job.chunk_seconds or None,
        "chunks_done": len(job.chunks_done),
        "progress": batches.batch_progress(job),
        "rows_failed": job.rows_failed, "rows_routed": job.rows_routed,
        "predictions": job.rows_done - job.rows_failed,
        "attempts": job.attempts, "queue": job.queue, "error": job.error or None,
        "failure_reasons": batches.batch_failure_reasons(job),
        "requester": job.requester.username,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "result_sha256": job.result_sha256 or None, "error_sha256": job.error_sha256 or None,
        "links": {
            "self": link("api-batch", job_id),
            "results": link("api-batch-file", job_id, "results") if job.result_key else None,
            "errors": link("api-batch-file", job_id, "errors") if job.error_key else None,
        },
    }


BatchRequest = inline_serializer(name="BatchRequest", fields={
    "file": serializers.FileField(help_text="CSV (UTF-8, header row) or Parquet; one column per "
                                  "input feature"),
    "version": serializers.IntegerField(required=False,
                                        help_text="owners only: score with this version"),
    "file_format": serializers.ChoiceField(choices=["csv", "parquet"], required=False,
                                           help_text="when the file name's extension does not "
                                           "say"),
    "passthrough_columns": serializers.ListField(
        child=serializers.CharField(max_length=files.MAX_PASSTHROUGH_NAME),
        required=False, max_length=files.MAX_PASSTHROUGH,
        help_text="columns of the file to copy, as text, to the result and error files (an "
        "identifier to join results back by): never scored, never in the prediction log, and "
        "deleted with the files under the model's retention. Repeat the field, or give one "
        "comma-separated value; a column that is neither a feature nor named here is "
        "refused"),
    "explain": serializers.ChoiceField(
        choices=["shap"], required=False,
        help_text="'shap': the SHAP contributions of every scored row as result columns "
        "(shap_base_value, shap_<feature>, shap_output, shap_units; base value + "
        "contributions = shap_output, the model's output in those units). Only for versions "
        "with an exact fast explainer (tree or linear) and within the estimated-time budget; "
        "otherwise a 400 says why"),
})


def _passthrough(data) -> list[str]:
    """The ``passthrough_columns`` form values (repeated, or one comma-separated text)."""
    values = data.getlist("passthrough_columns") if hasattr(data, "getlist") \
        else data.get("passthrough_columns")
    return files.passthrough_names(values)


class BatchListView(AttestAPIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses={200: OpenApiResponse(description="the model's batch jobs you may "
                                                   "see, newest first"),
                              **error_responses(401, 403, 404)},
                   summary="Batch jobs of a model", operation_id="batches_list")
    def get(self, request, model):
        obj = model_get_for_user(user=request.user, name=model)
        batch_resume_embedded()
        jobs = batches.batch_list_for_user(user=request.user, model=obj)[:100]
        return Response({"results": [batch_as_dict(j, request) for j in jobs]})

    @extend_schema(request={"multipart/form-data": BatchRequest},
                   responses={202: OpenApiResponse(description="the job, queued (or finished, "
                                                   "where jobs run in-process)"),
                              **error_responses(400, 401, 403, 404, 409, 413, 503)},
                   summary="Submit a CSV or Parquet file to score as a batch job",
                   operation_id="batches_create")
    def post(self, request, model):
        obj = model_get_for_user(user=request.user, name=model)
        unknown = set(request.data) - FORM_FIELDS
        if unknown:
            raise ValidationFailed(f"Unknown fields: {', '.join(sorted(unknown))}.",
                                   code="unknown_field", field=sorted(unknown)[0])
        job = batches.batch_submit(user=request.user, model=obj, enqueue=batch_enqueue,
                                   upload=request.FILES.get("file"),
                                   version_number=request.data.get("version"),
                                   file_format=request.data.get("file_format") or None,
                                   passthrough_columns=_passthrough(request.data),
                                   explain=request.data.get("explain") or None)
        body = batch_as_dict(job, request)
        return Response(body, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": body["links"]["self"]})


class BatchDetailView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="status, progress and links"),
                              **error_responses(401, 404)},
                   summary="A batch job", operation_id="batch_retrieve")
    def get(self, request, batch_id):
        batch_resume_embedded()
        job = batches.batch_get_for_user(user=request.user, batch_id=batch_id)
        return Response(batch_as_dict(job, request))

    @extend_schema(responses={202: OpenApiResponse(description="cancellation requested (a "
                                                   "running job stops after its current chunk)"),
                              **error_responses(401, 404, 409)},
                   summary="Cancel a batch job", operation_id="batch_cancel")
    def delete(self, request, batch_id):
        job = batches.batch_get_for_user(user=request.user, batch_id=batch_id)
        job = batches.batch_cancel(user=request.user, job=job)
        return Response(batch_as_dict(job, request), status=status.HTTP_202_ACCEPTED)


class BatchFileView(AttestAPIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY,
                              **error_responses(401, 404, 409)},
                   summary="Download a batch job's result or error file (CSV)",
                   operation_id="batch_file_retrieve")
    def get(self, request, batch_id, kind):
        job = batches.batch_get_for_user(user=request.user, batch_id=batch_id)
        handle, name = batches.batch_file_get(user=request.user, job=job, kind=kind)
        sha256 = job.result_sha256 if kind == "results" else job.error_sha256
        response = FileResponse(handle, as_attachment=True, filename=name,
                                content_type="text/csv; charset=utf-8")
        response["X-Content-SHA256"] = sha256
        return response
