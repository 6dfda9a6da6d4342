"""Separation of duties on a release: who may sign which sign-off of a version.

One rule, used by the sign-off service (which enforces it under the model's
lock), the review page, the signer's dashboard and the notifications:

- the person who registered the version and the person who submitted it may
  not sign it;
- each required sign-off is signed by a different person: whoever has signed
  one meaning of a version may not sign another;
- a meaning is signed by a holder of one of its signing roles.

A document sign-off (the IRB's review of a compliance dossier) is not a required
sign-off: the first rule holds for it, the second neither counts it nor applies to it,
so the IRB member who reviewed a dossier may still sign the release's irb_approval.

Signing roles are granted by administrators only (``services.access_grant``)
and the release policy is set by administrators and frozen into the version at
submit, so no single account can bring a version to approved.
"""

from __future__ import annotations

from collections.abc import Iterable

from .models import ModelVersion, Signature, VersionState
from .roles import signing_roles


def signoff_barrier(*, user_id: int, version: ModelVersion,
                    signatures: Iterable[Signature]) -> tuple[str, str] | None:
    """Why this user may sign no meaning of this version, as (code, message); or None."""
    own = own_version_barrier(user_id=user_id, version=version)
    if own is not None:
        return own
    for signature in signatures:
        if signature.document_sha256:
            continue  # a document sign-off, not one of the release's
        if signature.signer_id == user_id:
            return ("one_signoff_per_person",
                    f"You have already signed '{signature.meaning}' on this version; each "
                    f"required sign-off is signed by a different person.")
    return None


def own_version_barrier(*, user_id: int, version: ModelVersion) -> tuple[str, str] | None:
    """The registrant and the submitter sign nothing of their version (document sign-offs
    included), as (code, message); or None."""
    if user_id == version.created_by_id:
        return ("self_signing", "You registered this version, so you cannot sign it.")
    if user_id == version.submitted_by_id:
        return ("self_signing", "You submitted this version, so you cannot sign it.")
    return None


def open_meanings(*, user_id: int, version: ModelVersion, roles: set[str],
                  signatures: Iterable[Signature]) -> list[str]:
    """The required meanings this user could sign on this version right now."""
    signatures = list(signatures)
    if version.state != VersionState.IN_REVIEW or signoff_barrier(
            user_id=user_id, version=version, signatures=signatures):
        return []
    signed = {s.meaning for s in signatures if not s.document_sha256}
    return [m for m in version.signoff_policy if m not in signed and roles & signing_roles(m)]
