"""The dossier's evidence package: a ZIP of the PDF and the evidence it was rendered from.

Contents (sorted by name; ``manifest.json`` last-written but listed like the others):

- ``dossier.pdf``: the stored PDF, its sha256 proved before it is packed;
- ``model-card.md``, ``runbook.md``, ``signoffs.json``: from the dossier's snapshot, so
  they are what the PDF states, not what the version says today;
- ``audit-export.json``: the version's audit events up to the dossier's chain head, in
  the audit export's JSON format (``audits.export``), headed by that chain head, so the
  client's offline ``attest audit verify`` rules apply to it unchanged;
- ``manifest.json``: every other file with its sha256 and size, the dossier's id,
  version, content hash, evidence instant, chain head and the latest signed checkpoint
  the snapshot recorded.

Reproducible: built only from the snapshot, the stored PDF and append-only events bounded
by the chain head, with every entry's timestamp the evidence instant, so the same dossier
gives the same bytes. Built in memory on request: its size is the PDF's plus the version's
events up to the head (a few hundred bytes each), which bounds it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime

from audits.export import event_as_dict
from audits.models import AuditEvent

from .models import Dossier

FORMAT = "attest-evidence-package/1"
MANIFEST = "manifest.json"
EXPORT = "audit-export.json"


def json_bytes(value) -> bytes:
    """Canonical JSON (sorted keys, two-space indent, UTF-8, final newline)."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def audit_export_bytes(*, version_id: int, head_seq: int | None, head_hash: str) -> bytes:
    """The version's events up to the chain head ``head_seq``, as an audit JSON export.

    One definition for the package's ``audit-export.json`` and the copy embedded in the
    PDF (``dossier.render``), so the two are the same bytes. Events are append-only and
    bounded by the head, so the same head gives the same bytes whenever it is read.
    """
    events = (AuditEvent.objects.filter(version_id=version_id, seq__lte=head_seq or 0)
              .order_by("seq").iterator(chunk_size=5000))
    document = {"chain_head": {"seq": head_seq, "hash": head_hash},
                "filters": {"version_id": version_id, "seq_lte": head_seq},
                "events": [event_as_dict(e) for e in events]}
    return json_bytes(document)


def model_card_bytes(snapshot: dict) -> bytes:
    """The model card as the snapshot holds it (the package's and the PDF's copy)."""
    return (snapshot.get("model_card") or "").encode()


def package_files(dossier: Dossier, pdf: bytes) -> dict[str, bytes]:
    """Every file of the package by name, the manifest included."""
    snapshot = dossier.snapshot or {}
    cover = snapshot.get("cover") or {}
    files = {
        "dossier.pdf": pdf,
        "model-card.md": model_card_bytes(snapshot),
        "runbook.md": (snapshot.get("runbook") or "").encode(),
        "signoffs.json": json_bytes(snapshot.get("signoffs") or []),
        EXPORT: audit_export_bytes(version_id=dossier.version_id,
                                   head_seq=dossier.chain_head_seq,
                                   head_hash=dossier.chain_head_hash),
    }
    manifest = {
        "format": FORMAT,
        "dossier": str(dossier.public_id),
        "model": cover.get("model"), "version": cover.get("version"),
        "content_hash": cover.get("content_hash"),
        "pdf_sha256": dossier.sha256,
        "evidence_at": cover.get("evidence_at"),
        "chain_head": {"seq": dossier.chain_head_seq, "hash": dossier.chain_head_hash},
        "checkpoint": cover.get("checkpoint"),
        "files": [{"name": name, "sha256": hashlib.sha256(data).hexdigest(),
                   "size": len(data)} for name, data in sorted(files.items())],
    }
    files[MANIFEST] = json_bytes(manifest)
    return files


def _zip_time(dossier: Dossier) -> tuple[int, int, int, int, int, int]:
    at = (dossier.evidence_at or datetime(1980, 1, 1, tzinfo=UTC)).astimezone(UTC)
    at = max(at, datetime(1980, 1, 1, tzinfo=UTC))  # the ZIP format's epoch
    # ZIP (DOS) times count seconds in twos: stated so, not left to the zipfile module
    return (at.year, at.month, at.day, at.hour, at.minute, at.second // 2 * 2)


def package_zip(dossier: Dossier, pdf: bytes) -> bytes:
    """The ZIP bytes: entries sorted by name, each stamped with the evidence instant."""
    stamp = _zip_time(dossier)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in sorted(package_files(dossier, pdf).items()):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, whatever machine builds it
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue()
