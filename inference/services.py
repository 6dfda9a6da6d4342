"""Predictions: validate → OOD check → score → route → log → respond.

The same service answers the REST endpoint and the clinician's form.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.errors import Conflict, ErrorItem, NotFound, PermissionDenied, ValidationFailed
from core.hashing import canonical_bytes
from registry.loading import version_model_load
from registry.models import ModelVersion, RegisteredModel, VersionState
from registry.roles import Capability
from registry.selectors import (
    model_get_for_user,
    require_capability,
    serving_versions,
    user_capabilities,
)

from .log import chain_advance, chain_links, chain_lock, row_time_text
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
        except (ValueError, TypeError, OverflowError, ModelVersion.DoesNotExist):
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


class ScoringFailed(ValueError):
    """The model could not score validated inputs (numerical overflow, non-finite output).

    ``rows`` are the indices of the affected inputs when known, else None.
    """

    def __init__(self, message: str, rows: list[int] | None = None) -> None:
        super().__init__(message)
        self.rows = rows


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


def shadow_version_for(*, model: RegisteredModel, version: ModelVersion) -> ModelVersion | None:
    """The version scoring in shadow beside ``version``, if any."""
    return (ModelVersion.objects.select_related("model", "dataset")
            .filter(model=model, shadow=True).exclude(pk=version.pk).first())


def _shadow(model: RegisteredModel, production: ModelVersion, rows: list[dict],
            shadow: Any) -> tuple:
    """Score the shadow version, if any; its failures never reach the caller."""
    if shadow is _LOOK_UP:
        shadow = shadow_version_for(model=model, version=production)
    if shadow is None:
        return None, [None] * len(rows)
    try:
        loaded = version_model_load(version=shadow)
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


def prediction_create(*, user, model: RegisteredModel | str, instances: list[Any],
                      version_number: Any = None, many: bool = False) -> list[Result]:
    """Validate, check, score, route and log one or more inputs.

    1. Permission (``predict``; a model the user may not view is NotFound) and the
       target version: production, unless an owner names one to test. The
       production and shadow versions come in one query.
    2. Every instance is validated; any error refuses the whole request with all
       errors listed per field, and the refusal is counted by reason code.
       Out-of-distribution flags refuse too when the version's policy is reject.
    3. Valid instances are scored in one call; each is routed to review when its
       confidence is below the threshold or it was flagged out of distribution.
    4. The shadow version (if running) scores the same inputs; never returned.
    5. Predictions (and review items) are written in one transaction with their
       row hashes; the answer is returned only after that commit.
    """
    started, cpu_started = time.perf_counter(), time.thread_time()
    if isinstance(model, str):
        model = model_get_for_user(user=user, name=model, capability=Capability.PREDICT)
    else:
        require_capability(user=user, model=model, capability=Capability.PREDICT)
    if not isinstance(instances, list) or not instances:
        raise ValidationFailed("Send {\"inputs\": {...}} or a non-empty \"instances\" list.",
                               code="invalid", field="inputs")
    if len(instances) > MAX_INSTANCES:
        raise ValidationFailed(f"At most {MAX_INSTANCES} instances per request; use a batch job "
                               "for more.", code="too_many_instances", field="instances")
    production, shadow = serving_versions(model=model)
    if version_number in (None, "") and production is not None:
        version = production
    else:
        try:
            version = target_version(user=user, model=model, number=version_number)
        except OverflowError:  # int() of an infinite "version"
            raise ValidationFailed(f"{model.name} has no version {version_number}.",
                                   code="unknown_version", field="version") from None
    if shadow is not None and shadow.pk == version.pk:
        shadow = None
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
    loaded = version_model_load(version=version,
                                purpose="single" if len(checked) < 100 else "batch")
    requester = user if user.is_authenticated else None
    try:
        rows, reviews = score_and_build(model=model, version=version, checked=checked,
                                        loaded=loaded, requester=requester, started=started,
                                        shadow=shadow, cpu_started=cpu_started)
    except ScoringFailed as exc:
        rejection_count(model=model, version=version, code="unscorable")
        message = ("The model could not score this input: a value is too extreme for it "
                   f"({exc}).")
        fields = ([f"instances.{i}" if many else "inputs" for i in exc.rows] if exc.rows
                  else ["instances" if many else "inputs"])
        raise ValidationFailed(items=[ErrorItem("unscorable", message, f) for f in fields],
                               extra={"model_version": version.number}) from None
    with transaction.atomic():
        head = chain_lock(model.pk)  # before the ids: a model's ids follow its chain
        links = chain_links(head, [p.row_hash for p in rows])
        for prediction, link in zip(rows, links, strict=True):
            prediction.chain_hash = link
        Prediction.objects.bulk_create(rows)
        chain_advance(head, links=links, last_id=rows[-1].pk)
        for review in reviews:
            review.prediction_id = review.prediction.pk
        ReviewItem.objects.bulk_create(reviews)
    for prediction in rows:  # the objects we hold, so answering does not fetch them again
        prediction.model, prediction.version = model, version
    by_prediction = {r.prediction_id: r for r in reviews}
    return [Result(p, by_prediction.get(p.pk)) for p in rows]


_LOOK_UP = object()  # score_and_build: find the shadow version itself
_ATTNAMES: list[str] = []


def _prediction_attnames() -> list[str]:
    """Prediction's concrete fields' attnames in order (the positional constructor's)."""
    if not _ATTNAMES:
        _ATTNAMES.extend(f.attname for f in Prediction._meta.concrete_fields)
    return _ATTNAMES


def score_and_build(*, model: RegisteredModel, version: ModelVersion, checked: list[Checked],
                    loaded, requester, started: float, batch=None,
                    row_indices: list[int] | None = None, shadow: Any = _LOOK_UP,
                    cpu_started: float | None = None) -> tuple[list[Prediction], list[ReviewItem]]:
    """Score validated inputs, route them and build (unsaved) log rows and review items.

    Single predictions use this; batch jobs use ``score_rows`` directly and write the
    same rows with COPY, so both route and log alike.
    """
    scored = score_rows(model=model, version=version, checked=checked, loaded=loaded,
                        requester=requester, started=started, batch=batch,
                        row_indices=row_indices, shadow=shadow, cpu_started=cpu_started)
    rows, reviews = [], []
    attnames = _prediction_attnames()
    for row in scored:
        # Positional: Model.__init__'s keyword path costs more than the rest of this loop.
        values = row.values
        prediction = Prediction(*[row.input if a == "input" else values.get(a)
                                  for a in attnames])
        prediction.public_id = uuid.UUID(values["public_id"])
        rows.append(prediction)
        if row.review:
            reviews.append(ReviewItem(prediction=prediction, model=model, version=version,
                                      created_at=row.values["created_at"]))
    return rows, reviews


@dataclass(slots=True)
class ScoredRow:
    """One log row before it is written: ``values`` are Prediction's fields (with
    ``row_hash``) except ``input``; ``input_json`` is the input's canonical JSON, the bytes
    ``input_sha256`` was taken over."""

    values: dict[str, Any]
    input: dict[str, Any]
    input_json: bytes
    review: bool


_SORT_KEYS = orjson.OPT_SORT_KEYS


def _canonical(value: Any) -> bytes:
    """canonical_bytes, faster for plain JSON values (str keys; str, int, float, bool, None,
    lists and dicts of them), which is all a validated input or a log row holds; anything
    else goes to canonical_bytes itself, so the bytes are always canonical_bytes' bytes."""
    try:
        return orjson.dumps(value, option=_SORT_KEYS)
    except TypeError:
        return canonical_bytes(value)


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid4_texts(n: int) -> list[str]:
    """n random (version 4) UUIDs as text, as ``str(uuid.uuid4())`` gives them: 122 random
    bits from os.urandom, the version nibble 4 and the RFC 4122 variant bits 10."""
    h = os.urandom(16 * n).hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{_VARIANT[h[i + 16]]}"
            f"{h[i + 17:i + 20]}-{h[i + 20:i + 32]}" for i in range(0, 32 * n, 32)]


