"""The release workflow: policy, e-signatures, promote, rollback, retire, shadow.

Every transition goes through ``lifecycle.check_transition`` under a row lock on
the model, so concurrent requests serialize per model, and the database's
partial unique constraints (one production, one shadow version per model) hold
even against code that forgets.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.contrib.auth.hashers import check_password
from django.db import IntegrityError, transaction
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from audits.throttling import password_lock_seconds
from core.context import current_actor
from core.errors import Conflict, ErrorItem, PermissionDenied, TooManyAttempts, ValidationFailed

from . import duties, lifecycle
from .models import (
    DOCUMENT_TYPES,
    DocumentMeaning,
    ModelAccessGrant,
    ModelVersion,
    RegisteredModel,
    Signature,
    SignoffDecision,
    VersionState,
)
from .roles import Capability, is_global_admin, signing_roles
from .selectors import user_capabilities
from .services import (
    _deny,
    _model_event_fields,
    _require,
    _validate_signoffs,
    _version_event_fields,
)

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _locked(version: ModelVersion) -> tuple[RegisteredModel, ModelVersion]:
    """Lock the model row (serializes every release action on it), reload the version."""
    model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
    fresh = ModelVersion.objects.select_related("model", "dataset").get(pk=version.pk)
    return model, fresh


# -- policy ---------------------------------------------------------------------------

def release_policy_update(*, user, model: RegisteredModel, required_signoffs: Any) -> RegisteredModel:
    """Change the sign-off meanings releases of this model need (administrators only).

    The policy is frozen into each version when it is submitted, so a change applies
    to versions submitted after it; a version already in review keeps its own.
    """
    if not is_global_admin(user):
        raise _deny(model=model, capability="manage_release_policy",
                    what=f"change the release policy of {model.name}",
                    message="Only administrators change a model's release policy.")
    meanings = _validate_signoffs(required_signoffs, allow_default=False)
    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        before = list(locked.required_signoffs)
        if before == meanings:
            return locked
        locked.required_signoffs = meanings
        locked.save(update_fields=["required_signoffs", "updated_at"])
        in_review = list(locked.versions.filter(state=VersionState.IN_REVIEW)
                         .values_list("number", flat=True))
        audit_event_record(action=Action.POLICY_UPDATED, obj=locked, **_model_event_fields(locked),
                           before={"required_signoffs": before},
                           after={"required_signoffs": meanings},
                           details={"applies_to": "versions submitted from now on",
                                    "unchanged_in_review": [f"v{n}" for n in in_review]})
    return locked


# -- signatures -----------------------------------------------------------------------

def signable_meanings(*, user, version: ModelVersion) -> list[str]:
    """Meanings this user could sign on this version right now (for forms and dashboards)."""
    roles = set(ModelAccessGrant.objects.filter(model_id=version.model_id, user=user)
                .values_list("role", flat=True))
    return duties.open_meanings(user_id=user.pk, version=version, roles=roles,
                                signatures=version.signatures.all())


def signoff_record(*, user, version: ModelVersion, meaning: str, decision: str, password: str,
                   comment: str = "", content_hash: str | None = None) -> Signature:
    """Sign a version in review: the signer re-enters their password (two components).

    1. Permission, then the password (a wrong one is recorded and refused).
    2. Under the model's lock: the version must be in review, the meaning one the
       policy frozen at submit requires and not yet signed; the signer must be
       neither the version's registrant nor its submitter, must not have signed
       another meaning of it (``duties``), and must hold a role that may sign this
       meaning; the hash the signer saw must be the version's content hash.
    3. The signature and its event are written; a rejection moves the version to
       rejected, the last required approval to approved.
    """
    _require(user=user, model=version.model, capability=Capability.SIGN_RELEASE,
             what=f"sign {version}")
    if meaning in DocumentMeaning.values:
        raise ValidationFailed(f"'{meaning}' signs a document about the version, not its "
                               "release: sign it on the document (a compliance dossier's page).",
                               code="document_meaning", field="meaning")
    _check_decision(decision, comment)
    _check_password(user=user, version=version, password=password, details={"meaning": meaning})
    with transaction.atomic():
        model, fresh = _locked(version)
        if fresh.state != VersionState.IN_REVIEW:
            raise Conflict(f"Only a version in review can be signed; this one is "
                           f"{fresh.get_state_display().lower()}.", code="not_in_review",
                           field="state", extra={"state": fresh.state,
                                                 "allowed_next": lifecycle.allowed_next(fresh.state)})
        policy = fresh.signoff_policy
        if meaning not in policy:
            raise ValidationFailed(f"'{meaning}' is not a sign-off this version's policy "
                                   f"requires ({', '.join(policy)}).",
                                   code="unknown_meaning", field="meaning")
        if fresh.signatures.filter(meaning=meaning, document_sha256="").exists():
            raise Conflict(f"'{meaning}' has already been signed on this version.",
                           code="already_signed", field="meaning")
        barrier = duties.signoff_barrier(user_id=user.pk, version=fresh,
                                         signatures=fresh.signatures.all())
        if barrier is not None:
            raise PermissionDenied(barrier[1], code=barrier[0])
        roles = set(ModelAccessGrant.objects.filter(model=model, user=user)
                    .values_list("role", flat=True)) & signing_roles(meaning)
        if not roles:
            raise PermissionDenied(f"Signing '{meaning}' needs one of these roles on "
                                   f"{model.name}: {', '.join(sorted(signing_roles(meaning)))}.",
                                   code="wrong_role")
        if content_hash is not None and content_hash != fresh.content_hash:
            raise Conflict("The content hash you reviewed is not the version's content hash; "
                           "reload the review page.", code="hash_mismatch", field="content_hash",
                           extra={"content_hash": fresh.content_hash})
        try:
            with transaction.atomic():
                signature = Signature.objects.create(
                    version=fresh, signer=user,
                    printed_name=(user.get_full_name() or user.get_username()).strip(),
                    role=sorted(roles)[0], meaning=meaning, decision=decision,
                    comment=comment.strip(), content_hash=fresh.content_hash,
                    signed_at=timezone.now())
        except IntegrityError:
            raise Conflict(f"'{meaning}' has already been signed on this version.",
                           code="already_signed", field="meaning") from None
        audit_event_record(action=Action.SIGNOFF_RECORDED, obj=fresh, **_version_event_fields(fresh),
                           after={"meaning": meaning, "decision": decision,
                                  "signer": user.get_username(),
                                  "printed_name": signature.printed_name, "role": signature.role,
                                  "content_hash": signature.content_hash},
                           reason=signature.comment)
        if decision == SignoffDecision.REJECT:
            _transition(fresh, VersionState.REJECTED, Action.VERSION_REJECTED,
                        details={"meaning": meaning, "by": user.get_username()})
        else:
            approved = set(fresh.signatures.filter(decision=SignoffDecision.APPROVE,
                                                   document_sha256="")
                           .values_list("meaning", flat=True))
            if set(policy) <= approved:
                _transition(fresh, VersionState.APPROVED, Action.VERSION_APPROVED,
                            details={"signoffs": sorted(approved)})
    return signature


def _check_decision(decision: str, comment: str) -> None:
    """Every sign-off's rules: approve or reject, a comment of text, a reason to reject."""
    problems = []
    if decision not in SignoffDecision.values:
        problems.append(ErrorItem("invalid", "decision must be approve or reject.", "decision"))
    if not isinstance(comment, str) or len(comment) > 5000:
        problems.append(ErrorItem("invalid", "comment must be text (at most 5000 characters).",
                                  "comment"))
    if decision == SignoffDecision.REJECT and not (comment or "").strip():
        problems.append(ErrorItem("required", "Say why in the comment when you reject.",
                                  "comment"))
    if problems:
        raise ValidationFailed(items=problems)


