"""The registry's rows against the audit chain (registered with ``audits.reconcile``).

- Every signature row against its ``release.signoff_recorded`` event: signer,
  printed name, role, decision, the content hash it covers and its time, and for
  a document sign-off (the IRB's review of a dossier) the document's sha256 and
  id. A forged printed name, a changed decision, a dossier sha256 edited to cover
  another document or a row with no event is named; so is a sign-off event whose
  row is gone. Release sign-offs pair with their event by (version, meaning), one
  each; document sign-offs, several per meaning, by the signature id their event
  records.
- Every version's current state against the state its last event recorded
  (a draft moved into production behind the app's back), and from submit on
  its content hash against the one the submit event recorded and against the
  hash recomputed from the version's fields (a threshold edited after review).

Only rows the app writes through its services are expected to agree; the check
reads, it never repairs: the trail is the record, the rows are what changed.
"""

from __future__ import annotations

from datetime import timedelta

from audits.models import Action, AuditEvent
from audits.reconcile import Finding

from .models import ModelVersion, Signature, VersionState

# A signature row is written in the same transaction as its event, a moment before it.
SIGNED_AT_TOLERANCE = timedelta(seconds=60)
_VERSION = ModelVersion._meta.label_lower
_SIGNATURE = Signature._meta.label_lower


def reconcile_registry(model_ids: set[int] | None) -> tuple[dict[str, int], list[Finding]]:
    versions = ModelVersion.objects.select_related("model", "dataset", "serving_runtime")
    signatures = Signature.objects.select_related("version__model", "signer")
    events = AuditEvent.objects.filter(version_id__isnull=False)
    if model_ids is not None:
        versions = versions.filter(model_id__in=model_ids)
        signatures = signatures.filter(version__model_id__in=model_ids)
        events = events.filter(model_id__in=model_ids)
    versions = list(versions.order_by("pk"))
    signatures = list(signatures.order_by("pk"))
    findings = _signatures(signatures, events, versions)
    findings += _versions(versions, events)
    return {"signatures": len(signatures), "versions": len(versions)}, findings


def _event_key(event: AuditEvent) -> tuple:
    after = event.after or {}
    if after.get("document_sha256"):
        return ("document", (event.details or {}).get("signature_id"))
    return (event.version_id, after.get("meaning"))


def _row_key(sig: Signature) -> tuple:
    if sig.document_sha256:
        return ("document", sig.pk)
    return (sig.version_id, sig.meaning)