def _probabilities(loaded, checked: list[Checked], matrix: np.ndarray | None) -> np.ndarray:
    try:
        proba = None
        if matrix is not None:
            proba = loaded.predict_proba_matrix(matrix)
        if proba is None:
            proba = loaded.predict_proba([c.values for c in checked])
    except (ValueError, OverflowError, FloatingPointError) as exc:
        # Validated inputs the model cannot represent (e.g. 1e300 overflowing a scaler).
        raise ScoringFailed(str(exc)[:200]) from exc
    finite = np.isfinite(proba).all(axis=1)
    if not finite.all():
        raise ScoringFailed("non-finite probabilities",
                            rows=[int(i) for i in np.flatnonzero(~finite)])
    return proba


def score_rows(*, model: RegisteredModel, version: ModelVersion, checked: list[Checked],
               loaded, requester, started: float, batch=None,
               row_indices: list[int] | None = None, shadow: Any = _LOOK_UP,
               matrix: np.ndarray | None = None,
               cpu_started: float | None = None) -> list[ScoredRow]:
    """Score validated inputs (``matrix``: the same inputs as a float matrix in schema
    order, when the caller has one), route each, and build its log row and row hash.
    ``cpu_started``: ``time.thread_time()`` when the caller began on these inputs; each
    row records its share of the thread's CPU time since (``cpu_ms``)."""
    proba = _probabilities(loaded, checked, matrix)
    labels = version.output_schema.get("labels") or [str(i) for i in range(proba.shape[1])]
    positive = labels.index(version.output_schema.get("positive_label", labels[-1]))
    shadow, shadow_outputs = _shadow(model, version, [c.values for c in checked], shadow)
    now = timezone.now()
    created_text = row_time_text(now)
    latency = (time.perf_counter() - started) * 1000 / (len(checked) if batch else 1)
    out = []
    # Plain Python floats and the argmax of every row at once: per-element numpy scalar
    # access costs more than the rest of building a row.
    best = proba.argmax(axis=1).tolist()
    shadow_pk = shadow.pk if shadow else None
    requester_pk = requester.pk if requester else None
    batch_pk = batch.pk if batch else None
    latency_ms = round(latency, 3)
    # The row building below is a few µs a row: the CPU share is taken before it.
    cpu_ms = (round((time.thread_time() - cpu_started) * 1000 / len(checked), 4)
              if cpu_started is not None and checked else None)
    runtime = loaded.runtime
    sha256 = hashlib.sha256
    public_ids = uuid4_texts(len(checked))
    threshold, auto = version.confidence_threshold, Routing.AUTO
    for i, (c, p, k, shadow_out) in enumerate(zip(checked, proba.tolist(), best, shadow_outputs,
                                                  strict=True)):
        confidence = p[k]
        if confidence >= threshold and not c.ood:  # _route's answer, without the call
            routing, reason = auto, ""
        else:
            routing, reason = _route(version, confidence, c)
        input_json = _canonical(c.values)
        values = {
            "public_id": public_ids[i], "model_id": model.pk, "version_id": version.pk,
            "input_sha256": sha256(input_json).hexdigest(), "label": labels[k],
            "score": round(p[positive], 6), "confidence": round(confidence, 6),
            "probabilities": {label: round(q, 6) for label, q in zip(labels, p, strict=False)},
            "routing": routing, "reason": reason, "ood": c.ood,
            "shadow_version_id": shadow_pk, "shadow_output": shadow_out,
            "requester_id": requester_pk, "runtime": runtime,
            "created_at": now, "latency_ms": latency_ms,
            "batch_id": batch_pk,
            "row_index": row_indices[i] if row_indices is not None else None,
        }
        # log.row_hash(values) without its per-row copying and time formatting: the keys
        # are exactly log.ROW_FIELDS (and imputed, log.ROW_FIELDS_WHEN_SET, when a feature
        # was) and public_id is text already (tests compare the two).
        material = values.copy()
        material["created_at"] = created_text
        if c.imputed:
            material["imputed"] = c.imputed
        values["row_hash"] = sha256(_canonical(material)).hexdigest()
        values["imputed"] = c.imputed
        values["cpu_ms"] = cpu_ms  # after the hash: not one of log.ROW_FIELDS
        out.append(ScoredRow(values, c.values, input_json, routing == Routing.REVIEW))
    return out