def _check_password(*, user, version: ModelVersion, password: str, details: dict) -> None:
    """The signature's second component: the signer's own password (a wrong one is
    recorded and refused; too many lock signing as they lock sign-in)."""
    wait = password_lock_seconds(username=user.get_username(),
                                 address=current_actor().remote_addr)
    if wait:  # the same lock as sign-in: wrong passwords here count there too
        audit_event_record(action=Action.LOGIN_THROTTLED, obj=version,
                           **_version_event_fields(version),
                           details={**details, "during": "signoff"})
        raise TooManyAttempts(f"Too many wrong passwords: signing is locked for "
                              f"{max(1, round(wait / 60))} more minute(s).", retry_after=wait,
                              field="password")
    if not password or not check_password(password, user.password):
        audit_event_record(action=Action.SIGNOFF_PASSWORD_FAILED, obj=version,
                           **_version_event_fields(version), details=details)
        raise ValidationFailed("The password is not correct. Signing needs your own password.",
                               code="wrong_password", field="password")


# -- document sign-offs (the IRB's review of a compliance dossier) ----------------------

def document_signoff_authorize(*, user, version: ModelVersion, meaning: str) -> str:
    """The role ``user`` would sign ``meaning`` (a DocumentMeaning) of ``version`` as.

    NotFound without view_model; PermissionDenied (recorded) without sign_release, without
    one of the meaning's signing roles (registry.roles) on the model, or for the
    version's registrant or submitter. A caller that checks its document (the dossier
    app) calls this first, so one who may not sign learns nothing of the document's state.
    """
    if meaning not in DocumentMeaning.values:
        raise ValidationFailed(f"'{meaning}' is not a document sign-off "
                               f"({', '.join(DocumentMeaning.values)}).",
                               code="unknown_meaning", field="meaning")
    what = f"sign {meaning} of {version}"
    _require(user=user, model=version.model, capability=Capability.SIGN_RELEASE, what=what)
    roles = _signing_roles_held(user=user, version=version, meaning=meaning)
    if not roles:
        raise _deny(model=version.model, capability=f"sign {meaning}", what=what,
                    message=f"Signing '{meaning}' needs one of these roles on "
                            f"{version.model.name}: {', '.join(sorted(signing_roles(meaning)))}.")
    barrier = duties.own_version_barrier(user_id=user.pk, version=version)
    if barrier is not None:
        raise PermissionDenied(barrier[1], code=barrier[0])
    return sorted(roles)[0]


