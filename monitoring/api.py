"""Monitoring API: a model's figures, running monitoring now, its policy, outcomes."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from core.api import AttestAPIView, error_responses
from core.errors import ValidationFailed
from core.parsers import StrictJSONParser
from registry.roles import Capability
from registry.selectors import model_get_for_user, version_get_for_user

from . import selectors, services
from .health import default_thresholds
from .models import MonitoringPolicy, OutcomeSource


def _alert(alert) -> dict:
    return {"signal": alert.signal, "feature": alert.feature or None, "level": alert.level,
            "value": alert.value, "message": alert.message,
            "opened_at": alert.opened_at.isoformat(), "updated_at": alert.updated_at.isoformat()}


def monitoring_as_dict(view: dict) -> dict:
    """The page's figures as JSON (the same numbers, the same rows)."""
    version, run = view["version"], view["run"]
    return {
        "model": view["model"].name,
        "version": version.number if version else None,
        "versions": [{"number": v.number, "state": v.state} for v in view["versions"]],
        "window": view["window_code"],
        "run": ({"computed_at": run.computed_at.isoformat(), "trigger": run.trigger,
                 "duration_ms": run.duration_ms, "aggregated_through": run.aggregated_through,
                 "windows": run.windows} if run else None),
        "counts_lag": view["lag"],
        "thresholds": view.get("thresholds") or default_thresholds(),
        "policy": view["policy"],
        "health": view["health"],
        "retraining": view["retraining"],
        "alerts": [_alert(a) for a in view["alerts"]],
        "figures": view["figures"],
        "series": view["series"],
    }


WINDOW_PARAMS = [
    OpenApiParameter("version", int, description="version number (default: production)"),
    OpenApiParameter("window", str, enum=["24h", "7d", "30d", "since_promotion"],
                     description="rolling window of the figures (default 7d)"),
    OpenApiParameter("since", str, description="first UTC day of a date range (YYYY-MM-DD); "
                                               "the range is computed on demand"),
    OpenApiParameter("until", str, description="last UTC day of the range (default today)"),
]


class MonitoringView(AttestAPIView):
    @extend_schema(parameters=WINDOW_PARAMS, summary="Monitoring figures of a model version",
                   responses={200: OpenApiResponse(description=(
                       "health table (status and thresholds per signal), per-feature drift "
                       "(PSI, KS or chi-square), score drift, OOD, review, override, "
                       "rejection rates, latency p50/p95, cost, observed and estimated "
                       "performance, alerts, retraining signal, daily series")),
                       **error_responses(400, 401, 404)})
    def get(self, request, model):
        view = selectors.monitoring_view(user=request.user, model_name=model,
                                         params=request.query_params)
        return Response(monitoring_as_dict(view))


RunRequest = inline_serializer(name="MonitoringRunRequest", fields={
    "version": serializers.IntegerField(help_text="version number to compute now")})


class MonitoringRunView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(request=RunRequest, summary="Count the log and compute a version now",
                   responses={201: OpenApiResponse(description="the run"),
                              **error_responses(400, 401, 403, 404)})
    def post(self, request, model):
        obj = model_get_for_user(user=request.user, name=model)
        body = request.data if isinstance(request.data, dict) else {}
        if "version" not in body:
            raise ValidationFailed("Name the version to compute.", code="required",
                                   field="version")
        version = version_get_for_user(user=request.user, model_name=obj.name,
                                       number=body["version"])
        run = services.monitoring_run_for_user(user=request.user, version=version)
        return Response({"version": version.number, "computed_at": run.computed_at.isoformat(),
                         "duration_ms": run.duration_ms, "health": run.summary["health"],
                         "retraining": run.summary["retraining"]},
                        status=status.HTTP_201_CREATED)


PolicyRequest = inline_serializer(name="MonitoringPolicy", fields={
    "thresholds": serializers.DictField(required=False, help_text="overrides of the defaults"),
    "subgroups": serializers.ListField(child=serializers.DictField(), required=False),
    "cpu_hour_price": serializers.FloatField(required=False, allow_null=True),
})


