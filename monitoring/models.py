"""What monitoring stores: counts accumulated from the prediction log, observed outcomes,
the computed figures (window × signal × feature) and the alerts they raised.

Counts are derived data (rebuilt from the log while raw inputs are kept), written by
one aggregation job behind an id watermark. Outcomes and their uploads are evidence:
append-only, audited. Figures are recomputed by the scheduled job or on demand; pages,
the API and the dossier read them instead of recomputing.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from inference.models import Prediction
from registry.models import ModelVersion, RegisteredModel


class Period(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class AggregationState(models.Model):
    """One row: the id of the last prediction-log row the counts include.

    Every row with an id at or below it is counted (or was testing traffic, counted as
    such), so its raw input is no longer needed for drift and may be purged.
    """

    name = models.CharField(max_length=32, unique=True, default="prediction-log")
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} aggregated through id {self.last_id}"


class VersionCounts(models.Model):
    """Version-wide counts of live predictions in one hour or one UTC day."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    period = models.CharField(max_length=4, choices=Period.choices)
    start = models.DateTimeField()
    predictions = models.PositiveBigIntegerField(default=0)
    singles = models.PositiveBigIntegerField(default=0)
    batch_rows = models.PositiveBigIntegerField(default=0)
    routed_to_review = models.PositiveBigIntegerField(default=0)
    ood = models.PositiveBigIntegerField(default=0)
    # Rows whose raw input was already gone when they were aggregated (logged before
    # monitoring existed and purged since): counted here, absent from the feature counts.
    inputs_unavailable = models.PositiveBigIntegerField(default=0)
    # Owners testing a version outside its time in production: excluded from every figure.
    testing = models.PositiveBigIntegerField(default=0)
    ood_codes = models.JSONField(default=dict)
    labels = models.JSONField(default=dict)
    score_counts = models.JSONField(default=list)
    score_sums = models.JSONField(default=list)
    latency_counts = models.JSONField(default=dict)  # single predictions only
    latency_ms_sum = models.FloatField(default=0.0)  # every live row (batch rows per row)
    # Measured CPU time (Prediction.cpu_ms) of the live rows that have it, and how many do.
    cpu_ms_sum = models.FloatField(default=0.0)
    cpu_rows = models.PositiveBigIntegerField(default=0)
    # Live rows counted from their raw input whose log does not record which features were
    # imputed (Prediction.imputed is null: logged before inference 0012): an imputed value
    # there counts as a value, so an imputed feature's missing rate is a lower bound.
    imputation_unrecorded = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "period", "start"],
                                               name="version_counts_unique")]

    def __str__(self) -> str:
        return f"{self.version_id} {self.period} {self.start:%Y-%m-%d %H:%M}"


class FeatureCounts(models.Model):
    """Counts of one input feature's live values on the training profile's bins
    (see ``monitoring.layout``) in one hour or one UTC day."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    period = models.CharField(max_length=4, choices=Period.choices)
    start = models.DateTimeField()
    feature = models.CharField(max_length=200)
    counts = models.JSONField(default=list)
    missing = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "period", "start", "feature"],
                                               name="feature_counts_unique")]

    def __str__(self) -> str:
        return f"{self.feature} {self.period} {self.start:%Y-%m-%d %H:%M}"


class MonitoringPolicy(models.Model):
    """A model's monitoring settings: thresholds beside the defaults, subgroups, price."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.PROTECT,
                                 related_name="monitoring_policy")
    # Only what differs from monitoring.health.DEFAULT_THRESHOLDS: {signal: {"warning",
    # "alert", "window"}} plus the general keys (p_value, min_predictions, ...).
    thresholds = models.JSONField(default=dict, blank=True)
    # [{"name", "feature", "op", "value"}]: live performance per subgroup (outcomes).
    subgroups = models.JSONField(default=list, blank=True)
    cpu_hour_price = models.FloatField(null=True, blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+", null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"monitoring policy of {self.model}"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("outcomes are append-only")

    def delete(self):
        raise TypeError("outcomes are append-only")


class OutcomeSource(models.TextChoices):
    API = "api", "API"
    CSV = "csv", "CSV upload"


class OutcomeUpload(models.Model):
    """One accepted submission of outcomes (all its rows or none)."""

    public_id = models.UUIDField(unique=True, editable=False)
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=4, choices=OutcomeSource.choices)
    file_name = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField()
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")
    recorded_at = models.DateTimeField()
    event_seq = models.BigIntegerField(null=True, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-recorded_at"]

    def __str__(self) -> str:
        return f"{self.rows} outcomes for {self.model_id} ({self.source})"


class Outcome(models.Model):
    """The observed outcome of one logged prediction (one per prediction: a duplicate is
    refused). Reviewers' final labels are another signal and live in the review queue."""

    prediction = models.OneToOneField(Prediction, on_delete=models.PROTECT,
                                      related_name="outcome")
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    label = models.CharField(max_length=100)
    positive = models.BooleanField()
    outcome_date = models.DateField()
    # The prediction's time, copied so windows select outcomes without joining the log.
    predicted_at = models.DateTimeField()
    upload = models.ForeignKey(OutcomeUpload, on_delete=models.PROTECT, related_name="outcomes")
    recorded_at = models.DateTimeField()

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["version", "predicted_at"], name="outcome_version_time")]

    def __str__(self) -> str:
        return f"outcome {self.label} of prediction {self.prediction_id}"


