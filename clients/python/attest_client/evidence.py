"""Verifying a dossier's evidence package (ZIP) offline, without the server.

The package (``attest-evidence-package/1``, built by the server's ``dossier/package.py``)
holds the PDF, the model card, the runbook, the sign-off manifest, the version's audit
export up to the dossier's chain head, and ``manifest.json``. The check:

1. every file the manifest lists is in the ZIP with that sha256 and size, and the ZIP
   holds no file the manifest does not list; the manifest is byte for byte what the
   server writes for its content, and its statements agree with the files: pdf_sha256
   with dossier.pdf's entry, evidence_at with every entry's ZIP timestamp, and (once
   the chain holds) the dossier id, model, version and content hash with the export's
   events; the checkpoint it names is informative only (pass the signed file to check);
2. the audit export's hash chain holds (``audit.verify_export``, the rules of
   ``attest audit verify --export``), and its stated head is the manifest's chain head;
   an export holding events past that head fails;
3. with a signed checkpoint (``--checkpoint``), the export against it
   (``audit.verify_export`` again: signature, key, marks).

It lives in the client because the client never imports the server; the server's
``manage.py verify_evidence`` runs this same function.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import audit
from .errors import UsageError

FORMAT = "attest-evidence-package/1"
MANIFEST = "manifest.json"
EXPORT = "audit-export.json"


@dataclass
class PackageVerdict:
    ok: bool
    failures: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    export: dict | None = None

    def summary(self) -> str:
        m = self.manifest
        head = m.get("chain_head") or {}
        checked = (self.export or {}).get("checked", 0)
        text = (f"ok: dossier {m.get('dossier')} of {m.get('model')} v{m.get('version')}, "
                f"{len(m.get('files') or [])} files match the manifest, {checked} audit events "
                f"chain to head #{head.get('seq')} {str(head.get('hash'))[:16]}…")
        checkpoint = (self.export or {}).get("checkpoint")
        if checkpoint:
            text += f"; {checkpoint['message']}"
        return text

    def as_dict(self) -> dict:
        return {"ok": self.ok, "failures": self.failures, "manifest": self.manifest,
                "export": self.export}


ENTRY_KEYS = frozenset({"name", "sha256", "size"})


def verify_package(path: Path, checkpoint: bytes | None = None, *,
                   public_key_pem: bytes | None = None) -> PackageVerdict:
    """Check the package at ``path`` (see the module doc); every failure is one line."""
    try:
        archive = zipfile.ZipFile(Path(path).expanduser())
    except FileNotFoundError:
        raise UsageError(f"evidence package not found: {path}") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path} is not a ZIP file ({exc})") from None
    with archive:
        names = archive.namelist()
        if MANIFEST not in names:
            return PackageVerdict(False, [f"{MANIFEST}: missing, not an Attest evidence "
                                          "package"])
        try:
            manifest = json.loads(archive.read(MANIFEST))
            listed = {entry["name"]: entry for entry in manifest["files"]}
        except (ValueError, KeyError, TypeError) as exc:
            return PackageVerdict(False, [f"{MANIFEST}: unreadable ({exc})"])
        verdict = PackageVerdict(True, manifest=manifest)
        for name, entry in sorted(listed.items(), key=lambda item: str(item[0])):
            # Each entry exactly as the server writes it: a renamed or retyped key would
            # otherwise show up only as its file's mismatch.
            if not (isinstance(entry, dict) and set(entry) == ENTRY_KEYS
                    and isinstance(entry["sha256"], str) and isinstance(entry["size"], int)):
                verdict.failures.append(f"{MANIFEST}: the entry for {name} is not "
                                        "{name, sha256, size} (it was edited)")
        if archive.read(MANIFEST) != manifest_bytes(manifest):
            verdict.failures.append(f"{MANIFEST}: not in the form the server writes (it was "
                                    "edited)")
        stamps = {info.date_time for info in archive.infolist()}
        if manifest.get("format") != FORMAT:
            verdict.failures.append(f"{MANIFEST}: unknown format {manifest.get('format')!r}")
        for name in sorted(set(names) - set(listed) - {MANIFEST}):
            verdict.failures.append(f"{name}: in the ZIP but not listed in the manifest")
        if len(names) != len(set(names)):
            verdict.failures.append("the ZIP holds the same name more than once")
        contents: dict[str, bytes] = {}
        for name, entry in sorted(listed.items()):
            if name not in names:
                verdict.failures.append(f"{name}: listed in the manifest but missing")
                continue
            data = archive.read(name)
            contents[name] = data
            if len(data) != entry.get("size"):
                verdict.failures.append(f"{name}: size {len(data)}, the manifest says "
                                        f"{entry.get('size')}")
            digest = hashlib.sha256(data).hexdigest()
            if digest != entry.get("sha256"):
                verdict.failures.append(f"{name}: sha256 {digest}, the manifest says "
                                        f"{entry.get('sha256')}")
    pdf = listed.get("dossier.pdf") or {}
    if pdf.get("sha256") != manifest.get("pdf_sha256"):
        verdict.failures.append(f"{MANIFEST}: pdf_sha256 {manifest.get('pdf_sha256')} is not "
                                f"the sha256 listed for dossier.pdf ({pdf.get('sha256')})")
    _check_instant(verdict, stamps)
    if EXPORT not in contents:
        verdict.failures.append(f"{EXPORT}: the package holds no audit export")
    else:
        _check_export(verdict, contents[EXPORT], checkpoint, public_key_pem)
    verdict.ok = not verdict.failures
    return verdict


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest as the server writes it (``dossier/package.py``): any other bytes for
    the same content mean it was edited."""
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _evidence_instant(verdict: PackageVerdict) -> datetime | None:
    try:
        return datetime.fromisoformat(verdict.manifest["evidence_at"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        verdict.failures.append(f"{MANIFEST}: no readable evidence_at")
        return None


def _check_instant(verdict: PackageVerdict, stamps: set[tuple]) -> None:
    """Every entry is stamped with the evidence instant (to ZIP's two seconds)."""
    at = _evidence_instant(verdict)
    if at is None:
        return
    expected = (at.year, at.month, at.day, at.hour, at.minute, at.second // 2 * 2)
    if stamps != {expected}:
        verdict.failures.append(f"{MANIFEST}: evidence_at {verdict.manifest['evidence_at']} is "
                                "not the time every file of the ZIP is stamped with")


def _check_statements(verdict: PackageVerdict, events: list[dict]) -> None:
    """The manifest's statements against the export's events (which its chain proves):
    the dossier's request, the model and version, the latest content hash recorded, and
    no event after the evidence instant."""
    m = verdict.manifest
    requested = [e for e in events if e.get("action") == "dossier.requested"
                 and (e.get("details") or {}).get("dossier") == m.get("dossier")]
    if not requested:
        verdict.failures.append(f"{MANIFEST}: dossier {m.get('dossier')} was never requested "
                                "in the audit export")
    for event in events:
        if event.get("model") != m.get("model") or \
                event.get("version") != f"v{m.get('version')}":
            verdict.failures.append(
                f"{MANIFEST}: model {m.get('model')} v{m.get('version')} is not that of event "
                f"#{event.get('seq')} ({event.get('model')} {event.get('version')})")
            break
    hashes = [h for e in events for h in ((e.get("after") or {}).get("content_hash")
                                          if isinstance(e.get("after"), dict) else None,
                                          (e.get("details") or {}).get("content_hash")
                                          if isinstance(e.get("details"), dict) else None)
              if h]
    if hashes and hashes[-1] != m.get("content_hash"):
        verdict.failures.append(f"{MANIFEST}: content_hash {m.get('content_hash')} is not the "
                                f"last one the audit export records ({hashes[-1]})")
    at = _evidence_instant(verdict) if "evidence_at" in m else None
    if at is not None and events:
        last = datetime.fromisoformat(audit.time_text(events[-1]["time"]))
        if last > at:
            verdict.failures.append(f"{MANIFEST}: evidence_at {m['evidence_at']} is before "
                                    f"event #{events[-1].get('seq')} ({events[-1]['time']})")


def _check_export(verdict: PackageVerdict, data: bytes, checkpoint: bytes | None,
                  public_key_pem: bytes | None) -> None:
    try:
        _check_export_document(verdict, data, checkpoint, public_key_pem)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # An edited export may lack a field the chain check reads: one line, no traceback.
        verdict.failures.append(f"{EXPORT}: not a well-formed audit export "
                                f"({exc.__class__.__name__}: {exc})")


def _check_export_document(verdict: PackageVerdict, data: bytes, checkpoint: bytes | None,
                           public_key_pem: bytes | None) -> None:
    try:
        document = json.loads(data)
        if not isinstance(document.get("events"), list):
            raise ValueError("no 'events' list")
    except (ValueError, AttributeError) as exc:
        verdict.failures.append(f"{EXPORT}: not an audit export ({exc})")
        return
    result = audit.verify_export(document, checkpoint, public_key_pem=public_key_pem)
    verdict.export = result.as_dict()
    if result.first_broken:
        b = result.first_broken
        verdict.failures.append(f"{EXPORT}: chain broken at event #{b['seq']}: {b['problem']}")
    for message in result.messages:
        verdict.failures.append(f"{EXPORT}: {message}")
    head = verdict.manifest.get("chain_head") or {}
    stated = document.get("chain_head") or {}
    if stated != head:
        verdict.failures.append(f"{EXPORT}: its chain head #{stated.get('seq')} "
                                f"{stated.get('hash')} is not the manifest's #{head.get('seq')} "
                                f"{head.get('hash')}")
    if result.ok and isinstance(head.get("seq"), int) and result.head_seq > head["seq"]:
        verdict.failures.append(f"{EXPORT}: holds event #{result.head_seq}, past the "
                                f"manifest's chain head #{head['seq']}")
    if result.ok:
        _check_statements(verdict, sorted(document["events"], key=lambda e: int(e["seq"])))
    if result.checkpoint and not result.checkpoint["ok"]:
        verdict.failures.append(f"checkpoint: {result.checkpoint['message']}")
