"""Writes of the dossier app: request a dossier, build it (the background job), download it,
and the IRB's signature of it.

The job mirrors explain's: a durable row, claimed by compare-and-set; in the embedded
shape (Celery eager) it runs in a thread beside the request, otherwise a worker runs the
task; a job whose worker stopped is re-queued by the stale-job sweep.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.errors import Conflict, IntegrityFailure, NotFound, PermissionDenied
from registry import release
from registry.models import DocumentMeaning, ModelVersion, Signature
from registry.roles import Capability
from registry.selectors import user_capabilities
from registry.storage import blob_put, blob_read_verified

from . import package, render
from .evidence import evidence_snapshot, json_ready
from .models import ACTIVE_STATUSES, STEPS, Dossier, DossierStatus, DossierStep

log = logging.getLogger(__name__)
DEFAULT_STALE_SECONDS = 300
READERS = (Capability.VIEW_AUDIT, Capability.GENERATE_DOSSIER)


def _event_fields(version: ModelVersion) -> dict:
    return {"model_id": version.model_id, "model_name": version.model.name,
            "version_id": version.pk, "version_label": version.label}


def _name_of(user) -> dict:
    if not getattr(user, "is_authenticated", False):
        return {}
    return {"username": user.get_username(),
            "name": (user.get_full_name() or user.get_username())}


def may_read(*, user, version: ModelVersion) -> bool:
    """Who may see a version's dossiers: those with view_audit or generate_dossier."""
    caps = user_capabilities(user=user, model=version.model)
    return Capability.VIEW_MODEL in caps and any(c in caps for c in READERS)


def may_generate(*, user, version: ModelVersion) -> bool:
    return Capability.GENERATE_DOSSIER in user_capabilities(user=user, model=version.model)


def dossier_request(*, user, version: ModelVersion) -> Dossier:
    """A new dossier of ``version`` for ``user`` (generate_dossier), queued after commit.

    A version the user may not view is NotFound; one they may view without
    generate_dossier is PermissionDenied, recorded like the registry's refusals.
    """
    caps = user_capabilities(user=user, model=version.model)
    if Capability.VIEW_MODEL not in caps:
        raise NotFound("Not found.")
    if Capability.GENERATE_DOSSIER not in caps:
        audit_event_record(action=Action.PERMISSION_DENIED,
                           object_type="registry.registeredmodel", object_id=version.model_id,
                           object_repr=version.model.name, model_id=version.model_id,
                           model_name=version.model.name,
                           details={"capability": Capability.GENERATE_DOSSIER,
                                    "attempt": f"generate a dossier of {version}"})
        raise PermissionDenied(f"You lack the '{Capability.GENERATE_DOSSIER}' permission on "
                               f"{version.model.name}.", code="permission_denied")
    with transaction.atomic():
        dossier = Dossier.objects.create(version=version, requested_by=user,
                                         progress_total=len(STEPS))
        audit_event_record(action=Action.DOSSIER_REQUESTED, obj=dossier,
                           **_event_fields(version),
                           details={"dossier": str(dossier.public_id)})
        transaction.on_commit(lambda: enqueue(dossier.pk))
    return dossier


# -- running the job ----------------------------------------------------------------------