# -- review queue ---------------------------------------------------------------------

def is_own_prediction(*, user, prediction: Prediction) -> bool:
    """The user requested the prediction, and so may not review it (unless allowed)."""
    return (not settings.ATTEST_REVIEW_OWN_PREDICTIONS and user.is_authenticated
            and prediction.requester_id == user.pk)


def review_decide(*, user, item: ReviewItem, decision: str, final_label: str = "",
                  reason_code: str = "", comment: str = "") -> ReviewItem:
    require_capability(user=user, model=item.model, capability=Capability.REVIEW)
    if is_own_prediction(user=user, prediction=item.prediction):
        raise PermissionDenied("You requested this prediction: another reviewer decides it.",
                               code="own_prediction", field="decision")
    problems = []
    if decision not in ReviewDecision.values:
        problems.append(ErrorItem("invalid", "decision must be accept or override.", "decision"))
    labels = item.version.output_schema.get("labels") or []
    if decision == ReviewDecision.OVERRIDE:
        if final_label not in labels:
            problems.append(ErrorItem("invalid_label", f"Choose the final label: "
                                      f"{' or '.join(labels)}.", "final_label"))
        elif final_label == item.prediction.label:
            problems.append(ErrorItem("invalid_label", "An override needs a label other than the "
                                      "model's; accept instead.", "final_label"))
        if reason_code not in OverrideReason.values:
            problems.append(ErrorItem("required", "An override needs a reason (reason_code: "
                                      f"{', '.join(OverrideReason.values)}).", "reason_code"))
        if reason_code == OverrideReason.OTHER and not comment.strip():
            problems.append(ErrorItem("required", "Explain 'other' in the comment.", "comment"))
    elif final_label and final_label != item.prediction.label:
        problems.append(ErrorItem("invalid_label", f"Accept keeps the model's label "
                                  f"({item.prediction.label}); to record {final_label}, "
                                  "override.", "final_label"))
    if decision != ReviewDecision.OVERRIDE and reason_code and \
            reason_code not in OverrideReason.values:
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


