"""Reads of predictions and the review queue, for a user."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from registry.models import ModelVersion, VersionState
from registry.roles import Capability
from registry.selectors import model_list_for_user, user_capabilities

from .models import Prediction, RejectionCount, ReviewItem, ReviewStatus
from .validation import ood_flag_redacted

# Versions that have never served in production: predictions from them come from
# owners testing (the review pages say so).
UNRELEASED_STATES = (VersionState.DRAFT, VersionState.IN_REVIEW, VersionState.APPROVED,
                     VersionState.REJECTED, VersionState.DISCARDED)


def review_queue_for_user(*, user, status: str = ReviewStatus.OPEN) -> QuerySet[ReviewItem]:
    """Items on models the user reviews: open ones oldest first (the longest waiting
    at the top), decided ones most recently decided first."""
    order = ("created_at", "id") if status == ReviewStatus.OPEN else ("-decided_at", "-id")
    return (ReviewItem.objects.filter(model__in=model_list_for_user(user=user,
                                                                    capability=Capability.REVIEW),
                                      status=status)
            .select_related("prediction", "prediction__requester", "model", "version",
                            "reviewer")
            .order_by(*order))


def review_item_get_for_user(*, user, item_id) -> ReviewItem | None:
    try:
        pk = int(item_id)
    except (TypeError, ValueError):
        return None
    return (ReviewItem.objects.filter(pk=pk, model__in=model_list_for_user(
        user=user, capability=Capability.REVIEW)).select_related(
        "prediction", "model", "version", "reviewer").first())


def testable_versions(*, user, model) -> list[ModelVersion]:
    """The versions an owner may score on the predict form (newest first): every one
    but discarded and rejected ones; empty for those who may not target a version."""
    if Capability.REGISTER_VERSION not in user_capabilities(user=user, model=model):
        return []
    return list(model.versions.exclude(state__in=(VersionState.DISCARDED,
                                                  VersionState.REJECTED))
                .order_by("-number").only("id", "number", "state"))


def predictions_requested_by(*, user) -> QuerySet[Prediction]:
    """The user's own single predictions (not batch rows), newest first, on the models
    they may still see."""
    return (Prediction.objects.filter(requester=user, batch__isnull=True,
                                      model__in=model_list_for_user(user=user))
            .select_related("model", "version", "review", "review__reviewer")
            .order_by("-id"))


def can_see_raw_inputs(*, user, prediction: Prediction) -> bool:
    return Capability.VIEW_PREDICTIONS in user_capabilities(user=user, model=prediction.model)


def ood_flags(*, prediction: Prediction, reveal: bool) -> list[dict]:
    """The prediction's out-of-distribution flags for a reader: as logged for those who
    may see its raw input while it is kept, else rebuilt without any input value."""
    if reveal and prediction.input is not None:
        return prediction.ood
    return [ood_flag_redacted(flag) for flag in prediction.ood or []]


def review_stats(*, version: ModelVersion) -> dict:
    """Queue size, oldest open item, override rate and direction for one version."""
    items = ReviewItem.objects.filter(version=version)
    open_items = items.filter(status=ReviewStatus.OPEN)
    oldest = open_items.order_by("created_at").values_list("created_at", flat=True).first()
    decided = items.filter(status=ReviewStatus.DECIDED)
    n_decided = decided.count()
    overrides = decided.filter(decision="override")
    direction: dict[str, dict[str, int]] = {}
    for row in overrides.values("prediction__label", "final_label").annotate(n=Count("id")):
        direction.setdefault(row["prediction__label"], {})[row["final_label"]] = row["n"]
    reasons = dict(overrides.values_list("reason_code").annotate(n=Count("id")))
    n_over = overrides.count()
    return {
        "open": open_items.count(),
        "oldest_open_age_seconds": int((timezone.now() - oldest).total_seconds()) if oldest else None,
        "decided": n_decided,
        "overrides": n_over,
        "override_rate": round(n_over / n_decided, 4) if n_decided else None,
        "direction": direction,
        "override_reasons": reasons,
        "predictions": Prediction.objects.filter(version=version).count(),
        "routed_to_review": items.count(),
    }


def rejection_summary(*, model, days: int = 30) -> list[dict]:
    since = timezone.now().date() - timedelta(days=days)
    rows = (RejectionCount.objects.filter(model=model, day__gte=since).values("code")
            .annotate(total=Sum("count")).order_by("-total"))
    return [{"code": r["code"], "count": r["total"]} for r in rows]



def latency_summary(*, model, last: int = 2000) -> dict | None:
    """p50/p95 server-side latency of the model's most recent single predictions."""
    values = sorted(Prediction.objects.filter(model=model, batch__isnull=True)
                    .order_by("-id").values_list("latency_ms", flat=True)[:last])
    if not values:
        return None
    def pick(q):
        return values[min(len(values) - 1, int(q * len(values)))]
    return {"n": len(values), "p50_ms": round(pick(0.5), 2), "p95_ms": round(pick(0.95), 2)}