def enqueue(dossier_id: int) -> None:
    """Queue the build; without a broker run it in a thread beside the request (tests:
    synchronously, ATTEST_DOSSIER_EAGER_THREAD off)."""
    from celery import current_app

    from .tasks import build_dossier

    if current_app.conf.task_always_eager:
        if getattr(settings, "ATTEST_DOSSIER_EAGER_THREAD", True):
            threading.Thread(target=_run_here, args=(dossier_id,),
                             name=f"attest-dossier-{dossier_id}", daemon=True).start()
        else:
            build_dossier.apply(args=[dossier_id], throw=True)
        return
    try:
        build_dossier.apply_async(args=[dossier_id], queue="default", retry=True, retry_policy={
            "max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1})
    except Exception as exc:  # noqa: BLE001 - the row stays queued; the sweep resends it
        log.warning("could not publish dossier job %s: %s; the stale-job sweep will resend it",
                    dossier_id, exc)


def _run_here(dossier_id: int) -> None:
    from .tasks import build_dossier

    try:
        build_dossier.apply(args=[dossier_id], throw=False)
    finally:
        connection.close()


class LostClaim(Exception):
    """Another run took the job over (re-queued as stale): stop without writing."""


def _step(dossier: Dossier, claim: str, step: str, done: int, **fields) -> None:
    moved = Dossier.objects.filter(pk=dossier.pk, claim=claim,
                                   status=DossierStatus.RUNNING).update(
        step=step, progress_done=done, updated_at=timezone.now(), **fields)
    if not moved:
        raise LostClaim(dossier.pk)


BUSY = "busy"


def dossier_build(*, dossier_id: int) -> str:
    """Build one dossier; safe to deliver more than once.

    1. Claim it (queued → running, compare-and-set); a finished or held one is left.
    2. Evidence: the snapshot at one instant, saved on the row with the chain head.
    3. Render: the snapshot → PDF bytes (the same snapshot gives the same bytes).
    4. Store: content-addressed (blob_put writes a temp file and renames it into place),
       then completion and its audit event ``dossier.generated`` in one transaction.
    Any failure ends the job failed, with the error and an audit event.
    """
    dossier = (Dossier.objects.select_related("version", "version__model", "requested_by")
               .filter(pk=dossier_id).first())
    if dossier is None:
        return "missing"
    if dossier.status not in ACTIVE_STATUSES:
        return dossier.status
    claim = uuid.uuid4().hex
    now = timezone.now()
    if not Dossier.objects.filter(pk=dossier.pk, status=DossierStatus.QUEUED).update(
            status=DossierStatus.RUNNING, claim=claim, attempts=F("attempts") + 1,
            updated_at=now, started_at=dossier.started_at or now):
        return BUSY
    version = dossier.version
    try:
        _step(dossier, claim, DossierStep.EVIDENCE, 0)
        at = timezone.now()
        snapshot = json_ready(evidence_snapshot(version=version, at=at,
                                                generated_by=_name_of(dossier.requested_by)))
        cover = snapshot["cover"]
        _step(dossier, claim, DossierStep.RENDER, 1, snapshot=snapshot, evidence_at=at,
              chain_head_seq=cover["chain_head_seq"], chain_head_hash=cover["chain_head_hash"])
        pdf = render.dossier_pdf(snapshot)
        _step(dossier, claim, DossierStep.STORE, 2)
        sha256 = hashlib.sha256(pdf).hexdigest()
        with tempfile.TemporaryFile() as spool:
            spool.write(pdf)
            key, _created = blob_put(spool, sha256)
        with transaction.atomic():
            if not Dossier.objects.filter(pk=dossier.pk, claim=claim,
                                          status=DossierStatus.RUNNING).update(
                    status=DossierStatus.COMPLETED, sha256=sha256, storage_key=key,
                    size=len(pdf), progress_done=len(STEPS), step="",
                    finished_at=timezone.now(), updated_at=timezone.now()):
                raise LostClaim(dossier.pk)
            audit_event_record(action=Action.DOSSIER_GENERATED, obj=dossier,
                               **_event_fields(version),
                               details={"dossier": str(dossier.public_id), "sha256": sha256,
                                        "size": len(pdf), "evidence_at": cover["evidence_at"],
                                        "chain_head_seq": cover["chain_head_seq"],
                                        "chain_head_hash": cover["chain_head_hash"],
                                        "gaps": [q["number"] for q in snapshot["questions"]
                                                 if q["status"] != "answered"]})
    except LostClaim:
        log.warning("dossier job %s was taken over; this run stops", dossier.public_id)
        return BUSY
    except Exception as exc:  # noqa: BLE001 - recorded on the row, which fails
        log.exception("dossier %s failed", dossier.public_id)
        _fail(dossier, claim, f"{exc.__class__.__name__}: {exc}"[:2000])
        return DossierStatus.FAILED
    return DossierStatus.COMPLETED


def _fail(dossier: Dossier, claim: str, message: str) -> None:
    version = dossier.version
    with transaction.atomic():
        failed = Dossier.objects.filter(pk=dossier.pk, claim=claim,
                                        status=DossierStatus.RUNNING).update(
            status=DossierStatus.FAILED, error=message, finished_at=timezone.now(),
            updated_at=timezone.now())
        if failed:
            step = Dossier.objects.filter(pk=dossier.pk).values_list("step", flat=True).first()
            audit_event_record(action=Action.DOSSIER_FAILED, obj=dossier,
                               **_event_fields(version),
                               details={"dossier": str(dossier.public_id), "step": step,
                                        "error": message[:500]})


def dossiers_resume_stale(*, stale_after: timedelta | None = None) -> list[int]:
    """Re-queue builds whose worker stopped (running, no progress for ``stale_after``) and
    resend queued ones whose message was lost; each by compare-and-set."""
    if stale_after is None:
        stale_after = timedelta(seconds=getattr(settings, "ATTEST_DOSSIER_STALE_SECONDS",
                                                DEFAULT_STALE_SECONDS))
    now = timezone.now()
    cutoff = now - stale_after
    resumed = []
    for pk, status, claim in Dossier.objects.filter(
            status__in=ACTIVE_STATUSES, updated_at__lte=cutoff).values_list(
            "pk", "status", "claim"):
        if status == DossierStatus.RUNNING and _alive_here(pk):
            continue
        if Dossier.objects.filter(pk=pk, status=status, claim=claim,
                                  updated_at__lte=cutoff).update(
                status=DossierStatus.QUEUED, claim="", updated_at=now):
            enqueue(pk)
            resumed.append(pk)
    if resumed:
        log.warning("re-queued stalled dossier jobs %s", resumed)
    return resumed


def _alive_here(pk: int) -> bool:
    return any(t.name == f"attest-dossier-{pk}" and t.is_alive() for t in threading.enumerate())


# -- download ---------------------------------------------------------------------------------

def dossier_download(*, user, dossier: Dossier) -> bytes:
    """The stored PDF, its sha256 proved, and the download's audit event.

    NotFound for users who may not read the version's dossiers (view_audit or
    generate_dossier) and for a dossier not completed; IntegrityFailure (409) when the
    stored bytes no longer have the recorded sha256.
    """
    data = _stored_pdf(user=user, dossier=dossier)
    audit_event_record(action=Action.DOSSIER_DOWNLOADED, obj=dossier,
                       **_event_fields(dossier.version),
                       details={"dossier": str(dossier.public_id), "sha256": dossier.sha256})
    return data


def _stored_pdf(*, user, dossier: Dossier, refused: str = "download") -> bytes:
    if not may_read(user=user, version=dossier.version):
        raise NotFound("Not found.")
    if dossier.status != DossierStatus.COMPLETED:
        raise NotFound(f"Dossier {dossier.public_id} is {dossier.status}: there is no PDF.",
                       code="not_ready")
    return _verified_pdf(dossier, refused=refused)


def _verified_pdf(dossier: Dossier, *, refused: str) -> bytes:
    """The stored PDF, proved to still have the sha256 recorded when it was generated.

    Otherwise the refusal is recorded (``dossier.integrity_failed``: what was refused, the
    expected and actual sha256; committed, as the caller's request fails) and raised as
    IntegrityFailure (409 ``dossier_changed``): nobody downloads, packages or signs bytes
    other than those generated.
    """
    try:
        return blob_read_verified(dossier.storage_key, dossier.sha256)
    except IntegrityFailure as exc:
        log.error("dossier %s no longer has its sha256: %s", dossier.public_id, exc.message)
        audit_event_record(action=Action.DOSSIER_INTEGRITY_FAILED, obj=dossier,
                           **_event_fields(dossier.version),
                           details={"dossier": str(dossier.public_id), "refused": refused,
                                    "problem": exc.items[0].code, "key": dossier.storage_key,
                                    "expected_sha256": dossier.sha256,
                                    "actual_sha256": exc.extra.get("actual_sha256")})
        verb = {"download": "downloaded", "evidence": "packaged", "sign": "signed"}[refused]
        raise IntegrityFailure(f"The stored PDF of dossier {dossier.public_id} no longer has "
                               f"its recorded sha256 {dossier.sha256[:12]}…: it cannot be "
                               f"{verb}. The refusal is in the audit trail.",
                               code="dossier_changed", field="sha256", extra=exc.extra) from None


def dossier_evidence_download(*, user, dossier: Dossier) -> bytes:
    """The evidence package (ZIP, ``dossier.package``) and its download's audit event.

    The same rules as the PDF's download (NotFound, IntegrityFailure when the stored PDF
    changed); recorded as ``dossier.downloaded`` with ``what: evidence`` and the ZIP's
    sha256 (the same dossier always gives the same ZIP).
    """
    data = package.package_zip(dossier, _stored_pdf(user=user, dossier=dossier,
                                                    refused="evidence"))
    audit_event_record(action=Action.DOSSIER_DOWNLOADED, obj=dossier,
                       **_event_fields(dossier.version),
                       details={"dossier": str(dossier.public_id), "sha256": dossier.sha256,
                                "what": "evidence",
                                "package_sha256": hashlib.sha256(data).hexdigest()})
    return data


# -- the IRB signs a dossier ------------------------------------------------------------------

REVIEW_MEANING = DocumentMeaning.IRB_DOSSIER_REVIEW


def may_sign(*, user, dossier: Dossier) -> bool:
    """Whether to offer this user the sign form (the service decides, and says why not)."""
    return (dossier.status == DossierStatus.COMPLETED
            and release.may_sign_document(user=user, version=dossier.version,
                                          meaning=REVIEW_MEANING))


def dossier_review_sign(*, user, dossier: Dossier, decision: str, password: str,
                        comment: str = "", sha256: str | None = None,
                        content_hash: str | None = None,
                        version: ModelVersion | None = None) -> Signature:
    """The IRB signs that it reviewed this dossier (``irb_dossier_review``).

    The signature is the registry's (one concept: the version page, every later
    dossier's sign-off manifest and the reconciler read it there); it covers the
    dossier's sha256 besides the version's content hash. Steps:

    1. NotFound for users who may not read the version's dossiers (as every dossier
       read); PermissionDenied for readers who may not sign it (the IRB role on the
       model, registry.roles; not the version's registrant or submitter).
    2. The dossier must be of ``version`` when the caller names one, completed, rendered
       from the version's content hash as it stands, have the sha256 the signer read
       (``sha256``, when given), and its stored bytes must still have that sha256: the
       IRB signs exactly the bytes anyone downloads. Each refusal is a Conflict (409).
    3. The registry's ``document_signoff_record``: password re-entry, decision and
       comment rules as for a release sign-off, one signature per IRB member per dossier,
       written with its ``release.signoff_recorded`` event (which records the sha256) in
       one transaction.

    It does not approve the version: irb_approval stays the release's sign-off.
    """
    target = dossier.version
    if not may_read(user=user, version=target):
        raise NotFound("No such dossier.")
    release.document_signoff_authorize(user=user, version=target, meaning=REVIEW_MEANING)
    if version is not None and version.pk != target.pk:
        raise Conflict(f"Dossier {dossier.public_id} is of {target}, not of {version}.",
                       code="other_version", field="version",
                       extra={"dossier_version": target.number})
    if dossier.status != DossierStatus.COMPLETED:
        raise Conflict(f"Dossier {dossier.public_id} is {dossier.get_status_display().lower()}:"
                       " only a completed dossier can be signed.", code="not_completed",
                       field="status", extra={"status": dossier.status})
    rendered_from = ((dossier.snapshot or {}).get("cover") or {}).get("content_hash")
    if rendered_from != target.content_hash:
        raise Conflict(f"Dossier {dossier.public_id} was rendered from content hash "
                       f"{rendered_from or '(none recorded)'}, not {target}'s "
                       f"{target.content_hash}: generate a new dossier and sign that.",
                       code="stale_dossier", field="content_hash",
                       extra={"content_hash": target.content_hash})
    if sha256 is not None and sha256 != dossier.sha256:
        raise Conflict("The sha256 you reviewed is not this dossier's; reload its page.",
                       code="hash_mismatch", field="sha256", extra={"sha256": dossier.sha256})
    _verified_pdf(dossier, refused="sign")
    return release.document_signoff_record(
        user=user, version=target, meaning=REVIEW_MEANING, decision=decision,
        password=password, comment=comment, content_hash=content_hash,
        document_sha256=dossier.sha256, document_ref=str(dossier.public_id))
