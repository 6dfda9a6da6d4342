"""A compliance dossier: one PDF rendered from one evidence snapshot of a version."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from registry.models import ModelVersion


class DossierStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (DossierStatus.QUEUED, DossierStatus.RUNNING)


class DossierStep(models.TextChoices):
    """The job's steps, in order; ``progress_done`` counts the finished ones."""

    EVIDENCE = "evidence", "Snapshotting the evidence"
    RENDER = "render", "Rendering the PDF"
    STORE = "store", "Storing the PDF"


STEPS = tuple(DossierStep.values)


class Dossier(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="dossiers")
    status = models.CharField(max_length=10, choices=DossierStatus.choices,
                              default=DossierStatus.QUEUED)
    claim = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=len(STEPS))
    step = models.CharField(max_length=16, choices=DossierStep.choices, blank=True)
    # The evidence instant and the audit chain's head at it (what the PDF's cover states).
    evidence_at = models.DateTimeField(null=True, blank=True)
    chain_head_seq = models.BigIntegerField(null=True, blank=True)
    chain_head_hash = models.CharField(max_length=64, blank=True)
    # The evidence the PDF was rendered from: rendering it again gives the same bytes.
    snapshot = models.JSONField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_key = models.CharField(max_length=200, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                     null=True, blank=True, related_name="+")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "updated_at"], name="dossier_status"),
                   models.Index(fields=["version", "-created_at"], name="dossier_version")]

    def __str__(self) -> str:
        return f"dossier {self.public_id} of {self.version}"
