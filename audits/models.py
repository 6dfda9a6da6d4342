"""The audit trail: one append-only, hash-chained table.

Rows are never updated or deleted: the model refuses it, the queryset refuses
it, and database triggers (installed by migration 0002) refuse it for anyone
going around Django. Names are denormalized so history survives renames, and
no foreign key cascades or nulls on delete.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Action(models.TextChoices):
    # accounts and access
    LOGIN = "auth.login", "Signed in"
    LOGIN_FAILED = "auth.login_failed", "Sign-in failed"
    LOGIN_THROTTLED = "auth.login_throttled", "Sign-in refused while locked"
    LOGOUT = "auth.logout", "Signed out"
    TOKEN_CREATED = "auth.token_created", "API token created"
    TOKEN_REVOKED = "auth.token_revoked", "API token revoked"
    TOKEN_FIRST_USE = "auth.token_first_use", "API token used for the first time"
    PERMISSION_DENIED = "auth.permission_denied", "Write attempt denied"
    USER_CREATED = "auth.user_created", "User created"
    ACCESS_GRANTED = "access.granted", "Access granted"
    ACCESS_REVOKED = "access.revoked", "Access revoked"
    # registry
    MODEL_CREATED = "registry.model_created", "Model registered"
    MODEL_UPDATED = "registry.model_updated", "Model updated"
    DATASET_REGISTERED = "registry.dataset_registered", "Dataset version registered"
    VERSION_REGISTERED = "registry.version_registered", "Model version registered"
    VERSION_UPDATED = "registry.version_updated", "Draft version edited"
    VERSION_SUBMITTED = "registry.version_submitted", "Version submitted for review"
    VERSION_DISCARDED = "registry.version_discarded", "Draft discarded"
    ARTIFACT_UPLOADED = "registry.artifact_uploaded", "Artifact stored"
    ARTIFACT_DOWNLOADED = "registry.artifact_downloaded", "Artifact downloaded"
    ARTIFACT_INTEGRITY_FAILED = "registry.artifact_integrity_failed", "Artifact hash mismatch"
    TRUSTED_TYPE_ADDED = "registry.trusted_type_added", "Type added to the skops allowlist"
    TRUSTED_TYPE_REMOVED = "registry.trusted_type_removed", "Type removed from the skops allowlist"
    # release workflow
    POLICY_UPDATED = "release.policy_updated", "Release policy changed"
    SIGNOFF_RECORDED = "release.signoff_recorded", "Sign-off recorded"
    SIGNOFF_PASSWORD_FAILED = "release.signoff_password_failed", "Sign-off refused: wrong password"
    VERSION_APPROVED = "release.version_approved", "Version approved"
    VERSION_REJECTED = "release.version_rejected", "Version rejected"
    VERSION_PROMOTED = "release.version_promoted", "Version promoted to production"
    VERSION_SUPERSEDED = "release.version_superseded", "Version superseded"
    VERSION_ROLLED_BACK = "release.rolled_back", "Rolled back"
    VERSION_RETIRED = "release.version_retired", "Version retired"
    SHADOW_STARTED = "release.shadow_started", "Shadow scoring started"
    SHADOW_STOPPED = "release.shadow_stopped", "Shadow scoring stopped"
    # inference
    PREDICTIONS_ANCHORED = "inference.predictions_anchored", "Prediction log anchored"
    PREDICTION_INPUTS_PURGED = "inference.inputs_purged", "Raw prediction inputs purged"
    REVIEW_DECIDED = "inference.review_decided", "Review decision recorded"
    BATCH_SUBMITTED = "inference.batch_submitted", "Batch job submitted"
    BATCH_FINISHED = "inference.batch_finished", "Batch job finished"
    BATCH_CANCELLED = "inference.batch_cancelled", "Batch job cancelled"
    BATCH_FILES_PURGED = "inference.batch_files_purged", "Batch job's files purged"
    # explanations
    EXPLANATION_CREATED = "explain.explanation_created", "Explanation computed and stored"
    VERSION_EXPLAINED = "explain.version_explained", "Version's explanation figures computed"
    BACKGROUND_UPLOADED = "explain.background_uploaded", "Explainer background sample stored"
    EXPLANATION_VALUES_PURGED = "explain.values_purged", "Input values purged from explanations"
    # monitoring
    OUTCOMES_RECORDED = "monitoring.outcomes_recorded", "Observed outcomes recorded"
    MONITORING_POLICY_UPDATED = "monitoring.policy_updated", "Monitoring policy changed"
    MONITORING_ALERT_RAISED = "monitoring.alert_raised", "Monitoring entered warning or alert"
    MONITORING_ALERT_CLEARED = "monitoring.alert_cleared", "Monitoring alert cleared"
    # compliance dossiers
    DOSSIER_REQUESTED = "dossier.requested", "Compliance dossier requested"
    DOSSIER_GENERATED = "dossier.generated", "Compliance dossier generated"
    DOSSIER_FAILED = "dossier.failed", "Compliance dossier generation failed"
    DOSSIER_DOWNLOADED = "dossier.downloaded", "Compliance dossier downloaded"
    DOSSIER_INTEGRITY_FAILED = ("dossier.integrity_failed",
                                "Stored dossier no longer has its sha256 (refused)")
    # audit trail itself
    AUDIT_VERIFIED = "audit.verified", "Audit chain verified"
    AUDIT_EXPORTED = "audit.exported", "Audit trail exported"
    AUDIT_CHECKPOINT = "audit.checkpoint", "Signed checkpoint written"


GENESIS_HASH = "0" * 64


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("audit events are append-only")

    def delete(self):
        raise TypeError("audit events are append-only")

    _raw_delete = delete


class AuditEvent(models.Model):
    seq = models.BigIntegerField(unique=True, help_text="Position in the hash chain, from 1.")
    time = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                              blank=True, related_name="+", db_index=True)
    actor_username = models.CharField(max_length=150, blank=True)
    actor_name = models.CharField(max_length=300, blank=True)
    via = models.CharField(max_length=16, blank=True)
    # Validated in code (audit_event_record refuses an unknown action), not by choices:
    # adding an action needs no migration.
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=300, blank=True)
    # Plain ids, not foreign keys: the trail must outlive and never block the registry.
    model_id = models.BigIntegerField(null=True, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    version_id = models.BigIntegerField(null=True, blank=True)
    version_label = models.CharField(max_length=50, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    details = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    remote_addr = models.CharField(max_length=45, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["model_id", "-seq"], name="audit_model_seq"),
            models.Index(fields=["version_id", "-seq"], name="audit_version_seq"),
            models.Index(fields=["actor_username", "-seq"], name="audit_actor_seq"),
            models.Index(fields=["action", "-seq"], name="audit_action_seq"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_repr}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("audit events are append-only")

    @property
    def action_label(self) -> str:
        """The action in words (the raw name for an action this release does not know)."""
        try:
            return Action(self.action).label
        except ValueError:
            return self.action
