"""The prediction log, the human-review queue and rejection counts.

Predictions are append-only (model, queryset and database triggers refuse
changes), except that the raw input may be purged after the model's retention
period; each row's hash covers the input's sha256, not the input, so the log
stays verifiable after a purge. Each model's rows form a hash chain (every row's
``chain_hash`` covers the one before it), appended under a lock on the model's
``PredictionChainHead``; ranges of rows are anchored in the audit chain.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.fields import CanonicalJSONField
from registry.models import ModelVersion, RegisteredModel


class Routing(models.TextChoices):
    AUTO = "auto", "Automatic"
    REVIEW = "review", "Human review"


class PredictionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if set(kwargs) - {"input", "purged_at"} or kwargs.get("input") is not None:
            raise TypeError("predictions are append-only; only the raw input may be purged")
        return super().update(**kwargs)

    def delete(self):
        raise TypeError("predictions are append-only")


class Prediction(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Every index and constraint is paid on each logged prediction (a million times per
    # large batch), so the log keeps only what its reads use: foreign keys ride on the
    # composite indexes in Meta (model+time, version+id, batch+row). Nor does the database
    # check the references row by row (RI triggers cost more than the insert itself,
    # docs/performance.md): they are the same for every row of a request or chunk, taken
    # from rows that are never deleted (on_delete=PROTECT still guards the ORM), and
    # verify_prediction_log reports any reference without its row.
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+",
                              db_index=False, db_constraint=False)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions",
                                db_index=False, db_constraint=False)
    input_sha256 = models.CharField(max_length=64)
    # The input's canonical JSON as text, byte for byte what input_sha256 was taken over
    # (a json column on PostgreSQL: jsonb's parsing cost ~14 µs per row, docs/performance.md).
    input = CanonicalJSONField(null=True, blank=True)
    label = models.CharField(max_length=100)
    score = models.FloatField(help_text="Probability of the positive label.")
    confidence = models.FloatField(help_text="Probability of the predicted label.")
    probabilities = models.JSONField()
    routing = models.CharField(max_length=8, choices=Routing.choices)
    reason = models.CharField(max_length=300, blank=True)
    ood = models.JSONField(default=list, blank=True)
    shadow_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True,
                                       blank=True, related_name="shadow_predictions",
                                       db_index=False, db_constraint=False)
    shadow_output = models.JSONField(null=True, blank=True)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                                  blank=True, related_name="+", db_index=False,
                                  db_constraint=False)
    runtime = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField()
    latency_ms = models.FloatField()
    # CPU time of the thread that validated, scored and built the row, per row (a batch
    # chunk's over its rows); monitoring's cost per 1,000. Not in the row hash: rows logged
    # before it have none, and it records what the server spent, not what it answered.
    cpu_ms = models.FloatField(null=True, blank=True)
    # The features whose missing value the model's "impute" policy filled in (their logged
    # value is the imputed one), so monitoring counts them as missing. Null on rows logged
    # before it: unknown, not "none imputed". In the row hash when not empty (log.row_material).
    imputed = models.JSONField(null=True, blank=True)
    batch = models.ForeignKey("BatchJob", on_delete=models.PROTECT, null=True, blank=True,
                              related_name="predictions", db_index=False,
                              db_constraint=False)
    row_index = models.PositiveIntegerField(null=True, blank=True)
    row_hash = models.CharField(max_length=64)
    # sha256 over the previous row's chain_hash (of the same model; CHAIN_GENESIS for its
    # first) and this row's row_hash: an edit, a deletion or a reorder breaks the chain.
    chain_hash = models.CharField(max_length=64, default="")
    purged_at = models.DateTimeField(null=True, blank=True)

    objects = PredictionQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["version", "-id"], name="prediction_version_id"),
                   models.Index(fields=["model", "created_at"], name="prediction_model_time"),
                   # a plain btree: db_index on a CharField would add a LIKE index too
                   models.Index(fields=["input_sha256"], name="prediction_input_sha256"),
                   # "My predictions": a requester's single predictions, newest first
                   # (batch rows, listed in their job's result file, stay out of it).
                   models.Index(fields=["requester", "-id"], name="prediction_requester_id",
                                condition=Q(batch__isnull=True))]
        constraints = [
            # Idempotent batch writes: a retried chunk cannot log a row twice.
            models.UniqueConstraint(fields=["batch", "row_index"], condition=Q(batch__isnull=False),
                                    name="one_prediction_per_batch_row"),
        ]

    def __str__(self) -> str:
        return f"prediction {self.public_id}"

    def delete(self, *args, **kwargs):
        raise TypeError("predictions are append-only")


CHAIN_GENESIS = "0" * 64


class PredictionChainHead(models.Model):
    """The end of one model's prediction chain: appends lock this row, so a model's rows
    are chained in id order; verification compares the chain it recomputes with it."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.PROTECT, primary_key=True,
                                 related_name="+")
    head = models.CharField(max_length=64, default=CHAIN_GENESIS)
    last_id = models.BigIntegerField(default=0)
    count = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"prediction chain of model {self.model_id}"


