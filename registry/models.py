"""Registered models, dataset versions, model versions and access grants."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from .roles import ModelRole

MODEL_NAME_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9._-]{1,98}[a-z0-9]$",
    "Use 3–100 lower-case letters, digits, '.', '_' or '-', starting and ending with a "
    "letter or digit.",
    code="invalid_name",
)


class VersionState(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    PRODUCTION = "production", "Production"
    SUPERSEDED = "superseded", "Superseded"
    RETIRED = "retired", "Retired"
    DISCARDED = "discarded", "Discarded"


class ArtifactFormat(models.TextChoices):
    SKOPS = "skops", "skops (scikit-learn)"
    ONNX = "onnx", "ONNX"


class OodPolicy(models.TextChoices):
    REJECT = "reject", "Reject the request"
    REVIEW = "review", "Score and route to human review"


class RegisteredModel(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[MODEL_NAME_VALIDATOR])
    description = models.TextField(blank=True)
    required_signoffs = models.JSONField(default=list)
    retention_days = models.PositiveIntegerField(
        default=365, validators=[MinValueValidator(1), MaxValueValidator(36500)])
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(models.Model):
    name = models.CharField(max_length=100, validators=[MODEL_NAME_VALIDATOR])
    version = models.CharField(max_length=50)
    description = models.TextField(blank=True)
    sha256 = models.CharField(max_length=64)
    row_count = models.PositiveBigIntegerField()
    file_format = models.CharField(max_length=16, blank=True)
    columns = models.JSONField(default=list)
    profile = models.JSONField(default=dict)
    # provenance
    source = models.TextField()
    inclusion_criteria = models.TextField(blank=True)
    exclusion_criteria = models.TextField(blank=True)
    date_start = models.DateField(null=True, blank=True)
    date_end = models.DateField(null=True, blank=True)
    protocol_number = models.CharField(max_length=100, blank=True)
    deidentification = models.TextField(
        blank=True, help_text="How the data were de-identified (e.g. HIPAA Safe Harbor).")
    # the raw file is optional: only its hash and profile are required
    file_key = models.CharField(max_length=200, blank=True)
    file_size = models.PositiveBigIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="dataset_name_version_unique"),
            models.CheckConstraint(condition=Q(date_start__isnull=True) | Q(date_end__isnull=True)
                                   | Q(date_start__lte=models.F("date_end")),
                                   name="dataset_date_range_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class ModelVersion(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=VersionState.choices,
                             default=VersionState.DRAFT)
    description = models.TextField(blank=True)
    # artifact (content-addressed)
    artifact_sha256 = models.CharField(max_length=64)
    artifact_key = models.CharField(max_length=200)
    artifact_size = models.PositiveBigIntegerField()
    artifact_format = models.CharField(max_length=8, choices=ArtifactFormat.choices)
    trusted_types = models.JSONField(default=list, blank=True)
    framework = models.CharField(max_length=50, blank=True)
    framework_version = models.CharField(max_length=50, blank=True)
    library_versions = models.JSONField(default=dict, blank=True)
    estimator = models.CharField(max_length=200, blank=True)
    # interface
    input_schema = models.JSONField(default=list)
    output_schema = models.JSONField(default=dict)
    # lineage and evidence
    dataset = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="model_versions")
    code_reference = models.CharField(max_length=300, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    confidence_threshold = models.FloatField(
        default=0.8, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    ood_policy = models.CharField(max_length=8, choices=OodPolicy.choices,
                                  default=OodPolicy.REVIEW)
    model_card = models.TextField(blank=True)
    runbook = models.TextField(blank=True)
    dry_run = models.JSONField(default=dict, blank=True)
    # The owner's reference scores against this server's (registry/reproducibility.py).
    reproducibility = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                     related_name="+", null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # The model's release policy as it stood at submit: the sign-offs this version needs.
    # A later policy change applies to versions submitted after it, never to this one.
    required_signoffs = models.JSONField(default=list, blank=True)
    # Scores live traffic beside production (logged, never returned); in_review or approved.
    shadow = models.BooleanField(default=False)

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="version_number_unique"),
            # SPEC: exactly one production version per model, held by the database.
            models.UniqueConstraint(fields=["model"], condition=Q(state="production"),
                                    name="one_production_version_per_model"),
            models.UniqueConstraint(fields=["model"], condition=Q(shadow=True),
                                    name="one_shadow_version_per_model"),
            models.CheckConstraint(condition=Q(confidence_threshold__gte=0)
                                   & Q(confidence_threshold__lte=1),
                                   name="threshold_in_unit_interval"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    @property
    def label(self) -> str:
        return f"v{self.number}"

    @property
    def is_draft(self) -> bool:
        return self.state == VersionState.DRAFT

    @property
    def signoff_policy(self) -> list[str]:
        """The sign-offs this version needs: frozen at submit, the model's until then."""
        if self.submitted_at is not None:
            return list(self.required_signoffs)
        return list(self.model.required_signoffs)


class SignoffDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class DocumentMeaning(models.TextChoices):
    """Sign-offs of a document about a version rather than of its release.

    Such a signature covers the document's sha256 besides the version's content hash. It
    never counts towards a release policy (a policy may not list it), so it neither
    approves nor rejects the version: ``irb_dossier_review`` does not replace
    ``irb_approval`` for promotion.
    """

    IRB_DOSSIER_REVIEW = "irb_dossier_review", "IRB reviewed the compliance dossier"


# What kind of document each document meaning signs (the app above that holds it links it).
DOCUMENT_TYPES: dict[str, str] = {DocumentMeaning.IRB_DOSSIER_REVIEW: "dossier"}


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("signatures are append-only")

    def delete(self):
        raise TypeError("signatures are append-only")


class Signature(models.Model):
    """An electronic signature on a submitted version (21 CFR 11.50 / 11.70 / 11.200).

    It records who signed (and their printed name and role at the time), what the
    signature means, the decision, and the content hash it is bound to. Rows are
    never changed or deleted: the model, its queryset and database triggers
    (migration 0003) refuse it.

    A release sign-off (``document_sha256`` empty) covers the content hash; one per
    meaning per version. A document sign-off (a ``DocumentMeaning``, such as the IRB's
    review of a compliance dossier) covers a document's sha256 too, names the document
    in ``document_ref`` (a dossier's public id) and is one per signer per document.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="signatures")
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                               related_name="+")
    printed_name = models.CharField(max_length=300)
    role = models.CharField(max_length=16, choices=ModelRole.choices)
    meaning = models.CharField(max_length=50)
    decision = models.CharField(max_length=8, choices=SignoffDecision.choices)
    comment = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64)
    # A document sign-off's document: its sha256 (what the signature covers) and its id in
    # the app that holds it. Both empty on a release sign-off.
    document_sha256 = models.CharField(max_length=64, blank=True, default="")
    document_ref = models.CharField(max_length=100, blank=True, default="")
    signed_at = models.DateTimeField()

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["version", "signed_at"]
        constraints = [
            models.UniqueConstraint(fields=["version", "meaning"],
                                    condition=Q(document_sha256=""),
                                    name="one_signature_per_meaning"),
            models.UniqueConstraint(fields=["version", "meaning", "document_sha256", "signer"],
                                    condition=~Q(document_sha256=""),
                                    name="one_document_signature_per_signer"),
        ]

    def __str__(self) -> str:
        return f"{self.meaning} {self.decision} by {self.printed_name} on {self.version}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("signatures are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("signatures are append-only")


class ModelAccessGrant(models.Model):
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="model_grants")
    role = models.CharField(max_length=16, choices=ModelRole.choices)
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "role", "user"]
        constraints = [
            models.UniqueConstraint(fields=["model", "user", "role"], name="grant_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.model}"


class ServingStatus(models.TextChoices):
    EQUIVALENT = "equivalent", "Converted to ONNX; scores match"
    NOT_EQUIVALENT = "not_equivalent", "Converted to ONNX; scores differ"
    UNSUPPORTED = "unsupported", "Conversion to ONNX unsupported"
    NATIVE_ONNX = "native_onnx", "Registered as ONNX"


class ServingEngine(models.TextChoices):
    ONNXRUNTIME = "onnxruntime", "onnxruntime"
    SKLEARN = "sklearn", "scikit-learn"


class ServingRuntime(models.Model):
    """How a version is served, and the evidence for it (see ``registry/serving.py``).

    A skops model converted to ONNX is served with onnxruntime only when both gave
    the same scores on the reference sample (``max_abs_diff <= tolerance``); the
    database holds that rule too.
    """

    version = models.OneToOneField(ModelVersion, on_delete=models.PROTECT,
                                   related_name="serving_runtime")
    status = models.CharField(max_length=16, choices=ServingStatus.choices)
    converter = models.CharField(max_length=100, blank=True)
    source_sha256 = models.CharField(max_length=64)
    onnx_sha256 = models.CharField(max_length=64, blank=True)
    onnx_key = models.CharField(max_length=200, blank=True)
    onnx_size = models.PositiveBigIntegerField(null=True, blank=True)
    # The ONNX graph's inputs follow this feature order.
    feature_names = models.JSONField(default=list)
    max_abs_diff = models.FloatField(null=True, blank=True)
    tolerance = models.FloatField()
    sample_rows = models.PositiveIntegerField(default=0)
    sample_seed = models.IntegerField(default=0)
    single_runtime = models.CharField(max_length=16, choices=ServingEngine.choices)
    batch_runtime = models.CharField(max_length=16, choices=ServingEngine.choices)
    timings = models.JSONField(default=dict, blank=True)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["equivalent", "native_onnx"])
                | (Q(single_runtime="sklearn") & Q(batch_runtime="sklearn")),
                name="serving_onnx_only_when_equivalent"),
        ]

    def __str__(self) -> str:
        return f"{self.version}: {self.status} (single {self.single_runtime}, " \
               f"batch {self.batch_runtime})"


class TrustedType(models.Model):
    """One exact type name a skops file may contain beyond skops' own defaults.

    Curated by administrators (``registry.trust``); an upload never widens it.
    Seeded with the scikit-learn internals the common classifiers need.
    """

    name = models.CharField(max_length=300, unique=True)
    reason = models.CharField(max_length=500, blank=True)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
