"""Predictions: validate → OOD check → score → route → log → respond.

The same service answers the REST endpoint and the clinician's form.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.errors import Conflict, ErrorItem, NotFound, PermissionDenied, ValidationFailed
from core.hashing import sha256_json
from registry.models import ModelVersion, RegisteredModel, VersionState
from registry.roles import Capability
from registry.selectors import require_capability, user_capabilities

from .log import row_hash
from .models import (
    OverrideReason,
    Prediction,
    RejectionCount,
    ReviewDecision,
    ReviewItem,
    ReviewStatus,
    Routing,
)
from .validation import Checked, check_input

log = logging.getLogger(__name__)
MAX_INSTANCES = 1000


def _load(version: ModelVersion, purpose: str = "single"):
    try:
        from registry.serving import serving_model_load
    except ImportError:  # serving evidence not available: the registry's own loader
        from registry.services import model_version_load

        return model_version_load(version=version)
    return serving_model_load(version=version, purpose=purpose)


def rejection_count(*, model: RegisteredModel, version: ModelVersion | None, code: str,
                    n: int = 1) -> None:
    """Count a refused request by reason (the request itself is not stored)."""
    day = timezone.now().date()
    updated = RejectionCount.objects.filter(model=model, version=version, day=day, code=code) \
        .update(count=F("count") + n)
    if not updated:
        try:
            with transaction.atomic():
                RejectionCount.objects.create(model=model, version=version, day=day, code=code,
                                              count=n)
        except IntegrityError:  # created concurrently
            RejectionCount.objects.filter(model=model, version=version, day=day, code=code) \
                .update(count=F("count") + n)


def target_version(*, user, model: RegisteredModel, number: Any = None) -> ModelVersion:
    """Production, or (for those who register versions) a named version for testing."""
    if number not in (None, ""):
        if Capability.REGISTER_VERSION not in user_capabilities(user=user, model=model):
            raise PermissionDenied("Only the model's owners may target a specific version.",
                                   code="permission_denied", field="version")
        try:
            version = model.versions.select_related("dataset").get(number=int(number))
        except (ValueError, TypeError, ModelVersion.DoesNotExist):
            raise ValidationFailed(f"{model.name} has no version {number}.",
                                   code="unknown_version", field="version") from None
        if version.state in (VersionState.DISCARDED, VersionState.REJECTED):
            raise Conflict(f"v{version.number} is {version.get_state_display().lower()}.",
                           code="version_unavailable", field="version")
        return version
    version = (model.versions.select_related("dataset")
               .filter(state=VersionState.PRODUCTION).first())
    if version is None:
        rejection_count(model=model, version=None, code="no_production_version")
        raise Conflict(f"{model.name} has no version in production.",
                       code="no_production_version")
    return version


@dataclass
class Result:
    prediction: Prediction
    review: ReviewItem | None


def _route(version: ModelVersion, confidence: float, checked: Checked) -> tuple[str, str]:
    reasons = []
    if confidence < version.confidence_threshold:
        reasons.append(f"low_confidence: {confidence:.3f} < threshold "
                       f"{version.confidence_threshold:.3f}")
    for flag in checked.ood:
        reasons.append(f"ood:{flag['code']}" + (f":{flag['feature']}" if flag["feature"] else ""))
    return (Routing.REVIEW if reasons else Routing.AUTO), "; ".join(reasons)[:300]


def _shadow(model: RegisteredModel, production: ModelVersion, rows: list[dict]) -> tuple:
    """Score the shadow version, if any; its failures never reach the caller."""
    shadow = model.versions.filter(shadow=True).exclude(pk=production.pk).first()
    if shadow is None:
        return None, [None] * len(rows)
    try:
        loaded = _load(shadow)
        names = [f["name"] for f in shadow.input_schema]
        proba = loaded.predict_proba([{n: r.get(n) for n in names} for r in rows])
        labels = shadow.output_schema.get("labels") or []
        positive = labels.index(shadow.output_schema.get("positive_label")) if labels else -1
        outputs = []
        for p in proba:
            k = int(np.argmax(p))
            outputs.append({"version": shadow.number, "label": labels[k] if labels else str(k),
                            "score": round(float(p[positive]), 6),
                            "confidence": round(float(p[k]), 6)})
        return shadow, outputs
    except Exception as exc:  # noqa: BLE001 - a shadow failure is logged, never raised
        log.warning("shadow scoring with %s failed: %s", shadow, exc)
        return shadow, [{"version": shadow.number, "error": f"{exc.__class__.__name__}"}] * len(rows)


def prediction_create(*, user, model: RegisteredModel, instances: list[Any],
                      version_number: Any = None, many: bool = False) -> list[Result]:
    """Validate, check, score, route and log one or more inputs.

    1. Permission and target version (production unless an owner names one).
    2. Every instance is validated; any error refuses the whole request with all
       errors listed per field, and the refusal is counted by reason code.
       Out-of-distribution flags refuse too when the version's policy is reject.
    3. Valid instances are scored in one call; each is routed to review when its
       confidence is below the threshold or it was flagged out of distribution.
    4. The shadow version (if running) scores the same inputs; never returned.
    5. Predictions (and review items) are written in one transaction with their
       row hashes; the answer is returned only after that commit.
    """
    started = time.perf_counter()
    require_capability(user=user, model=model, capability=Capability.PREDICT)
    if not isinstance(instances, list) or not instances:
        raise ValidationFailed("Send {\"inputs\": {...}} or a non-empty \"instances\" list.",
                               code="invalid", field="inputs")
    if len(instances) > MAX_INSTANCES:
        raise ValidationFailed(f"At most {MAX_INSTANCES} instances per request; use a batch job "
                               "for more.", code="too_many_instances", field="instances")
    version = target_version(user=user, model=model, number=version_number)
    schema, profile = version.input_schema, version.dataset.profile
    many = many or len(instances) > 1
    checked = [check_input(raw, schema=schema, profile=profile,
                           path=f"instances.{i}" if many else "inputs")
               for i, raw in enumerate(instances)]
    errors = [e for c in checked for e in c.errors]
    if version.ood_policy == "reject":
        for i, c in enumerate(checked):
            prefix = f"instances.{i}" if many else "inputs"
            errors += [ErrorItem(f"ood_{flag['code']}", flag["message"],
                                 f"{prefix}.{flag['feature']}" if flag["feature"] else prefix)
                       for flag in c.ood]
    if errors:
        for code in sorted({e.code for e in errors}):
            rejection_count(model=model, version=version, code=code)
        raise ValidationFailed(items=errors, extra={"model_version": version.number})
    loaded = _load(version, "single" if len(checked) < 100 else "batch")
    requester = user if user.is_authenticated else None
    rows, reviews = score_and_build(model=model, version=version, checked=checked, loaded=loaded,
                                    requester=requester, started=started)
    with transaction.atomic():
        Prediction.objects.bulk_create(rows)
        for review in reviews:
            review.prediction_id = review.prediction.pk
        ReviewItem.objects.bulk_create(reviews)
    by_prediction = {r.prediction_id: r for r in reviews}
    return [Result(p, by_prediction.get(p.pk)) for p in rows]


def score_and_build(*, model: RegisteredModel, version: ModelVersion, checked: list[Checked],
                    loaded, requester, started: float, batch=None,
                    row_indices: list[int] | None = None) -> tuple[list[Prediction],
                                                                   list[ReviewItem]]:
    """Score validated inputs, route them and build (unsaved) log rows and review items.

    Shared by single predictions and batch jobs, so both route and log alike.
    """
    proba = loaded.predict_proba([c.values for c in checked])
    labels = version.output_schema.get("labels") or [str(i) for i in range(proba.shape[1])]
    positive = labels.index(version.output_schema.get("positive_label", labels[-1]))
    shadow, shadow_outputs = _shadow(model, version, [c.values for c in checked])
    now = timezone.now()
    latency = (time.perf_counter() - started) * 1000 / (len(checked) if batch else 1)
    rows, reviews = [], []
    for i, (c, p, shadow_out) in enumerate(zip(checked, proba, shadow_outputs, strict=True)):
        k = int(np.argmax(p))
        confidence = float(p[k])
        routing, reason = _route(version, confidence, c)
        values = {
            "model_id": model.pk, "version_id": version.pk,
            "input_sha256": sha256_json(c.values), "label": labels[k],
            "score": round(float(p[positive]), 6), "confidence": round(confidence, 6),
            "probabilities": {labels[j]: round(float(p[j]), 6) for j in range(len(labels))},
            "routing": routing, "reason": reason, "ood": c.ood,
            "shadow_version_id": shadow.pk if shadow else None, "shadow_output": shadow_out,
            "requester_id": requester.pk if requester else None, "runtime": loaded.runtime,
            "created_at": now, "latency_ms": round(latency, 3),
            "batch_id": batch.pk if batch else None,
            "row_index": row_indices[i] if row_indices is not None else None,
        }
        prediction = Prediction(input=c.values, **values)
        values["public_id"] = prediction.public_id
        prediction.row_hash = row_hash(values)
        rows.append(prediction)
        if routing == Routing.REVIEW:
            reviews.append(ReviewItem(prediction=prediction, model=model, version=version,
                                      created_at=now))
    return rows, reviews


# -- review queue ---------------------------------------------------------------------

def review_decide(*, user, item: ReviewItem, decision: str, final_label: str = "",
                  reason_code: str = "", comment: str = "") -> ReviewItem:
    require_capability(user=user, model=item.model, capability=Capability.REVIEW)
    problems = []
    if decision not in ReviewDecision.values:
        problems.append(ErrorItem("invalid", "decision must be accept or override.", "decision"))
    labels = item.version.output_schema.get("labels") or []
    if decision == ReviewDecision.OVERRIDE:
        if final_label not in labels:
            problems.append(ErrorItem("invalid_label", f"final_label must be one of: "
                                      f"{', '.join(labels)}.", "final_label"))
        elif final_label == item.prediction.label:
            problems.append(ErrorItem("invalid_label", "An override needs a label other than the "
                                      "model's; accept instead.", "final_label"))
        if reason_code not in OverrideReason.values:
            problems.append(ErrorItem("required", "An override needs a reason code: "
                                      f"{', '.join(OverrideReason.values)}.", "reason_code"))
        if reason_code == OverrideReason.OTHER and not comment.strip():
            problems.append(ErrorItem("required", "Explain 'other' in the comment.", "comment"))
    elif reason_code and reason_code not in OverrideReason.values:
        problems.append(ErrorItem("invalid", "Unknown reason code.", "reason_code"))
    if problems:
        raise ValidationFailed(items=problems)
    with transaction.atomic():
        locked = ReviewItem.objects.select_for_update().select_related(
            "prediction", "model", "version").get(pk=item.pk)
        if locked.status != ReviewStatus.OPEN:
            raise Conflict("This item was already decided.", code="already_decided",
                           field="decision")
        locked.status = ReviewStatus.DECIDED
        locked.decision = decision
        locked.final_label = final_label if decision == ReviewDecision.OVERRIDE else \
            locked.prediction.label
        locked.reason_code = reason_code
        locked.comment = comment.strip()
        locked.reviewer = user
        locked.decided_at = timezone.now()
        locked.save()
        audit_event_record(
            action=Action.REVIEW_DECIDED, obj=locked, object_repr=str(locked),
            model_id=locked.model_id, model_name=locked.model.name,
            version_id=locked.version_id, version_label=locked.version.label,
            after={"decision": decision, "model_label": locked.prediction.label,
                   "final_label": locked.final_label, "reason_code": reason_code,
                   "prediction": str(locked.prediction.public_id)},
            reason=locked.comment)
    return locked


def prediction_inputs_purge(*, now=None) -> dict[str, int]:
    """Drop raw inputs older than each model's retention period; hashes stay."""
    now = now or timezone.now()
    purged: dict[str, int] = {}
    for model in RegisteredModel.objects.all():
        cutoff = now - timedelta(days=model.retention_days)
        with transaction.atomic():
            n = Prediction.objects.filter(model=model, created_at__lt=cutoff,
                                          input__isnull=False).update(input=None, purged_at=now)
            if n:
                audit_event_record(action=Action.PREDICTION_INPUTS_PURGED, obj=model,
                                   model_id=model.pk, model_name=model.name,
                                   details={"rows": n, "older_than": cutoff.isoformat(),
                                            "retention_days": model.retention_days})
        if n:
            purged[model.name] = n
    return purged


def prediction_get_for_user(*, user, public_id: str) -> Prediction:
    import uuid

    from registry.selectors import model_list_for_user

    try:
        public_id = str(uuid.UUID(str(public_id)))
    except ValueError:
        raise NotFound("No such prediction.") from None
    try:
        prediction = (Prediction.objects.select_related("version", "model", "requester")
                      .filter(public_id=public_id,
                              model__in=model_list_for_user(user=user,
                                                            capability=Capability.PREDICT)
                              | model_list_for_user(user=user, capability=Capability.REVIEW)
                              | model_list_for_user(user=user,
                                                    capability=Capability.VIEW_AUDIT)).first())
    except (ValueError, TypeError):
        prediction = None
    if prediction is None:
        raise NotFound("No such prediction.")
    return prediction