# Code that still needs raw inputs after they are logged registers here (monitoring's drift
# counts, from monitoring.apps): inference imports none of it, since it sits above.
# ``catch_up()`` does its pending work and answers the highest prediction id whose raw
# input it no longer needs; the purge drops no input past the lowest answer.
_input_consumers: dict[str, Callable[[], int]] = {}


def input_consumer_register(*, name: str, catch_up: Callable[[], int]) -> None:
    _input_consumers[name] = catch_up


def _purge_bound() -> tuple[int | None, dict[str, int]]:
    answers: dict[str, int] = {}
    for name, catch_up in _input_consumers.items():
        try:
            answers[name] = int(catch_up())
        except Exception:  # noqa: BLE001 - unknown progress: keep every input
            log.exception("input consumer %s failed; no raw input is purged this time", name)
            answers[name] = 0
    return (min(answers.values()) if answers else None), answers


def prediction_inputs_purge(*, now=None) -> dict[str, int]:
    """Drop raw inputs older than each model's retention period; hashes stay. Inputs an
    input consumer has not taken in yet are kept until a later purge (the event says
    how many)."""
    now = now or timezone.now()
    bound, consumers = _purge_bound()
    purged: dict[str, int] = {}
    for model in RegisteredModel.objects.all():
        cutoff = now - timedelta(days=model.retention_days)
        with transaction.atomic():
            due = Prediction.objects.filter(model=model, created_at__lt=cutoff,
                                            input__isnull=False)
            held = 0
            if bound is not None:
                held = due.filter(id__gt=bound).count()
                due = due.filter(id__lte=bound)
            n = due.update(input=None, purged_at=now)
            if n or held:
                details = {"rows": n, "older_than": cutoff.isoformat(),
                           "retention_days": model.retention_days}
                if held:
                    details |= {"held_back": held, "consumed_through": consumers}
                audit_event_record(action=Action.PREDICTION_INPUTS_PURGED, obj=model,
                                   model_id=model.pk, model_name=model.name, details=details)
            if n:
                _explanation_values_purge(model=model, now=now)
        if n:
            purged[model.name] = n
    return purged


def _explanation_values_purge(*, model: RegisteredModel, now) -> int:
    """Explanations hold the values of the inputs they explain: drop them for every input
    no prediction keeps any more (the same input may be logged again, later, and still be
    within retention). Contributions stay. Runs in the purge's transaction."""
    from explain.services import explanation_keys_with_values, explanation_values_purge

    version_ids = list(model.versions.values_list("pk", flat=True))
    keys = explanation_keys_with_values(version_ids=version_ids)
    if not keys:
        return 0
    held: set[tuple[int, str]] = set()
    shas = sorted({sha for _, sha in keys})
    for start in range(0, len(shas), 500):
        held |= set(Prediction.objects.filter(
            version_id__in=version_ids, input_sha256__in=shas[start:start + 500],
            input__isnull=False).values_list("version_id", "input_sha256"))
    return explanation_values_purge(keys=keys - held, now=now, model=model)


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
