"""Writes of the explain app: explanations (cached, audited), their jobs, version figures
and the purge of input values.

This app knows versions and inputs, never predictions: ``inference`` checks who may see
a prediction and hands over the prediction's version, input and input hash.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.errors import ApplicationError, Conflict, ValidationFailed
from core.hashing import canonical_bytes, normalize_json, sha256_json
from registry.models import ModelVersion, VersionState

from .choice import explainer_choose
from .compute import Computed, explanation_compute
from .limetab import DEFAULT_SAMPLES
from .models import (
    ACTIVE_STATUSES,
    Explanation,
    ExplanationJob,
    JobKind,
    JobStatus,
    Method,
    VersionExplanation,
)
from .reliability import DEFAULT_PARAMETERS, version_figures

log = logging.getLogger(__name__)
MAX_SEED = 2**31 - 1
LIME_SAMPLES_RANGE = (500, 20000)
DEFAULT_STALE_SECONDS = 120


def _event_fields(version: ModelVersion) -> dict:
    return {"model_id": version.model_id, "model_name": version.model.name,
            "version_id": version.pk, "version_label": version.label}


def explanation_parameters(method: Any, raw: Any) -> tuple[str, dict]:
    """The method and its full parameters (defaults filled in), or ValidationFailed.

    shap: ``seed`` (used by the permutation explainer; the exact ones ignore it);
    lime: ``seed`` and ``samples``.
    """
    if method not in Method.values:
        raise ValidationFailed("method must be shap or lime.", code="invalid", field="method")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ValidationFailed("parameters must be an object.", code="invalid",
                               field="parameters")
    allowed = {"seed"} | ({"samples"} if method == Method.LIME else set())
    unknown = set(raw) - allowed
    if unknown:
        raise ValidationFailed(f"Unknown parameters for {method}: {', '.join(sorted(unknown))}"
                               f" (allowed: {', '.join(sorted(allowed))}).",
                               code="unknown_field", field="parameters")
    params: dict[str, int] = {"seed": 0}
    if method == Method.LIME:
        params["samples"] = DEFAULT_SAMPLES
    for key, (lo, hi) in (("seed", (0, MAX_SEED)), ("samples", LIME_SAMPLES_RANGE)):
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValidationFailed(f"parameters.{key} must be a whole number from {lo} to {hi}.",
                                   code="invalid", field=f"parameters.{key}")
        params[key] = value
    return method, params


def input_sha256_of(inputs: dict) -> str:
    """The sha256 inference logs for an input: over its canonical JSON."""
    import hashlib

    return hashlib.sha256(canonical_bytes(inputs)).hexdigest()


def explanation_lookup(*, version: ModelVersion, input_sha256: str, method: str,
                       parameters: dict) -> Explanation | None:
    return Explanation.objects.filter(version=version, input_sha256=input_sha256,
                                      method=method,
                                      parameters_sha256=sha256_json(parameters)).first()


def explanation_store(*, version: ModelVersion, input_sha256: str, method: str,
                      parameters: dict, computed: Computed, user=None) -> Explanation:
    """Store a computed explanation and its audit event in one transaction; if the key is
    stored already (another worker got there first), that row is the answer and nothing
    is recorded twice."""
    params_sha = sha256_json(parameters)
    content = normalize_json(computed.content)
    try:
        with transaction.atomic():
            row = Explanation.objects.create(
                version=version, input_sha256=input_sha256, method=method,
                parameters=parameters, parameters_sha256=params_sha,
                explainer=computed.explainer, explainer_reason=computed.reason,
                units=computed.units, content=content, content_sha256=sha256_json(content),
                values=normalize_json(computed.values),
                background_source=computed.background_source,
                background_sha256=computed.background_sha256, seed=computed.seed,
                samples=computed.samples, library_versions=computed.library_versions,
                compute_ms=computed.compute_ms,
                created_by=user if getattr(user, "is_authenticated", False) else None)
            audit_event_record(action=Action.EXPLANATION_CREATED, obj=row, **_event_fields(version),
                               details={"method": method, "explainer": computed.explainer,
                                        "input_sha256": input_sha256,
                                        "content_sha256": row.content_sha256,
                                        "parameters": parameters,
                                        "background_source": computed.background_source,
                                        "background_sha256": computed.background_sha256,
                                        "seed": computed.seed, "samples": computed.samples,
                                        "library_versions": computed.library_versions})
    except IntegrityError:
        existing = Explanation.objects.filter(version=version, input_sha256=input_sha256,
                                              method=method, parameters_sha256=params_sha).first()
        if existing is None:
            raise
        return existing
    return row


@dataclass
class Outcome:
    """What a request for an explanation got: the explanation, or the job computing it."""

    explanation: Explanation | None = None
    job: ExplanationJob | None = None
    inline: bool = False


def _refuse_purged(version: ModelVersion) -> Conflict:
    return Conflict(f"The raw input of this prediction was purged after {version.model.name}'s "
                    f"retention period ({version.model.retention_days} days), and a new "
                    "explanation needs it. Explanations made before the purge are kept, "
                    "without the input's values.", code="input_purged", field="method")


def explanation_request(*, user, version: ModelVersion, inputs: dict | None,
                        input_sha256: str, method: Any, parameters: Any = None,
                        inline_only: bool = False) -> Outcome:
    """The explanation of one input, from the cache, computed now, or as a job.

    1. Parameters are checked and completed; a stored explanation for (version, input
       hash, method, parameters) is the answer.
    2. Without the raw input (purged) nothing new can be computed: Conflict.
    3. SHAP whose explainer is cheap for this model (tree under the inline budget,
       linear) is computed and stored now.
    4. Anything else becomes a job (one per key under way; a second request joins it)
       run by a worker; with ``inline_only`` no job is made and the outcome is empty.
    """
    method, params = explanation_parameters(method, parameters)
    stored = explanation_lookup(version=version, input_sha256=input_sha256, method=method,
                                parameters=params)
    if stored is not None:
        return Outcome(explanation=stored)
    if inputs is None:
        raise _refuse_purged(version)
    if input_sha256_of(inputs) != input_sha256:
        raise ValidationFailed("The input does not have the sha256 given for it.",
                               code="hash_mismatch", field="inputs")
    if method == Method.SHAP and explainer_choose(version=version).inline:
        computed = explanation_compute(version=version, inputs=inputs, method=method,
                                       parameters=params)
        return Outcome(explanation=explanation_store(
            version=version, input_sha256=input_sha256, method=method, parameters=params,
            computed=computed, user=user), inline=True)
    if inline_only:
        return Outcome()
    return Outcome(job=_job_for(kind=JobKind.PREDICTION, version=version,
                                input_sha256=input_sha256, method=method, parameters=params,
                                inputs=inputs, user=user))


def _job_for(*, kind: str, version: ModelVersion, input_sha256: str, method: str,
             parameters: dict, inputs: dict | None, user) -> ExplanationJob:
    """The job under way for this key, or a new one (enqueued after commit)."""
    params_sha = sha256_json(parameters)
    key = {"kind": kind, "version": version, "input_sha256": input_sha256, "method": method,
           "parameters_sha256": params_sha}
    active = ExplanationJob.objects.filter(status__in=ACTIVE_STATUSES, **key).first()
    if active is not None:
        return active
    try:
        with transaction.atomic():
            job = ExplanationJob.objects.create(
                parameters=parameters, input=normalize_json(inputs) if inputs is not None
                else None, queue=explain_queue(kind=kind, method=method), progress_total=0,
                requested_by=user if getattr(user, "is_authenticated", False) else None, **key)
            transaction.on_commit(lambda: enqueue(job.pk, job.queue))
    except IntegrityError:  # created concurrently: join it
        job = ExplanationJob.objects.filter(status__in=ACTIVE_STATUSES, **key).first()
        if job is None:
            raise
    return job


def explain_queue(*, kind: str = JobKind.PREDICTION, method: str = Method.SHAP) -> str:
    """The Celery queue of explanation work: ``gpu`` for SHAP of inputs (a job's one
    input, a batch's rows) when a GPU worker is configured (ATTEST_GPU_QUEUE_ENABLED),
    ``default`` otherwise and for LIME and a version's figures, whose time goes to LIME's
    sampling, which an accelerator does not speed up.

    What runs there is the same code, so the values are the same on either queue: on a
    worker with an accelerator the model-agnostic path's model calls of an ONNX version
    go through onnxruntime's CUDA provider (``registry.runtime.onnx_providers``); TreeSHAP
    and LinearSHAP run on that worker's CPU (shap's GPU tree explainer needs a CUDA build
    of shap, which the image does not install), and the queue keeps their long runs off
    the default workers.
    """
    if not getattr(settings, "ATTEST_GPU_QUEUE_ENABLED", False):
        return "default"
    return "gpu" if method == Method.SHAP and kind == JobKind.PREDICTION else "default"


# -- running jobs --------------------------------------------------------------------------

def enqueue(job_id: int, queue: str) -> None:
    """Queue the job's task; without a broker (the embedded shape) run it beside the
    request in a thread (tests: synchronously)."""
    from celery import current_app

    from .tasks import run_explanation_job

    if current_app.conf.task_always_eager:
        if getattr(settings, "ATTEST_EXPLAIN_EAGER_THREAD", True):
            threading.Thread(target=_run_here, args=(job_id,), name=f"attest-explain-{job_id}",
                             daemon=True).start()
        else:
            run_explanation_job.apply(args=[job_id], throw=True)
        return
    try:
        run_explanation_job.apply_async(args=[job_id], queue=queue, retry=True, retry_policy={
            "max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1})
    except Exception as exc:  # noqa: BLE001 - the row stays queued; resume_stale resends it
        log.warning("could not publish explanation job %s: %s; the stale-job sweep will "
                    "resend it", job_id, exc)


def _run_here(job_id: int) -> None:
    from .tasks import run_explanation_job

    try:
        run_explanation_job.apply(args=[job_id], throw=False)
    finally:
        connection.close()


class LostClaim(Exception):
    """Another run took the job over (it was re-queued as stale): stop without writing."""


def _progress_writer(job: ExplanationJob, claim: str):
    def progress(done: int, total: int, stage: str) -> None:
        moved = ExplanationJob.objects.filter(pk=job.pk, claim=claim,
                                              status=JobStatus.RUNNING).update(
            progress_done=done, progress_total=total, stage=stage[:100],
            updated_at=timezone.now())
        if not moved:
            raise LostClaim(job.pk)

    return progress


BUSY = "busy"


def explanation_job_run(*, job_id: int) -> str:
    """Run one job to its end; safe to deliver more than once.

    1. A finished job is left alone; a job another worker holds is left to it
       (``busy``). Claiming is a compare-and-set of (status queued → running, claim).
    2. The work: one input explained (stored once, by key, with its audit event), or a
       version's figures (stored once per version and parameters).
    3. Completion is a compare-and-set on the claim: a run that lost its claim (its job
       was resumed elsewhere as stale) writes nothing.
    """
    job = (ExplanationJob.objects.select_related("version", "version__model",
                                                 "version__dataset", "requested_by")
           .filter(pk=job_id).first())
    if job is None:
        return "missing"
    if job.status not in ACTIVE_STATUSES:
        return job.status
    claim = uuid.uuid4().hex
    now = timezone.now()
    claimed = ExplanationJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, claim=claim, attempts=F("attempts") + 1, updated_at=now,
        started_at=job.started_at or now)
    if not claimed:
        return BUSY
    progress = _progress_writer(job, claim)
    try:
        if job.kind == JobKind.PREDICTION:
            if job.input is None:
                raise _refuse_purged(job.version)
            computed = explanation_compute(version=job.version, inputs=job.input,
                                           method=job.method, parameters=job.parameters)
            progress(1, 1, "storing")
            # The explanation, its audit event and the job's completion commit together,
            # or not at all when the claim was lost meanwhile.
            with transaction.atomic():
                row = explanation_store(version=job.version, input_sha256=job.input_sha256,
                                        method=job.method, parameters=job.parameters,
                                        computed=computed, user=job.requested_by)
                if not _complete(job, claim, explanation=row):
                    raise LostClaim(job.pk)
        else:
            figures = version_figures(version=job.version, parameters=job.parameters,
                                      progress=progress)
            with transaction.atomic():
                version_explanation_store(version=job.version, parameters=job.parameters,
                                          figures=figures)
                if not _complete(job, claim):
                    raise LostClaim(job.pk)
    except LostClaim:
        log.warning("explanation job %s was taken over; this run stops", job.public_id)
        return BUSY
    except ApplicationError as exc:
        _fail(job, claim, exc.items[0].code, exc.message)
        return JobStatus.FAILED
    except Exception as exc:  # noqa: BLE001 - recorded on the job, which fails
        log.exception("explanation job %s failed", job.public_id)
        _fail(job, claim, "explanation_failed", f"{exc.__class__.__name__}: {exc}"[:2000])
        return JobStatus.FAILED
    return JobStatus.COMPLETED


def _complete(job: ExplanationJob, claim: str, *, explanation: Explanation | None = None) -> bool:
    return bool(ExplanationJob.objects.filter(pk=job.pk, claim=claim,
                                              status=JobStatus.RUNNING).update(
        status=JobStatus.COMPLETED, explanation=explanation, input=None,
        finished_at=timezone.now(), progress_done=F("progress_total"), stage=""))


def _fail(job: ExplanationJob, claim: str, code: str, message: str) -> None:
    ExplanationJob.objects.filter(pk=job.pk, claim=claim, status=JobStatus.RUNNING).update(
        status=JobStatus.FAILED, error=message[:2000], error_code=code[:40], input=None,
        finished_at=timezone.now())


def explanation_jobs_resume_stale(*, stale_after: timedelta | None = None) -> list[int]:
    """Re-queue jobs whose worker stopped (running, no progress for ``stale_after``) and
    resend queued ones whose message was lost; each by compare-and-set, so two sweeps
    resend a job once."""
    if stale_after is None:
        stale_after = timedelta(seconds=getattr(settings, "ATTEST_EXPLAIN_STALE_SECONDS",
                                                DEFAULT_STALE_SECONDS))
    now = timezone.now()
    cutoff = now - stale_after
    resumed = []
    for job_id, status, claim, queue in ExplanationJob.objects.filter(
            status__in=ACTIVE_STATUSES, updated_at__lte=cutoff).values_list(
            "pk", "status", "claim", "queue"):
        if status == JobStatus.RUNNING and _alive_here(job_id):
            continue
        moved = ExplanationJob.objects.filter(pk=job_id, status=status, claim=claim,
                                              updated_at__lte=cutoff).update(
            status=JobStatus.QUEUED, claim="", updated_at=now)
        if moved:
            enqueue(job_id, queue or "default")
            resumed.append(job_id)
    if resumed:
        log.warning("re-queued stalled explanation jobs %s", resumed)
    return resumed


def _alive_here(job_id: int) -> bool:
    return any(t.name == f"attest-explain-{job_id}" and t.is_alive()
               for t in threading.enumerate())


# -- per version ------------------------------------------------------------------------------

def version_explanation_request(*, version: ModelVersion, user=None,
                                parameters: dict | None = None) -> ExplanationJob | None:
    """Ask for a version's figures (the submit hook, a page button, the API): the job
    under way, or a new one; None when they are stored already."""
    params = {**DEFAULT_PARAMETERS, **(parameters or {})}
    if VersionExplanation.objects.filter(version=version,
                                         parameters_sha256=sha256_json(params)).exists():
        return None
    return _job_for(kind=JobKind.VERSION, version=version, input_sha256="", method=Method.SHAP,
                    parameters=params, inputs=None, user=user)


def version_explanation_on_submit(version: ModelVersion, user) -> None:
    """registry's submit hook: the figures are computed in the background from submit on."""
    if getattr(settings, "ATTEST_EXPLAIN_ON_SUBMIT", True):
        version_explanation_request(version=version, user=user)