class PredictionAnchor(models.Model):
    """A digest over a contiguous id range of predictions, recorded in the audit chain."""

    from_id = models.BigIntegerField()
    to_id = models.BigIntegerField(unique=True)
    count = models.PositiveIntegerField()
    digest = models.CharField(max_length=64)
    event_seq = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["to_id"]

    def __str__(self) -> str:
        return f"predictions {self.from_id}–{self.to_id}"


class ReviewStatus(models.TextChoices):
    OPEN = "open", "Open"
    DECIDED = "decided", "Decided"


class ReviewDecision(models.TextChoices):
    ACCEPT = "accept", "Accept the model's answer"
    OVERRIDE = "override", "Override with another label"


class OverrideReason(models.TextChoices):
    CLINICAL_JUDGEMENT = "clinical_judgement", "Clinical judgement"
    ADDITIONAL_INFORMATION = "additional_information", "Information the model did not have"
    DATA_ERROR = "data_error", "Input data were wrong"
    MODEL_ERROR = "model_error", "Model appears wrong for this case"
    OUT_OF_SCOPE = "out_of_scope", "Patient outside the model's intended use"
    OTHER = "other", "Other (see comment)"


class ReviewItem(models.Model):
    prediction = models.OneToOneField(Prediction, on_delete=models.PROTECT, related_name="review")
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=ReviewStatus.choices,
                              default=ReviewStatus.OPEN)
    created_at = models.DateTimeField()
    decision = models.CharField(max_length=8, choices=ReviewDecision.choices, blank=True)
    final_label = models.CharField(max_length=100, blank=True)
    reason_code = models.CharField(max_length=32, choices=OverrideReason.choices, blank=True)
    comment = models.TextField(blank=True)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                                 blank=True, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "model", "created_at"], name="review_queue")]

    def __str__(self) -> str:
        return f"review of {self.prediction.public_id}"


class RejectionCount(models.Model):
    """Refused requests per model, version, day and reason — counted, never stored raw."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="+")
    day = models.DateField()
    code = models.CharField(max_length=40)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "version", "day", "code"],
                                               name="rejection_count_unique")]

    def __str__(self) -> str:
        return f"{self.code} x{self.count} on {self.day}"


class BatchStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class BatchJob(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                  related_name="+")
    status = models.CharField(max_length=10, choices=BatchStatus.choices,
                              default=BatchStatus.QUEUED)
    file_name = models.CharField(max_length=200)
    file_format = models.CharField(max_length=10)
    input_sha256 = models.CharField(max_length=64)
    input_key = models.CharField(max_length=200)
    total_rows = models.PositiveBigIntegerField(default=0)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_failed = models.PositiveBigIntegerField(default=0)
    # Rows of the first chunk; later chunks are sized to ~chunk_seconds of work each
    # (inference/batches/runner.py, ChunkSizer), or stay at chunk_size when it is 0.
    chunk_size = models.PositiveIntegerField(default=20000)
    chunk_seconds = models.FloatField(default=0.0)
    chunks_done = models.JSONField(default=list, blank=True)
    result_key = models.CharField(max_length=200, blank=True)
    error_key = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Batch processing (inference/batches/runner.py): where it was sent, how often a worker took
    # it up (more than once after a crash or redelivery), and what it produced.
    queue = models.CharField(max_length=16, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    input_size = models.PositiveBigIntegerField(default=0)
    input_purged_at = models.DateTimeField(null=True, blank=True)
    rows_routed = models.PositiveBigIntegerField(default=0)
    # Per chunk with bad rows: {"<chunk>": [storage key, sha256, rows]}, written in the
    # chunk's transaction; the error file is their concatenation in chunk order.
    error_parts = models.JSONField(default=dict, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True)
    error_sha256 = models.CharField(max_length=64, blank=True)
    # Columns of the file named at upload to be copied, as text, to the result and error
    # files (a record number to join results back): never scored, never in the prediction
    # log. Their values live only in the stored input, result and error files, which the
    # retention purge deletes together (batches.batch_inputs_purge).
    passthrough_columns = models.JSONField(default=list, blank=True)
    # "Explain all rows" (inference/batches/explaining.py): the method asked for at upload
    # ("shap" or empty), per chunk its contributions' stored part ({"<chunk>": {key, sha256,
    # rows, explainer, units, background_sha256, library_versions}}, written in the chunk's
    # transaction), and at the end what was computed (method, explainer, units, library
    # versions, background hash, rows), recorded with BATCH_FINISHED.
    explain = models.CharField(max_length=8, blank=True)
    explain_parts = models.JSONField(default=dict, blank=True)
    explanation = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "updated_at"], name="batch_status_updated"),
                   models.Index(fields=["model", "-created_at"], name="batch_model_created")]

    def __str__(self) -> str:
        return f"batch {self.public_id}"

    @property
    def files_purged(self) -> bool:
        """The result and error files went with the input under retention (they carried
        pass-through columns)."""
        return bool(self.passthrough_columns) and self.input_purged_at is not None
