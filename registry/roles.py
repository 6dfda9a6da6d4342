"""Roles and capabilities: the one place that says who may do what.

Access is per model (a user holds roles on a model through grants) plus two
global roles: admin (Django superuser: everything) and auditor (members of the
``attest-auditors`` group: read-only on every model). The access page shows
ROLE_CAPABILITIES as it stands here.
"""

from __future__ import annotations

from django.db import models


class Capability(models.TextChoices):
    VIEW_MODEL = "view_model", "View the model and its versions"
    REGISTER_VERSION = "register_version", "Register dataset and model versions"
    EDIT_DRAFT = "edit_draft", "Edit draft versions"
    SUBMIT_VERSION = "submit_version", "Submit a version for review"
    SIGN_RELEASE = "sign_release", "Sign a release (approve or reject)"
    PROMOTE = "promote", "Promote a version to production"
    ROLLBACK = "rollback", "Roll back to an earlier version"
    RUN_SHADOW = "run_shadow", "Start and stop shadow scoring"
    PREDICT = "predict", "Request predictions"
    VIEW_PREDICTIONS = "view_predictions", "See raw prediction inputs"
    REVIEW = "review", "Work the human-review queue"
    VIEW_AUDIT = "view_audit", "Browse the model's audit trail"
    RECORD_OUTCOMES = "record_outcomes", "Record observed outcomes of predictions"
    DOWNLOAD_ARTIFACT = "download_artifact", "Download model artifacts"
    GENERATE_DOSSIER = "generate_dossier", "Generate compliance dossiers"
    MANAGE_ACCESS = "manage_access", "Grant and revoke access"


class ModelRole(models.TextChoices):
    OWNER = "owner", "Owner"
    APPROVER = "approver", "Approver (PI)"
    IRB = "irb", "IRB member"
    CLINICIAN = "clinician", "Clinician"
    REVIEWER = "reviewer", "Reviewer"
    AUDITOR = "auditor", "Auditor"
    VIEWER = "viewer", "Viewer"


C = Capability
ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    ModelRole.OWNER: frozenset({
        C.VIEW_MODEL, C.REGISTER_VERSION, C.EDIT_DRAFT, C.SUBMIT_VERSION, C.PROMOTE, C.ROLLBACK,
        C.RUN_SHADOW, C.PREDICT, C.VIEW_PREDICTIONS, C.VIEW_AUDIT, C.DOWNLOAD_ARTIFACT,
        C.GENERATE_DOSSIER, C.MANAGE_ACCESS, C.RECORD_OUTCOMES,
    }),
    ModelRole.APPROVER: frozenset({
        C.VIEW_MODEL, C.SIGN_RELEASE, C.VIEW_AUDIT, C.DOWNLOAD_ARTIFACT, C.GENERATE_DOSSIER,
    }),
    ModelRole.IRB: frozenset({C.VIEW_MODEL, C.SIGN_RELEASE, C.VIEW_AUDIT, C.GENERATE_DOSSIER}),
    ModelRole.CLINICIAN: frozenset({C.VIEW_MODEL, C.PREDICT, C.VIEW_PREDICTIONS, C.REVIEW,
                                    C.RECORD_OUTCOMES}),
    ModelRole.REVIEWER: frozenset({C.VIEW_MODEL, C.REVIEW, C.VIEW_PREDICTIONS}),
    ModelRole.AUDITOR: frozenset({
        C.VIEW_MODEL, C.VIEW_AUDIT, C.DOWNLOAD_ARTIFACT, C.GENERATE_DOSSIER,
    }),
    ModelRole.VIEWER: frozenset({C.VIEW_MODEL}),
}

ALL_CAPABILITIES: frozenset[str] = frozenset(Capability.values)
GLOBAL_AUDITOR_CAPABILITIES = ROLE_CAPABILITIES[ModelRole.AUDITOR]
AUDITORS_GROUP = "attest-auditors"
# Django permission that lets a user create registered models (they become owner).
CREATE_MODEL_PERMISSION = "registry.add_registeredmodel"


# Which roles may sign which sign-off meaning. Meanings not listed here may be
# signed by any role holding sign_release on the model.
SIGNOFF_ROLES: dict[str, frozenset[str]] = {
    "pi_approval": frozenset({ModelRole.APPROVER}),
    "irb_approval": frozenset({ModelRole.IRB}),
}
# The IRB's review of a compliance dossier (registry.models.DocumentMeaning): signed by
# whoever may sign the IRB's release approval.
SIGNOFF_ROLES["irb_dossier_review"] = SIGNOFF_ROLES["irb_approval"]


def signing_roles(meaning: str) -> frozenset[str]:
    return SIGNOFF_ROLES.get(meaning, frozenset(roles_with(Capability.SIGN_RELEASE)))


def roles_with(capability: str) -> list[str]:
    return [role for role, caps in ROLE_CAPABILITIES.items() if capability in caps]


# Roles that hold sign_release: granted and revoked by administrators only.
SIGNING_ROLES: frozenset[str] = frozenset(roles_with(Capability.SIGN_RELEASE))


def is_global_admin(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_superuser)


def is_global_auditor(user) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    cached = getattr(user, "_attest_is_auditor", None)
    if cached is None:
        cached = user.groups.filter(name=AUDITORS_GROUP).exists()
        user._attest_is_auditor = cached
    return cached


def can_create_models(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active
                and user.has_perm(CREATE_MODEL_PERMISSION))