def version_explanation_store(*, version: ModelVersion, parameters: dict,
                              figures: dict) -> VersionExplanation:
    content = normalize_json(figures["content"])
    params_sha = sha256_json(parameters)
    try:
        with transaction.atomic():
            row = VersionExplanation.objects.create(
                version=version, parameters=parameters, parameters_sha256=params_sha,
                explainer=figures["explainer"], explainer_reason=figures["reason"],
                units=figures["units"], content=content, content_sha256=sha256_json(content),
                background_source=figures["background_source"],
                background_sha256=figures["background_sha256"],
                library_versions=figures["library_versions"],
                compute_ms=figures["compute_ms"])
            stability = content["lime_stability"]
            agreement = content["shap_lime_agreement"]
            audit_event_record(action=Action.VERSION_EXPLAINED, obj=row, **_event_fields(version),
                               details={"explainer": row.explainer,
                                        "content_sha256": row.content_sha256,
                                        "background_source": row.background_source,
                                        "background_sha256": row.background_sha256,
                                        "lime_stability_mean": stability["mean"],
                                        "lime_stability_worst": stability["worst"],
                                        "lime_reading": stability["reading"],
                                        "shap_lime_feature_agreement":
                                            agreement["feature_agreement"],
                                        "shap_lime_sign_agreement": agreement["sign_agreement"],
                                        "library_versions": row.library_versions})
    except IntegrityError:
        existing = VersionExplanation.objects.filter(version=version,
                                                     parameters_sha256=params_sha).first()
        if existing is None:
            raise
        return existing
    return row