def _signatures(signatures: list[Signature], events, versions) -> list[Finding]:
    recorded: dict[tuple, AuditEvent] = {}
    for event in events.filter(action=Action.SIGNOFF_RECORDED).order_by("seq"):
        recorded.setdefault(_event_key(event), event)
    findings = []
    for sig in signatures:
        name = f"signature {sig.pk} ({sig.meaning} on {sig.version})"
        event = recorded.pop(_row_key(sig), None)
        if event is None:
            # A row whose document sha256 was set or cleared behind the app's back pairs
            # under the other key: find its event there, so the finding names the field.
            other = ((sig.version_id, sig.meaning) if sig.document_sha256
                     else ("document", sig.pk))
            event = recorded.pop(other, None)
        if event is None:
            findings.append(Finding(_SIGNATURE, str(sig.pk), name, model_id=sig.version.model_id,
                                    problem="no sign-off event records it"))
            continue
        after = event.after or {}
        problems = []
        if event.version_id != sig.version_id:
            problems.append(f"is on {sig.version} but the event recorded "
                            f"{event.version_label or event.version_id}")
        # The event names the signer by username (and by actor when signed in a request).
        if after.get("signer") != sig.signer.get_username() or \
                event.actor_id not in (None, sig.signer_id):
            problems.append(f"signed by {sig.signer.get_username()} but the event recorded "
                            f"{after.get('signer') or event.actor_username!r}")
        for attr in ("printed_name", "role", "decision", "content_hash"):
            if after.get(attr) != getattr(sig, attr):
                problems.append(f"{attr.replace('_', ' ')} {getattr(sig, attr)!r} but the event "
                                f"recorded {after.get(attr)!r}")
        if after.get("meaning") != sig.meaning:
            problems.append(f"meaning {sig.meaning!r} but the event recorded "
                            f"{after.get('meaning')!r}")
        # Events of release sign-offs (and those written before documents) record neither.
        for attr in ("document_sha256", "document_ref"):
            if (after.get(attr) or "") != getattr(sig, attr):
                problems.append(f"{attr.replace('_', ' ')} {getattr(sig, attr) or '(none)'!r} "
                                f"but the event recorded {after.get(attr) or '(none)'!r}")
        if abs(event.time - sig.signed_at) > SIGNED_AT_TOLERANCE:
            problems.append(f"signed at {sig.signed_at.isoformat()} but the event is of "
                            f"{event.time.isoformat()}")
        findings += [Finding(_SIGNATURE, str(sig.pk), name, model_id=sig.version.model_id,
                             event_seq=event.seq, problem=f"{p} (event #{event.seq})")
                     for p in problems]
    by_id = {v.pk: v for v in versions}
    for event in recorded.values():
        version_id, meaning = event.version_id, (event.after or {}).get("meaning")
        version = by_id.get(version_id)
        findings.append(Finding(
            _VERSION, str(version_id), str(version or f"version {version_id}"),
            model_id=event.model_id, event_seq=event.seq,
            problem=f"sign-off event #{event.seq} records {meaning!r} by "
                    f"{(event.after or {}).get('signer') or event.actor_username or 'someone'}, but no "
                    "signature row holds it"))
    return findings


def _versions(versions: list[ModelVersion], events) -> list[Finding]:
    last_state: dict[int, AuditEvent] = {}
    submitted: dict[int, AuditEvent] = {}
    for event in (events.filter(object_type=_VERSION, after__has_key="state")
                  .order_by("seq").only("seq", "version_id", "action", "after")):
        last_state[event.version_id] = event
        if event.action == Action.VERSION_SUBMITTED:
            submitted[event.version_id] = event

    findings = []
    for version in versions:
        findings += _version_findings(version, last_state.get(version.pk),
                                      submitted.get(version.pk))
    return findings


def _version_findings(version: ModelVersion, event: AuditEvent | None,
                      submit: AuditEvent | None) -> list[Finding]:
    from .services import version_content_hash

    problems: list[tuple[str, AuditEvent | None]] = []
    if event is None:
        problems.append((f"is {version.state} but no event records its state", None))
    elif event.after["state"] != version.state:
        problems.append((f"is {version.state} but its last transition, event #{event.seq} "
                         f"({event.action}), left it {event.after['state']}", event))
    # Drafts (and drafts discarded) were never reviewed: no content hash to hold them to.
    if version.state not in (VersionState.DRAFT, VersionState.DISCARDED) \
            or version.submitted_at is not None:
        if submit is None:
            problems.append((f"is {version.state} but no submit event records the content "
                             "reviewers signed", None))
        elif submit.after.get("content_hash") != version.content_hash:
            problems.append((f"content hash {version.content_hash} but the submit event "
                             f"#{submit.seq} recorded {submit.after.get('content_hash')}", submit))
        elif version_content_hash(version) != version.content_hash:
            problems.append(("its reviewed fields (schema, threshold, OOD policy, card, runbook, "
                             "artifact, dataset or serving evidence) no longer hash to "
                             f"{version.content_hash}, the content hash of submit event "
                             f"#{submit.seq}", submit))
    name = f"{version} (version id {version.pk})"
    return [Finding(_VERSION, str(version.pk), name, model_id=version.model_id,
                    event_seq=ev.seq if ev else None, problem=problem)
            for problem, ev in problems]
