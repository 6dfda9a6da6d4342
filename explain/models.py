"""Explanations, the jobs that compute them, background sets and per-version figures.

An ``Explanation`` is keyed by (version, input sha256, method, parameters): the same
input explained the same way by the same version is computed once and read back
byte for byte (``content`` is stored as canonical JSON text). Its ``content`` holds
what the explanation says (contributions, base value, output, units) and no input
value; the input's values as explained live in ``values``, which follows the raw
input's retention: purged with it, while the contributions stay.

Explanations are never changed or deleted, except that purge: the queryset refuses
anything else.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.fields import CanonicalJSONField
from registry.models import DatasetVersion, ModelVersion


class Method(models.TextChoices):
    SHAP = "shap", "SHAP"
    LIME = "lime", "LIME"


class ExplainerKind(models.TextChoices):
    TREE = "tree", "TreeExplainer (exact, from the trees)"
    LINEAR = "linear", "LinearExplainer (exact, from the coefficients)"
    PERMUTATION = "permutation", "PermutationExplainer (model-agnostic, seeded)"
    LIME_TABULAR = "lime_tabular", "LIME tabular (discretised from the training profile)"


class Units(models.TextChoices):
    PROBABILITY = "probability", "probability of the positive class"
    LOG_ODDS = "log_odds", "log-odds of the positive class"


class BackgroundSource(models.TextChoices):
    VERSION_UPLOAD = "version_upload", "background sample uploaded with the model version"
    DATASET_UPLOAD = "dataset_upload", "background sample uploaded with the dataset version"
    SYNTHETIC = "synthetic_profile", "synthetic sample drawn from the training profile"
    TREE_PATHS = "tree_paths", "the trees' own training coverage (no background set needed)"
    TRAINING_PROFILE = "training_profile", "LIME's samples drawn from the training profile"


class ExplanationQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if set(kwargs) - {"values", "values_purged_at"} or kwargs.get("values") is not None:
            raise TypeError("explanations are append-only; only their input values may be "
                            "purged")
        return super().update(**kwargs)

    def delete(self):
        raise TypeError("explanations are append-only")


class Explanation(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    input_sha256 = models.CharField(max_length=64)
    method = models.CharField(max_length=8, choices=Method.choices)
    parameters = models.JSONField(default=dict)
    parameters_sha256 = models.CharField(max_length=64)
    explainer = models.CharField(max_length=16, choices=ExplainerKind.choices)
    explainer_reason = models.TextField()
    units = models.CharField(max_length=16, choices=Units.choices)
    # What the explanation says, value-free, as canonical JSON text (byte-identical on a
    # recomputation); content_sha256 is the sha256 of that text.
    content = CanonicalJSONField()
    content_sha256 = models.CharField(max_length=64)
    # The input's values as explained (and LIME's conditions, which name them); purged
    # with the raw input.
    values = CanonicalJSONField(null=True, blank=True)
    values_purged_at = models.DateTimeField(null=True, blank=True)
    background_source = models.CharField(max_length=20, choices=BackgroundSource.choices)
    background_sha256 = models.CharField(max_length=64, blank=True)
    seed = models.IntegerField(null=True, blank=True)
    samples = models.PositiveIntegerField(null=True, blank=True)
    library_versions = models.JSONField(default=dict)
    compute_ms = models.FloatField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ExplanationQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "input_sha256", "method",
                                            "parameters_sha256"], name="one_explanation_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.method} explanation {self.public_id}"

    def delete(self, *args, **kwargs):
        raise TypeError("explanations are append-only")


class JobKind(models.TextChoices):
    PREDICTION = "prediction", "Explain one input"
    VERSION = "version", "Global importance and reliability of a version"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class ExplanationJob(models.Model):
    """A durable request for work a worker does (healthchecks' pattern): the request
    writes the row, a worker claims it with a compare-and-set on (status, claim), and a
    periodic task re-queues a running job whose worker stopped reporting progress."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=12, choices=JobKind.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    input_sha256 = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=8, choices=Method.choices)
    parameters = models.JSONField(default=dict)
    parameters_sha256 = models.CharField(max_length=64)
    # The input to explain, kept only until the job finishes (then the explanation holds
    # its values) and purged with the raw input.
    input = CanonicalJSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices,
                              default=JobStatus.QUEUED)
    claim = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    queue = models.CharField(max_length=16, default="default")
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=100, blank=True)
    explanation = models.ForeignKey(Explanation, on_delete=models.PROTECT, null=True,
                                    blank=True, related_name="+")
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                     null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "updated_at"], name="explain_job_status"),
                   models.Index(fields=["version", "input_sha256"], name="explain_job_key")]
        constraints = [
            # One job under way per key: a second request joins the first.
            models.UniqueConstraint(fields=["kind", "version", "input_sha256", "method",
                                            "parameters_sha256"],
                                    condition=Q(status__in=["queued", "running"]),
                                    name="one_active_explanation_job_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} explanation job {self.public_id}"


class VersionExplanation(models.Model):
    """A version's global importance (mean |SHAP| on the background set) and the
    reliability of its explanations (LIME stability across seeds, SHAP-LIME agreement):
    evidence for reviewers and the dossier."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    parameters = models.JSONField(default=dict)
    parameters_sha256 = models.CharField(max_length=64)
    explainer = models.CharField(max_length=16, choices=ExplainerKind.choices)
    explainer_reason = models.TextField()
    units = models.CharField(max_length=16, choices=Units.choices)
    content = CanonicalJSONField()
    content_sha256 = models.CharField(max_length=64)
    background_source = models.CharField(max_length=20, choices=BackgroundSource.choices)
    background_sha256 = models.CharField(max_length=64, blank=True)
    library_versions = models.JSONField(default=dict)
    compute_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["version", "parameters_sha256"],
                                               name="one_version_explanation_per_key")]

    def __str__(self) -> str:
        return f"explanation figures of {self.version_id}"


class BackgroundSample(models.Model):
    """A small de-identified sample an owner uploaded for the explainers, with a dataset
    version or a model version (exactly one), stored content-addressed."""

    dataset = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+")
    sha256 = models.CharField(max_length=64)
    key = models.CharField(max_length=200)
    size = models.PositiveIntegerField()
    rows = models.PositiveIntegerField()
    columns = models.JSONField(default=list)
    deidentification = models.TextField()
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=(Q(dataset__isnull=False) & Q(version__isnull=True))
                                   | (Q(dataset__isnull=True) & Q(version__isnull=False)),
                                   name="background_for_dataset_or_version"),
            models.UniqueConstraint(fields=["dataset"], condition=Q(dataset__isnull=False),
                                    name="one_background_per_dataset"),
            models.UniqueConstraint(fields=["version"], condition=Q(version__isnull=False),
                                    name="one_background_per_version"),
        ]

    def __str__(self) -> str:
        return f"background sample {self.sha256[:12]}"
