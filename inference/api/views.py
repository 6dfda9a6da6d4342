"""Prediction and review-queue API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from core.api import AttestAPIView, error_responses
from core.errors import NotFound, ValidationFailed
from core.parsers import StrictJSONParser
from registry.roles import Capability
from registry.selectors import model_get_for_user

from .. import selectors, services
from ..models import ReviewStatus
from .explanation_views import inline_explain_check, inline_explanation


def prediction_as_dict(prediction, *, review=None, reveal_input: bool = False,
                       requester: bool = False) -> dict:
    """``reveal_input``: the reader may see raw inputs; ``requester``: the answer to the
    request that sent the input (its flags as computed, values and all)."""
    ood = prediction.ood if requester else selectors.ood_flags(prediction=prediction,
                                                               reveal=reveal_input)
    body = {
        "id": str(prediction.public_id), "model": prediction.model.name if hasattr(
            prediction, "model") else None,
        "model_version": prediction.version.number, "label": prediction.label,
        "score": prediction.score, "confidence": prediction.confidence,
        "probabilities": prediction.probabilities, "routing": prediction.routing,
        "reason": prediction.reason or None, "ood": ood,
        "input_sha256": prediction.input_sha256, "created_at": prediction.created_at.isoformat(),
        "latency_ms": prediction.latency_ms,
    }
    if review is not None:
        body["review_id"] = review.pk
        body["review"] = review_outcome(review)
    if reveal_input:
        body["input"] = prediction.input
        body["input_purged"] = prediction.input is None
    return body


def review_outcome(item) -> dict:
    """How a prediction sent to review was decided (as its page says): open, or the
    decision, final label, reason, comment, reviewer and time."""
    return {
        "id": item.pk, "status": item.status, "decision": item.decision or None,
        "final_label": item.final_label or None, "reason_code": item.reason_code or None,
        "comment": item.comment or None,
        "reviewer": item.reviewer.username if item.reviewer_id else None,
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
    }


PredictRequest = inline_serializer(name="PredictRequest", fields={
    "inputs": serializers.DictField(required=False, help_text="one input: {feature: value}"),
    "instances": serializers.ListField(child=serializers.DictField(), required=False,
                                       help_text="several inputs (at most 1000)"),
    "version": serializers.IntegerField(required=False,
                                        help_text="owners only: score with this version"),
    "explain": serializers.ChoiceField(choices=["shap"], required=False, help_text=(
        "with \"inputs\": a SHAP explanation in the answer when the model's explainer is "
        "fast (tree under the inline budget, linear); else a link to ask for one")),
})


class PredictView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(request=PredictRequest,
                   responses={200: OpenApiResponse(description="prediction(s)"),
                              **error_responses(400, 401, 403, 404, 409, 413)},
                   summary="Validate, check, score, route and log")
    def post(self, request, model):
        return Response(predict_answer(user=request.user, model=model,
                                       read_body=lambda: request.data))


def predict_answer(*, user, model: str, read_body: Callable[[], Any]) -> dict:
    """The prediction endpoint's answer for ``user`` (authenticated), from the JSON body
    ``read_body()`` returns; ApplicationError for every refusal. The model is looked up
    before the body is read: a caller who may not see the model gets 404 whatever the
    body holds."""
    obj = model_get_for_user(user=user, name=model, capability=Capability.PREDICT)
    try:
        body = read_body()
    except RecursionError:  # nested deeper than the JSON decoder goes
        raise ValidationFailed("JSON nested too deeply.", code="parse_error") from None
    if not isinstance(body, dict):
        raise ValidationFailed("Send a JSON object.", code="invalid")
    unknown = set(body) - {"inputs", "instances", "version", "explain"}
    if unknown:
        raise ValidationFailed(f"Unknown keys: {', '.join(sorted(unknown))}.",
                               code="unknown_field", field=sorted(unknown)[0])
    if ("inputs" in body) == ("instances" in body):
        raise ValidationFailed("Send exactly one of \"inputs\" (an object) or \"instances\" "
                               "(a list of objects).", code="invalid", field="inputs")
    many = "instances" in body
    explain = body.get("explain")
    if explain is not None:
        inline_explain_check(method=explain, many=many)
    instances = body["instances"] if many else [body["inputs"]]
    results = services.prediction_create(user=user, model=obj, instances=instances, many=many,
                                         version_number=body.get("version"))
    items = [prediction_as_dict(r.prediction, review=r.review, requester=True)
             for r in results]
    if explain is not None:
        items[0]["explanation"] = inline_explanation(user=user, prediction=results[0].prediction,
                                                     method=explain)
    if many:
        return {"predictions": items}
    return items[0]


class PredictionDetailView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(
        description="one logged prediction; sent to review, its review (id, status, and once "
                    "decided: decision, final_label, reason_code, comment, reviewer, "
                    "decided_at)"), **error_responses(401, 404)},
        summary="One logged prediction (raw input only with view_predictions)")
    def get(self, request, prediction_id):
        prediction = services.prediction_get_for_user(user=request.user, public_id=prediction_id)
        review = getattr(prediction, "review", None)
        return Response(prediction_as_dict(
            prediction, review=review,
            reveal_input=selectors.can_see_raw_inputs(user=request.user, prediction=prediction)))


def review_as_dict(item, *, reveal_input: bool) -> dict:
    return {
        "id": item.pk, "status": item.status, "model": item.model.name,
        "model_version": item.version.number, "created_at": item.created_at.isoformat(),
        "prediction": prediction_as_dict(item.prediction, reveal_input=reveal_input),
        "decision": item.decision or None, "final_label": item.final_label or None,
        "reason_code": item.reason_code or None, "comment": item.comment,
        "reviewer": item.reviewer.username if item.reviewer else None,
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
    }


def _int_param(request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise ValidationFailed(f"{name} must be a whole number from {lo} to {hi}.", field=name)
    return value


class ReviewListView(AttestAPIView):
    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=["open", "decided"],
                         description="open (default): the longest waiting first; decided: "
                                     "the most recently decided first"),
        OpenApiParameter("offset", int, description="items to skip (default 0)"),
        OpenApiParameter("limit", int, description="items per page, 1-500 (default 200)")],
        responses={200: OpenApiResponse(description="{count, next, results}: one page of "
                                                    "review items"),
                   **error_responses(400, 401)})
    def get(self, request):
        status_ = request.query_params.get("status", ReviewStatus.OPEN)
        if status_ not in ReviewStatus.values:
            raise ValidationFailed("status must be open or decided.", field="status")
        offset = _int_param(request, "offset", 0, 0, 10**9)
        limit = _int_param(request, "limit", 200, 1, 500)
        queue = selectors.review_queue_for_user(user=request.user, status=status_)
        count = queue.count()
        items = list(queue[offset:offset + limit])
        reveal: dict[int, bool] = {}  # per model: one capability lookup, not one per item
        for item in items:
            if item.model_id not in reveal:
                reveal[item.model_id] = selectors.can_see_raw_inputs(user=request.user,
                                                                     prediction=item.prediction)
        following = None
        if offset + limit < count:
            params = request.query_params.copy()
            params["offset"], params["limit"] = str(offset + limit), str(limit)
            following = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response({"count": count, "next": following, "results": [
            review_as_dict(i, reveal_input=reveal[i.model_id]) for i in items]})


class ReviewDetailView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="one review item, as in the "
                                                   "queue"),
                              **error_responses(401, 404)},
                   summary="One review item (on models you review; 404 otherwise)",
                   operation_id="reviews_item_retrieve")
    def get(self, request, item_id):
        item = selectors.review_item_get_for_user(user=request.user, item_id=item_id)
        if item is None:
            raise NotFound("No such review item.")
        return Response(review_as_dict(item, reveal_input=selectors.can_see_raw_inputs(
            user=request.user, prediction=item.prediction)))


DecisionRequest = inline_serializer(name="ReviewDecision", fields={
    "decision": serializers.ChoiceField(choices=["accept", "override"]),
    "final_label": serializers.CharField(required=False),
    "reason_code": serializers.CharField(required=False),
    "comment": serializers.CharField(required=False, allow_blank=True),
})


class ReviewDecisionView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(request=DecisionRequest,
                   responses={200: OpenApiResponse(description="the decided item"),
                              **error_responses(400, 401, 403, 404, 409)},
                   summary="Accept or override a review item (403 own_prediction: not on a "
                           "prediction you requested)")
    def post(self, request, item_id):
        item = selectors.review_item_get_for_user(user=request.user, item_id=item_id)
        if item is None:
            raise NotFound("No such review item.")
        body = request.data if isinstance(request.data, dict) else {}
        decided = services.review_decide(
            user=request.user, item=item, decision=str(body.get("decision", "")),
            final_label=str(body.get("final_label", "") or ""),
            reason_code=str(body.get("reason_code", "") or ""),
            comment=str(body.get("comment", "") or ""))
        return Response(review_as_dict(decided, reveal_input=selectors.can_see_raw_inputs(
            user=request.user, prediction=decided.prediction)), status=status.HTTP_200_OK)


class ReviewStatsView(AttestAPIView):
    @extend_schema(responses={200: OpenApiResponse(description="per version: open items, oldest "
                                                   "open age, override rate and direction"),
                              **error_responses(401, 404)})
    def get(self, request, model):
        obj = model_get_for_user(user=request.user, name=model)
        return Response({"model": obj.name, "versions": [
            {"version": v.number, "state": v.state, **selectors.review_stats(version=v)}
            for v in obj.versions.order_by("-number")],
            "rejections_30d": selectors.rejection_summary(model=obj),
            "latency": selectors.latency_summary(model=obj)})