def may_sign_document(*, user, version: ModelVersion, meaning: str) -> bool:
    """Whether ``user`` may sign ``meaning`` of a document of ``version`` (for pages: it
    records nothing; ``document_signoff_record`` decides)."""
    if meaning not in DocumentMeaning.values or version.submitted_at is None:
        return False
    if Capability.SIGN_RELEASE not in user_capabilities(user=user, model=version.model):
        return False
    return (bool(_signing_roles_held(user=user, version=version, meaning=meaning))
            and duties.own_version_barrier(user_id=user.pk, version=version) is None)


def _signing_roles_held(*, user, version: ModelVersion, meaning: str) -> set[str]:
    return set(ModelAccessGrant.objects.filter(model_id=version.model_id, user=user)
               .values_list("role", flat=True)) & signing_roles(meaning)


def document_signoff_record(*, user, version: ModelVersion, meaning: str, decision: str,
                            password: str, document_sha256: str, document_ref: str,
                            comment: str = "", content_hash: str | None = None) -> Signature:
    """Sign a document about a submitted version (a DocumentMeaning), re-entering the
    password like every signature; the signature covers the document's sha256 and the
    version's content hash.

    The caller has proved the document (the dossier app: completed, stored bytes with
    this sha256, rendered from this version). This service:

    1. authorizes (``document_signoff_authorize``) and checks decision and comment as for
       a release sign-off, then the password (a wrong one is recorded and refused);
    2. under the model's lock: the version must be submitted (its content hash frozen),
       the hash the signer saw must be its content hash, and the signer must not have
       signed this document already (one signature per signer per document; each
       document of a version may be signed);
    3. writes the signature and its ``release.signoff_recorded`` event, which records
       the document's sha256 and id, in one transaction. The version's state does not
       change: a document sign-off is no part of the release policy.
    """
    document_type = DOCUMENT_TYPES.get(meaning)
    document_signoff_authorize(user=user, version=version, meaning=meaning)
    if not (isinstance(document_sha256, str) and _SHA256.match(document_sha256)):
        raise ValidationFailed("The document's sha256 must be 64 lower-case hex digits.",
                               code="invalid", field="document_sha256")
    if not (isinstance(document_ref, str) and 0 < len(document_ref) <= 100):
        raise ValidationFailed("The document needs an id (at most 100 characters).",
                               code="invalid", field="document_ref")
    _check_decision(decision, comment)
    _check_password(user=user, version=version, password=password,
                    details={"meaning": meaning, "document": document_type,
                             "document_ref": document_ref, "document_sha256": document_sha256})
    with transaction.atomic():
        _model, fresh = _locked(version)
        if fresh.submitted_at is None or fresh.state in (VersionState.DRAFT,
                                                         VersionState.DISCARDED):
            raise Conflict(f"Only a document of a submitted version can be signed: "
                           f"{fresh} is {fresh.get_state_display().lower()}, its content hash "
                           "not frozen.", code="not_submitted", field="state",
                           extra={"state": fresh.state})
        if content_hash is not None and content_hash != fresh.content_hash:
            raise Conflict("The content hash you reviewed is not the version's content hash; "
                           "reload the page.", code="hash_mismatch", field="content_hash",
                           extra={"content_hash": fresh.content_hash})
        roles = _signing_roles_held(user=user, version=fresh, meaning=meaning)
        if not roles:  # revoked since the check above
            raise PermissionDenied(f"Signing '{meaning}' needs one of these roles on "
                                   f"{fresh.model.name}: "
                                   f"{', '.join(sorted(signing_roles(meaning)))}.",
                                   code="wrong_role")
        role = sorted(roles)[0]
        already = Conflict(f"You have already signed '{meaning}' of this {document_type} "
                           f"(sha256 {document_sha256[:12]}…).", code="already_signed",
                           field="meaning")
        if fresh.signatures.filter(meaning=meaning, document_sha256=document_sha256,
                                   signer=user).exists():
            raise already
        try:
            with transaction.atomic():
                signature = Signature.objects.create(
                    version=fresh, signer=user,
                    printed_name=(user.get_full_name() or user.get_username()).strip(),
                    role=role, meaning=meaning, decision=decision, comment=comment.strip(),
                    content_hash=fresh.content_hash, document_sha256=document_sha256,
                    document_ref=document_ref, signed_at=timezone.now())
        except IntegrityError:
            raise already from None
        audit_event_record(action=Action.SIGNOFF_RECORDED, obj=fresh, **_version_event_fields(fresh),
                           after={"meaning": meaning, "decision": decision,
                                  "signer": user.get_username(),
                                  "printed_name": signature.printed_name, "role": signature.role,
                                  "content_hash": signature.content_hash,
                                  "document": document_type,
                                  "document_ref": signature.document_ref,
                                  "document_sha256": signature.document_sha256},
                           reason=signature.comment, details={"signature_id": signature.pk})
    return signature


