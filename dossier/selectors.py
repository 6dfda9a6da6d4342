"""Reads of the dossier app, always for a user: a dossier is visible to those who hold
view_audit or generate_dossier on its model (the registry's one authorization rule);
to anyone else it does not exist (NotFound)."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from core.errors import NotFound, PermissionDenied
from registry.models import ModelVersion
from registry.roles import Capability
from registry.selectors import document_signatures, model_list_for_user, user_capabilities

from .models import Dossier
from .services import READERS


def dossier_list_for_user(*, user) -> QuerySet[Dossier]:
    readable = Q()
    for capability in READERS:
        readable |= Q(version__model__in=model_list_for_user(user=user, capability=capability))
    return (Dossier.objects.filter(readable)
            .select_related("version", "version__model", "requested_by"))


def dossiers_for_version(*, user, version: ModelVersion) -> QuerySet[Dossier]:
    """A version's dossiers, newest first; PermissionDenied for a member who may view the
    version but not its dossiers."""
    caps = user_capabilities(user=user, model=version.model)
    if Capability.VIEW_MODEL not in caps:
        raise NotFound("Not found.")
    if not any(c in caps for c in READERS):
        raise PermissionDenied(f"You lack the '{Capability.VIEW_AUDIT}' or "
                               f"'{Capability.GENERATE_DOSSIER}' permission on "
                               f"{version.model.name}.", code="permission_denied")
    return dossier_list_for_user(user=user).filter(version=version)


def dossier_get_for_user(*, user, dossier_id) -> Dossier:
    try:
        public_id = uuid.UUID(str(dossier_id))
    except ValueError:
        raise NotFound("No such dossier.") from None
    dossier = dossier_list_for_user(user=user).filter(public_id=public_id).first()
    if dossier is None:
        raise NotFound("No such dossier.")
    return dossier


def dossier_signatures(*, dossier: Dossier) -> list[dict]:
    """The signatures covering this dossier's bytes (its sha256), oldest first, as the
    sign-off manifest states them. A dossier lists none of its own in its PDF: they come
    after it; a later dossier of the version lists them."""
    return document_signatures(version=dossier.version, document_sha256=dossier.sha256)