class MonitoringPolicyView(AttestAPIView):
    parser_classes = [StrictJSONParser]

    @extend_schema(responses={200: OpenApiResponse(description="the policy and the defaults"),
                              **error_responses(401, 404)})
    def get(self, request, model):
        obj = model_get_for_user(user=request.user, name=model)
        policy = MonitoringPolicy.objects.filter(model=obj).first()
        return Response({"thresholds": policy.thresholds if policy else {},
                         "subgroups": policy.subgroups if policy else [],
                         "cpu_hour_price": policy.cpu_hour_price if policy else None,
                         "defaults": default_thresholds()})

    @extend_schema(request=PolicyRequest, summary="Replace the model's monitoring policy",
                   responses={200: OpenApiResponse(description="the policy"),
                              **error_responses(400, 401, 403, 404)})
    def put(self, request, model):
        obj = model_get_for_user(user=request.user, name=model)
        body = request.data if isinstance(request.data, dict) else None
        if body is None:
            raise ValidationFailed("Send a JSON object.", code="invalid")
        unknown = set(body) - {"thresholds", "subgroups", "cpu_hour_price"}
        if unknown:
            raise ValidationFailed(f"Unknown keys: {', '.join(sorted(unknown))}.",
                                   code="unknown_field", field=sorted(unknown)[0])
        policy = services.monitoring_policy_update(
            user=request.user, model=obj, thresholds=body.get("thresholds"),
            subgroups=body.get("subgroups"), cpu_hour_price=body.get("cpu_hour_price"))
        return Response({"thresholds": policy.thresholds, "subgroups": policy.subgroups,
                         "cpu_hour_price": policy.cpu_hour_price,
                         "defaults": default_thresholds()})


OutcomesRequest = inline_serializer(name="OutcomesRequest", fields={
    "outcomes": serializers.ListField(child=inline_serializer(name="Outcome", fields={
        "prediction_id": serializers.UUIDField(),
        "outcome": serializers.CharField(help_text="a label, or 1/0"),
        "outcome_date": serializers.DateField()}), required=False),
    "file": serializers.FileField(required=False, help_text="or a CSV with the header "
                                  "prediction_id,outcome,outcome_date (multipart)"),
})


class OutcomesView(AttestAPIView):
    parser_classes = [StrictJSONParser, MultiPartParser, FormParser]

    @extend_schema(request=OutcomesRequest, summary="Record observed outcomes (all or none)",
                   responses={201: OpenApiResponse(description="the recorded upload"),
                              **error_responses(400, 401, 403, 404, 409, 413)})
    def post(self, request, model):
        obj = model_get_for_user(user=request.user, name=model,
                                 capability=Capability.RECORD_OUTCOMES)
        if request.content_type.startswith("multipart/"):
            upload = request.FILES.get("file")
            if upload is None:
                raise ValidationFailed("Attach the CSV as 'file'.", code="required",
                                       field="file")
            rows, digest = services.outcome_rows_from_csv(upload)
            recorded = services.outcomes_record(user=request.user, model=obj, rows=rows,
                                                source=OutcomeSource.CSV,
                                                file_name=upload.name, sha256=digest)
        else:
            body = request.data if isinstance(request.data, dict) else None
            if body is None or set(body) != {"outcomes"}:
                raise ValidationFailed("Send {\"outcomes\": [{\"prediction_id\", \"outcome\", "
                                       "\"outcome_date\"}, ...]}.", code="invalid",
                                       field="outcomes")
            recorded = services.outcomes_record(user=request.user, model=obj,
                                                rows=body["outcomes"], source=OutcomeSource.API)
        return Response({"id": str(recorded.public_id), "recorded": recorded.rows,
                         "sha256": recorded.sha256, "source": recorded.source,
                         "audit_event": recorded.event_seq,
                         "recorded_at": recorded.recorded_at.isoformat()},
                        status=status.HTTP_201_CREATED)


urlpatterns = [
    path("models/<str:model>/monitoring/", MonitoringView.as_view(), name="api-monitoring"),
    path("models/<str:model>/monitoring/runs/", MonitoringRunView.as_view(),
         name="api-monitoring-runs"),
    path("models/<str:model>/monitoring/policy/", MonitoringPolicyView.as_view(),
         name="api-monitoring-policy"),
    path("models/<str:model>/outcomes/", OutcomesView.as_view(), name="api-outcomes"),
]