class OutcomeSubgroups(models.Model):
    """The subgroups (``MonitoringPolicy.subgroups``) an outcome's input belonged to,
    decided from the raw input when the outcome arrived, and again when the policy's
    subgroups change while the input is kept. Derived, so kept apart from the outcome,
    which never changes. ``names`` is null when the input was already purged."""

    outcome = models.OneToOneField(Outcome, on_delete=models.CASCADE, related_name="membership")
    names = models.JSONField(null=True, blank=True)

    def __str__(self) -> str:
        return f"subgroups of outcome {self.outcome_id}"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Scheduled job"
    ON_DEMAND = "on_demand", "On demand"


class MonitoringRun(models.Model):
    """One computation of a version's figures; its rows replace the previous run's."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    computed_at = models.DateTimeField()
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                     related_name="+", null=True, blank=True)
    aggregated_through = models.BigIntegerField(default=0)
    # The thresholds in force (defaults merged with the model's policy), as applied.
    thresholds = models.JSONField(default=dict)
    # Window code → {"start", "end", "label"} as computed.
    windows = models.JSONField(default=dict)
    summary = models.JSONField(default=dict)  # the health table, retraining signal
    duration_ms = models.FloatField(default=0.0)

    class Meta:
        indexes = [models.Index(fields=["version", "-computed_at"], name="run_version_latest")]

    def __str__(self) -> str:
        return f"monitoring run of {self.version_id} at {self.computed_at:%Y-%m-%d %H:%M}"


class Figure(models.Model):
    """One figure of a run: window × signal × feature (feature blank for the version)."""

    run = models.ForeignKey(MonitoringRun, on_delete=models.CASCADE, related_name="figures")
    window = models.CharField(max_length=24)  # 24h, 7d, 30d, since_promotion, day:YYYY-MM-DD
    signal = models.CharField(max_length=40)
    feature = models.CharField(max_length=200, blank=True)
    value = models.FloatField(null=True, blank=True)
    p_value = models.FloatField(null=True, blank=True)
    n = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=12, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["run", "window", "signal"], name="figure_run_window")]

    def __str__(self) -> str:
        return f"{self.window} {self.signal} {self.feature}".strip()


class AlertLevel(models.TextChoices):
    WARNING = "warning", "Warning"
    ALERT = "alert", "Alert"


class Alert(models.Model):
    """A signal (for one feature, or the version) in warning or alert, until it clears.
    Entering warning, entering alert and clearing are audit events."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    signal = models.CharField(max_length=40)
    feature = models.CharField(max_length=200, blank=True)
    level = models.CharField(max_length=8, choices=AlertLevel.choices)
    value = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=500)
    evidence = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    clear_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [models.UniqueConstraint(fields=["version", "signal", "feature"],
                                               condition=Q(cleared_at__isnull=True),
                                               name="one_open_alert_per_signal")]
        indexes = [models.Index(fields=["model", "cleared_at"], name="alert_model_open")]

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"