def _transition(version: ModelVersion, target: str, action: str, *, reason: str = "",
                details: dict | None = None) -> None:
    lifecycle.check_transition(version.state, target)
    before = version.state
    version.state = target
    if target not in (VersionState.IN_REVIEW, VersionState.APPROVED):
        version.shadow = False  # only reviewed candidates shadow production
    version.save(update_fields=["state", "shadow", "updated_at"])
    audit_event_record(action=action, obj=version, **_version_event_fields(version),
                       before={"state": before}, after={"state": target}, reason=reason,
                       details=details)


# -- promote, rollback, retire --------------------------------------------------------

def _make_production(model: RegisteredModel, version: ModelVersion, *, action: str,
                     reason: str = "", details: dict | None = None) -> ModelVersion | None:
    """Supersede the current production version (if any), then promote ``version``."""
    current = (ModelVersion.objects.select_for_update()
               .filter(model=model, state=VersionState.PRODUCTION).first())
    if current is not None and current.pk == version.pk:
        raise Conflict(f"v{version.number} is already in production.", code="already_production",
                       field="state", extra={"state": version.state,
                                             "allowed_next": lifecycle.allowed_next(version.state)})
    lifecycle.check_transition(version.state, VersionState.PRODUCTION)
    try:
        with transaction.atomic():
            if current is not None:
                _transition(current, VersionState.SUPERSEDED, Action.VERSION_SUPERSEDED,
                            reason=reason, details={"superseded_by": version.label})
            _transition(version, VersionState.PRODUCTION, action, reason=reason,
                        details={**(details or {}),
                                 "previous": current.label if current else None})
    except IntegrityError:
        # The partial unique index caught a concurrent promote the lock did not.
        raise Conflict("Another version became production at the same moment; reload.",
                       code="concurrent_promote") from None
    return current


