"""Reads of explanations. Per input: the caller (``inference``) has already decided that
the user may see the prediction; per version: the registry's selectors decide."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from registry.models import ModelVersion

from .models import (
    ACTIVE_STATUSES,
    Explanation,
    ExplanationJob,
    JobKind,
    VersionExplanation,
)


def explanations_for_input(*, version: ModelVersion, input_sha256: str) -> QuerySet[Explanation]:
    return (Explanation.objects.filter(version=version, input_sha256=input_sha256)
            .select_related("version").order_by("method", "id"))


def jobs_for_input(*, version: ModelVersion, input_sha256: str,
                   active_only: bool = False) -> QuerySet[ExplanationJob]:
    jobs = ExplanationJob.objects.filter(kind=JobKind.PREDICTION, version=version,
                                         input_sha256=input_sha256)
    if active_only:
        jobs = jobs.filter(status__in=ACTIVE_STATUSES)
    return jobs.select_related("explanation", "explanation__version").order_by("-created_at")


def job_for_input(*, version: ModelVersion, input_sha256: str, job_id) -> ExplanationJob | None:
    """The job if it explains this very input of this version (else None: a 404)."""
    try:
        public_id = uuid.UUID(str(job_id))
    except ValueError:
        return None
    return jobs_for_input(version=version, input_sha256=input_sha256).filter(
        public_id=public_id).first()


def version_explanation_latest(*, version: ModelVersion) -> VersionExplanation | None:
    return VersionExplanation.objects.filter(version=version).order_by("-id").first()


def version_job_latest(*, version: ModelVersion) -> ExplanationJob | None:
    return (ExplanationJob.objects.filter(kind=JobKind.VERSION, version=version)
            .order_by("-created_at").first())
