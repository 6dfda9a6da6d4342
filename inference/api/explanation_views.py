"""Explanations of one prediction: ``GET,POST /api/v1/predictions/{id}/explanations/``.

Fast explainers answer at once (200); the others run as a job: 202 with the job and its
status URL (``…/explanations/jobs/{job}/``), which answers 202 while it runs and 200 with
the explanation when it is done; the list (GET) answers 202 too while a job is pending.
Anyone who may see the prediction may see (and ask for) its explanations; input values
only with ``view_predictions``.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from core.api import AttestAPIView, error_responses
from core.errors import NotFound, ValidationFailed
from core.parsers import StrictJSONParser
from explain import selectors as explain_selectors
from explain.models import JobStatus
from explain.present import explanation_as_dict, job_as_dict

from .. import services
from ..explanations import prediction_explain, prediction_explanations_body, values_visible

ExplainRequest = inline_serializer(name="ExplainRequest", fields={
    "method": serializers.ChoiceField(choices=["shap", "lime"]),
    "parameters": serializers.DictField(required=False, help_text=(
        "shap: seed (the permutation explainer's); lime: seed, samples (500-20000, "
        "default 5000)")),
})


def job_url(request, prediction, job) -> str:
    return request.build_absolute_uri(reverse("api-prediction-explanation-job", kwargs={
        "prediction_id": str(prediction.public_id), "job_id": str(job.public_id)}))


class PredictionExplanationsView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(responses={200: OpenApiResponse(description="the prediction's stored "
                                                   "explanations (and failed jobs)"),
                              202: OpenApiResponse(description="the same, while a job is still "
                                                   "computing one (SPEC: 202 while pending)"),
                              **error_responses(401, 404)},
                   summary="Explanations of a prediction")
    def get(self, request, prediction_id):
        prediction = services.prediction_get_for_user(user=request.user, public_id=prediction_id)
        body = prediction_explanations_body(user=request.user, prediction=prediction)
        pending = any(j["status"] in (JobStatus.QUEUED, JobStatus.RUNNING) for j in body["jobs"])
        for job in body["jobs"]:
            job["status_url"] = request.build_absolute_uri(reverse(
                "api-prediction-explanation-job", kwargs={
                    "prediction_id": str(prediction.public_id), "job_id": job["id"]}))
        return Response(body, status=status.HTTP_202_ACCEPTED if pending else status.HTTP_200_OK)

    @extend_schema(request=ExplainRequest,
                   responses={200: OpenApiResponse(description="the explanation (stored, or "
                                                   "computed now)"),
                              202: OpenApiResponse(description="a job computes it: status URL"),
                              **error_responses(400, 401, 404, 409)},
                   summary="Explain a prediction with SHAP or LIME")
    def post(self, request, prediction_id):
        prediction = services.prediction_get_for_user(user=request.user, public_id=prediction_id)
        body = request.data
        if not isinstance(body, dict):
            raise ValidationFailed("Send a JSON object.", code="invalid")
        unknown = set(body) - {"method", "parameters"}
        if unknown:
            raise ValidationFailed(f"Unknown keys: {', '.join(sorted(unknown))}.",
                                   code="unknown_field", field=sorted(unknown)[0])
        outcome = prediction_explain(user=request.user, prediction=prediction,
                                     method=body.get("method"), parameters=body.get("parameters"))
        if outcome.explanation is not None:
            return Response(explanation_as_dict(outcome.explanation, reveal_values=values_visible(
                user=request.user, prediction=prediction)))
        url = job_url(request, prediction, outcome.job)
        return Response({**job_as_dict(outcome.job), "status_url": url},
                        status=status.HTTP_202_ACCEPTED, headers={"Location": url})


class PredictionExplanationJobView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="finished: the explanation, or "
                                                   "the reason it failed"),
                              202: OpenApiResponse(description="queued or running: progress"),
                              **error_responses(401, 404)},
                   summary="Status of an explanation job")
    def get(self, request, prediction_id, job_id):
        prediction = services.prediction_get_for_user(user=request.user, public_id=prediction_id)
        job = explain_selectors.job_for_input(version=prediction.version,
                                              input_sha256=prediction.input_sha256, job_id=job_id)
        if job is None:
            raise NotFound("No such explanation job.")
        body = {**job_as_dict(job), "status_url": job_url(request, prediction, job)}
        if job.status == JobStatus.COMPLETED and job.explanation is not None:
            body["explanation"] = explanation_as_dict(
                job.explanation, reveal_values=values_visible(user=request.user,
                                                              prediction=prediction))
        active = job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        return Response(body, status=status.HTTP_202_ACCEPTED if active else status.HTTP_200_OK)


def inline_explain_check(*, method, many: bool) -> None:
    """predict's ``explain``: checked before anything is scored or logged."""
    if method != "shap":
        raise ValidationFailed("explain must be \"shap\" (LIME runs as a job: ask "
                               "/api/v1/predictions/{id}/explanations/).", code="invalid",
                               field="explain")
    if many:
        raise ValidationFailed("explain works with one input (\"inputs\"); for several, ask "
                               "each prediction's /explanations/.", code="invalid",
                               field="explain")


def inline_explanation(*, user, prediction, method: str) -> dict:
    """The SHAP explanation of a prediction just made, when its explainer is fast; else
    where to ask for one (the prediction is logged either way)."""
    from explain.choice import explainer_choose

    outcome = prediction_explain(user=user, prediction=prediction, method=method,
                                 inline_only=True)
    if outcome.explanation is not None:
        # The requester sent these values: they are shown back as the prediction's are.
        return explanation_as_dict(outcome.explanation, reveal_values=True)
    return {"status": "not_inline",
            "reason": explainer_choose(version=prediction.version).reason,
            "explanations_url": reverse("api-prediction-explanations",
                                        kwargs={"prediction_id": str(prediction.public_id)})}