def version_promote(*, user, version: ModelVersion) -> ModelVersion:
    _require(user=user, model=version.model, capability=Capability.PROMOTE,
             what=f"promote {version}")
    with transaction.atomic():
        model, fresh = _locked(version)
        if fresh.state != VersionState.APPROVED:
            raise Conflict(f"Only an approved version can be promoted; v{fresh.number} is "
                           f"{fresh.get_state_display().lower()}.", code="illegal_transition",
                           field="state", extra={"state": fresh.state,
                                                 "allowed_next": lifecycle.allowed_next(fresh.state)})
        _make_production(model, fresh, action=Action.VERSION_PROMOTED,
                         details={"content_hash": fresh.content_hash})
    return fresh


def model_rollback(*, user, model: RegisteredModel, to_version: Any, reason: str) -> ModelVersion:
    """Re-promote an earlier approved or superseded version, with a reason, in one action."""
    _require(user=user, model=model, capability=Capability.ROLLBACK,
             what=f"roll back {model.name}")
    problems = []
    if not isinstance(reason, str) or not reason.strip():
        problems.append(ErrorItem("required", "A rollback needs a reason.", "reason"))
    try:
        number = int(to_version)
    except (TypeError, ValueError):
        problems.append(ErrorItem("invalid", "to_version must be a version number.", "to_version"))
        number = None
    if problems:
        raise ValidationFailed(items=problems)
    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        target = (ModelVersion.objects.select_related("model", "dataset")
                  .filter(model=locked, number=number).first())
        if target is None:
            raise ValidationFailed(f"{model.name} has no version {number}.", code="unknown_version",
                                   field="to_version")
        if target.state not in (VersionState.SUPERSEDED, VersionState.APPROVED):
            raise Conflict(f"Rollback goes to an earlier approved or superseded version; v{number} "
                           f"is {target.get_state_display().lower()}.", code="illegal_transition",
                           field="to_version", extra={"state": target.state,
                                                      "allowed_next":
                                                      lifecycle.allowed_next(target.state)})
        _make_production(locked, target, action=Action.VERSION_ROLLED_BACK,
                         reason=reason.strip(), details={"content_hash": target.content_hash})
    return target


def version_retire(*, user, version: ModelVersion, reason: str = "") -> ModelVersion:
    _require(user=user, model=version.model, capability=Capability.PROMOTE,
             what=f"retire {version}")
    with transaction.atomic():
        _model, fresh = _locked(version)
        _transition(fresh, VersionState.RETIRED, Action.VERSION_RETIRED, reason=reason)
    return fresh


def version_discard(*, user, version: ModelVersion) -> ModelVersion:
    _require(user=user, model=version.model, capability=Capability.EDIT_DRAFT,
             what=f"discard {version}")
    with transaction.atomic():
        _model, fresh = _locked(version)
        _transition(fresh, VersionState.DISCARDED, Action.VERSION_DISCARDED)
    return fresh


# -- shadow ---------------------------------------------------------------------------

def shadow_start(*, user, version: ModelVersion) -> ModelVersion:
    _require(user=user, model=version.model, capability=Capability.RUN_SHADOW,
             what=f"start shadow scoring of {version}")
    with transaction.atomic():
        model, fresh = _locked(version)
        if fresh.state not in (VersionState.IN_REVIEW, VersionState.APPROVED):
            raise Conflict("Only a version in review or approved can run in shadow.",
                           code="illegal_transition", field="state",
                           extra={"state": fresh.state,
                                  "allowed_next": lifecycle.allowed_next(fresh.state)})
        other = ModelVersion.objects.filter(model=model, shadow=True).exclude(pk=fresh.pk).first()
        if other is not None:
            raise Conflict(f"v{other.number} is already running in shadow; stop it first.",
                           code="shadow_busy", field="shadow")
        if not fresh.shadow:
            fresh.shadow = True
            fresh.save(update_fields=["shadow", "updated_at"])
            audit_event_record(action=Action.SHADOW_STARTED, obj=fresh,
                               **_version_event_fields(fresh))
    return fresh


def shadow_stop(*, user, version: ModelVersion) -> ModelVersion:
    _require(user=user, model=version.model, capability=Capability.RUN_SHADOW,
             what=f"stop shadow scoring of {version}")
    with transaction.atomic():
        _model, fresh = _locked(version)
        if fresh.shadow:
            fresh.shadow = False
            fresh.save(update_fields=["shadow", "updated_at"])
            audit_event_record(action=Action.SHADOW_STOPPED, obj=fresh,
                               **_version_event_fields(fresh))
    return fresh