def versions_explanation_backfill(*, states: tuple[str, ...] | None = None) -> list[int]:
    """Ask for the figures of submitted versions that have none (versions submitted before
    explanations existed); returns the ids of the jobs made."""
    states = states or (VersionState.IN_REVIEW, VersionState.APPROVED, VersionState.PRODUCTION)
    made = []
    for version in ModelVersion.objects.filter(state__in=states).select_related("model",
                                                                                "dataset"):
        with transaction.atomic():
            job = version_explanation_request(version=version)
        if job is not None:
            made.append(job.pk)
    return made


# -- retention ---------------------------------------------------------------------------------

def explanation_keys_with_values(*, version_ids: list[int]) -> set[tuple[int, str]]:
    """(version id, input sha256) of explanations and jobs that still hold input values."""
    keys = set(Explanation.objects.filter(version_id__in=version_ids, values__isnull=False)
               .values_list("version_id", "input_sha256"))
    keys |= set(ExplanationJob.objects.filter(version_id__in=version_ids, input__isnull=False)
                .values_list("version_id", "input_sha256"))
    return keys


def explanation_values_purge(*, keys: set[tuple[int, str]], now=None,
                             model=None) -> int:
    """Drop the input values of explanations (and pending jobs) of these (version, input
    sha256) keys — called by the raw-input purge, in its transaction. Contributions
    stay; a job that still needed the input fails with the reason. One audit event."""
    if not keys:
        return 0
    now = now or timezone.now()
    by_version: dict[int, list[str]] = {}
    for version_id, sha in keys:
        by_version.setdefault(version_id, []).append(sha)
    purged = failed = 0
    with transaction.atomic():
        for version_id, shas in by_version.items():
            for start in range(0, len(shas), 500):
                chunk = shas[start:start + 500]
                purged += Explanation.objects.filter(
                    version_id=version_id, input_sha256__in=chunk,
                    values__isnull=False).update(values=None, values_purged_at=now)
                jobs = ExplanationJob.objects.filter(version_id=version_id,
                                                     input_sha256__in=chunk,
                                                     input__isnull=False)
                failed += jobs.filter(status__in=ACTIVE_STATUSES).update(
                    input=None, status=JobStatus.FAILED, error_code="input_purged",
                    error="The raw input was purged after the retention period before the "
                          "explanation was computed.", finished_at=now)
                jobs.update(input=None)
        if purged or failed:
            fields = {"model_id": model.pk, "model_name": model.name} if model else {}
            audit_event_record(action=Action.EXPLANATION_VALUES_PURGED,
                               object_type="explain.explanation", **fields,
                               details={"explanations": purged, "jobs_failed": failed,
                                        "keys": len(keys)})
    return purged
