"""Reads, always for a user: every list, page, API view and download goes through here.

An object the user may not view is reported as NotFound, never as forbidden,
so the existence of other groups' models does not leak.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict

from django.db.models import Prefetch, Q, QuerySet

from core.errors import NotFound, PermissionDenied

from .extensions import document_link
from .models import (
    DOCUMENT_TYPES,
    DatasetVersion,
    ModelAccessGrant,
    ModelVersion,
    RegisteredModel,
)
from .roles import (
    ALL_CAPABILITIES,
    GLOBAL_AUDITOR_CAPABILITIES,
    ROLE_CAPABILITIES,
    Capability,
    is_global_admin,
    is_global_auditor,
    roles_with,
)


def _authenticated(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def _capabilities_of(user, roles) -> frozenset[str]:
    """What a (non-admin) user may do on a model on which they hold ``roles``."""
    caps: set[str] = set(GLOBAL_AUDITOR_CAPABILITIES) if is_global_auditor(user) else set()
    for role in roles:
        caps |= ROLE_CAPABILITIES.get(role, frozenset())
    return frozenset(caps)


def user_capabilities(*, user, model: RegisteredModel) -> frozenset[str]:
    """The one authorization rule: global roles, then the user's grants on the model.
    Answers are kept on the user object for the rest of the request."""
    if not _authenticated(user):
        return frozenset()
    if is_global_admin(user):
        return ALL_CAPABILITIES
    cache = user.__dict__.setdefault("_attest_caps", {})
    if model.pk not in cache:
        cache[model.pk] = _capabilities_of(user, ModelAccessGrant.objects.filter(
            model=model, user=user).values_list("role", flat=True))
    return cache[model.pk]


def user_model_roles(*, user, model: RegisteredModel) -> list[str]:
    if not _authenticated(user):
        return []
    return sorted(ModelAccessGrant.objects.filter(model=model, user=user)
                  .values_list("role", flat=True))


def model_list_for_user(*, user, capability: str = Capability.VIEW_MODEL) -> QuerySet[RegisteredModel]:
    qs = RegisteredModel.objects.all()
    if not _authenticated(user):
        return qs.none()
    if is_global_admin(user):
        return qs
    if is_global_auditor(user) and capability in GLOBAL_AUDITOR_CAPABILITIES:
        return qs
    return qs.filter(pk__in=ModelAccessGrant.objects.filter(
        user=user, role__in=roles_with(capability)).values("model_id"))


def model_get_for_user(*, user, name: str, capability: str = Capability.VIEW_MODEL) -> RegisteredModel:
    """The named model if the user may view it; NotFound otherwise.

    If the user may view it but lacks ``capability``, PermissionDenied (403):
    at that point its existence is no secret.

    A member's grants on the model come with the model in one query (every API call
    on a model starts here), and what they allow is ``user_capabilities``' answer.
    """
    model = None
    if _authenticated(user) and isinstance(name, str):
        if is_global_admin(user) or is_global_auditor(user):
            model = RegisteredModel.objects.filter(name=name).first()
        else:
            grants = list(ModelAccessGrant.objects.filter(user=user, model__name=name)
                          .select_related("model"))
            if grants:
                model = grants[0].model
                user.__dict__.setdefault("_attest_caps", {})[model.pk] = _capabilities_of(
                    user, [g.role for g in grants])
    if model is None or Capability.VIEW_MODEL not in user_capabilities(user=user, model=model):
        raise NotFound(f"No model named '{name}'.", code="not_found")
    if capability != Capability.VIEW_MODEL and capability not in user_capabilities(user=user, model=model):
        raise PermissionDenied(f"You lack the '{capability}' permission on {model.name}.",
                               code="permission_denied")
    return model


def require_capability(*, user, model: RegisteredModel, capability: str) -> None:
    caps = user_capabilities(user=user, model=model)
    if Capability.VIEW_MODEL not in caps:
        raise NotFound("Not found.", code="not_found")
    if capability not in caps:
        raise PermissionDenied(f"You lack the '{capability}' permission on {model.name}.",
                               code="permission_denied")


# Submitted versions are frozen: everything a prediction reads of them (schemas,
# threshold, OOD policy, artifact, the training profile) is covered by the content hash
# from submit on, so a process may keep them by (pk, content hash) without invalidation;
# only their state and shadow flag change, and those are read fresh every time.
_frozen_versions: OrderedDict[tuple[int, str], ModelVersion] = OrderedDict()
_FROZEN_MAX = 64
_frozen_lock = threading.Lock()


def _frozen_version(pk: int, content_hash: str, state: str, shadow: bool,
                    model: RegisteredModel) -> ModelVersion | None:
    key = (pk, content_hash)
    with _frozen_lock:
        found = _frozen_versions.get(key)
        if found is not None:
            _frozen_versions.move_to_end(key)
    if found is None:
        found = (ModelVersion.objects.select_related("dataset")
                 .filter(pk=pk, content_hash=content_hash).first())
        if found is None:  # changed since the ids were read: the caller reads it again
            return None
        with _frozen_lock:
            _frozen_versions[key] = found
            while len(_frozen_versions) > _FROZEN_MAX:
                _frozen_versions.popitem(last=False)
    version = copy.copy(found)  # state, shadow and model are this request's
    version.state, version.shadow, version.model = state, shadow, model
    return version


def frozen_versions_clear() -> None:
    with _frozen_lock:
        _frozen_versions.clear()


def serving_versions(*, model: RegisteredModel) -> tuple[ModelVersion | None,
                                                          ModelVersion | None]:
    """The model's production and shadow versions, for scoring: one small query for
    their ids, content hashes and states; the versions themselves (with their
    dataset's profile) from the process's cache of frozen versions."""
    from .models import VersionState

    production = shadow = None
    for pk, content_hash, state, in_shadow in (
            ModelVersion.objects.filter(model=model)
            .filter(Q(state=VersionState.PRODUCTION) | Q(shadow=True))
            .values_list("pk", "content_hash", "state", "shadow")):
        if state == VersionState.DRAFT or not content_hash:
            continue  # never serving; a draft cannot be in production or shadow
        version = _frozen_version(pk, content_hash, state, in_shadow, model)
        if version is None:
            version = ModelVersion.objects.select_related("dataset").get(pk=pk)
            version.model = model
        if version.state == VersionState.PRODUCTION:
            production = version
        elif version.shadow:
            shadow = version
    return production, shadow


def version_list_for_model(*, user, model: RegisteredModel) -> QuerySet[ModelVersion]:
    require_capability(user=user, model=model, capability=Capability.VIEW_MODEL)
    return (ModelVersion.objects.filter(model=model).select_related("dataset", "created_by")
            .order_by("-number"))


def version_get_for_user(*, user, model_name: str, number: int | str,
                         capability: str = Capability.VIEW_MODEL) -> ModelVersion:
    model = model_get_for_user(user=user, name=model_name)
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise NotFound(f"No version {number!r} of {model_name}.", code="not_found") from None
    version = (ModelVersion.objects.select_related("model", "dataset", "created_by", "submitted_by")
               .filter(model=model, number=number).first())
    if version is None:
        raise NotFound(f"No version {number} of {model_name}.", code="not_found")
    if capability != Capability.VIEW_MODEL:
        require_capability(user=user, model=model, capability=capability)
    return version


def model_versions_summary(*, user) -> QuerySet[RegisteredModel]:
    """Models the user may view, with their versions prefetched (newest first)."""
    return model_list_for_user(user=user).prefetch_related(
        Prefetch("versions", queryset=ModelVersion.objects.order_by("-number")))


def dataset_list_for_user(*, user) -> QuerySet[DatasetVersion]:
    """Datasets the user registered, or that train a model the user may view."""
    qs = DatasetVersion.objects.all()
    if not _authenticated(user):
        return qs.none()
    if is_global_admin(user) or is_global_auditor(user):
        return qs
    visible_models = model_list_for_user(user=user).values("pk")
    return qs.filter(Q(created_by=user) | Q(model_versions__model__in=visible_models)).distinct()


def dataset_get_for_user(*, user, dataset_id: int | str) -> DatasetVersion:
    try:
        pk = int(dataset_id)
    except (TypeError, ValueError):
        raise NotFound("No such dataset version.", code="not_found") from None
    dataset = dataset_list_for_user(user=user).filter(pk=pk).first()
    if dataset is None:
        raise NotFound("No such dataset version.", code="not_found")
    return dataset


def model_grants(*, model: RegisteredModel) -> QuerySet[ModelAccessGrant]:
    return ModelAccessGrant.objects.filter(model=model).select_related("user", "granted_by")


# -- release workflow -------------------------------------------------------------------

def signature_manifest(*, version: ModelVersion) -> list[dict]:
    """Who signed what, as which role, when, and the hash each signature covers.

    First the release sign-offs, one row per meaning (the policy's, pending or signed,
    then any other signed); then the document sign-offs (the IRB's reviews of compliance
    dossiers), oldest first, each covering its document's sha256 besides the content hash.
    """
    required = version.signoff_policy
    signatures = list(version.signatures.select_related("signer").order_by("signed_at", "pk"))
    signed = {s.meaning: s for s in signatures if not s.document_sha256}
    rows = []
    for meaning in required + sorted(set(signed) - set(required)):
        sig = signed.get(meaning)
        rows.append(_manifest_row(version, sig, meaning=meaning, required=meaning in required))
    rows += [_manifest_row(version, sig, meaning=sig.meaning, required=False)
             for sig in signatures if sig.document_sha256]
    return rows


def document_signatures(*, version: ModelVersion, document_sha256: str) -> list[dict]:
    """The manifest rows of the signatures covering one document of a version."""
    if not document_sha256:
        return []
    return [_manifest_row(version, sig, meaning=sig.meaning, required=False)
            for sig in (version.signatures.select_related("signer")
                        .filter(document_sha256=document_sha256).order_by("signed_at", "pk"))]


def _manifest_row(version: ModelVersion, sig, *, meaning: str, required: bool) -> dict:
    document = bool(sig) and bool(sig.document_sha256)
    document_type = DOCUMENT_TYPES.get(meaning, "document") if document else None
    return {
        "meaning": meaning, "required": required,
        "status": sig.decision if sig else "pending",
        "signer": sig.signer.get_username() if sig else None,
        "printed_name": sig.printed_name if sig else None,
        "role": sig.role if sig else None, "comment": sig.comment if sig else "",
        "signed_at": sig.signed_at.isoformat() if sig else None,
        "content_hash": sig.content_hash if sig else None,
        "bound_to_current_content": bool(sig) and sig.content_hash == version.content_hash,
        # What the signature covers: the version's content hash, or a document of it.
        "covers": ("document" if document else "content_hash") if sig else None,
        "document": ({"type": document_type, "ref": sig.document_ref,
                      "sha256": sig.document_sha256,
                      "url": document_link(document_type=document_type,
                                           document_ref=sig.document_ref)}
                     if document else None),
    }


def versions_awaiting_signoff(*, user) -> list[tuple[ModelVersion, list[str]]]:
    """Versions in review where this user holds a role that may sign a missing meaning."""
    from .models import VersionState

    if not _authenticated(user):
        return []
    grants: dict[int, set[str]] = {}
    for model_id, role in ModelAccessGrant.objects.filter(user=user).values_list("model_id", "role"):
        grants.setdefault(model_id, set()).add(role)
    if not grants:
        return []
    from .duties import open_meanings

    waiting = []
    versions = (ModelVersion.objects.filter(model_id__in=grants, state=VersionState.IN_REVIEW)
                .exclude(submitted_by=user).exclude(created_by=user)
                .select_related("model", "submitted_by")
                .prefetch_related("signatures").order_by("submitted_at"))
    for version in versions:
        meanings = open_meanings(user_id=user.pk, version=version, roles=grants[version.model_id],
                                 signatures=version.signatures.all())
        if meanings:
            waiting.append((version, meanings))
    return waiting


def production_at(*, model: RegisteredModel, when) -> dict:
    """What was in production at ``when`` and who approved it — from the audit trail.

    The version's state field only says what is true now; the trail says what was
    true then: the last promote or rollback event at or before ``when`` names the
    version (unless a later retire of it came first), and the sign-off events
    recorded for that version before ``when`` name its approvers.
    """
    from audits.models import Action, AuditEvent

    events = AuditEvent.objects.filter(model_id=model.pk, time__lte=when).order_by("-seq")
    entered = events.filter(action__in=[Action.VERSION_PROMOTED, Action.VERSION_ROLLED_BACK],
                            after__state="production").first()
    if entered is None:
        return {"version": None, "since": None, "approvals": [], "event_seq": None}
    left = events.filter(version_id=entered.version_id, seq__gt=entered.seq,
                         action__in=[Action.VERSION_SUPERSEDED, Action.VERSION_RETIRED]).first()
    if left is not None:
        return {"version": None, "since": left.time.isoformat(), "approvals": [],
                "event_seq": left.seq}
    approvals = [
        {"meaning": e.after.get("meaning"), "decision": e.after.get("decision"),
         "signer": e.after.get("signer"), "printed_name": e.after.get("printed_name"),
         "role": e.after.get("role"), "time": e.time.isoformat(), "event_seq": e.seq}
        for e in AuditEvent.objects.filter(version_id=entered.version_id,
                                           action=Action.SIGNOFF_RECORDED,
                                           time__lte=when)
        # a review of a dossier approves no release
        .exclude(after__has_key="document_sha256").order_by("seq")
    ]
    return {"version": entered.version_label, "since": entered.time.isoformat(),
            "via": "rollback" if entered.action == Action.VERSION_ROLLED_BACK else "promote",
            "by": entered.actor_username, "reason": entered.reason,
            "approvals": approvals, "event_seq": entered.seq}


class AuditModelDirectory:
    """What the audit trail (``audits.access``) asks the registry about a user."""

    def reads_whole_trail(self, user) -> bool:
        return is_global_admin(user) or is_global_auditor(user)

    def auditable_model_ids(self, user) -> set[int]:
        return set(model_list_for_user(user=user, capability=Capability.VIEW_AUDIT)
                   .values_list("pk", flat=True))

    def administers(self, user) -> bool:
        return is_global_admin(user)

    def visible_model_id(self, user, name: str) -> int | None:
        return model_list_for_user(user=user).filter(name=name).values_list("pk", flat=True) \
            .first()
