"""Signed checkpoints: anchoring the audit chain outside the database.

A hash chain alone does not stop someone with database access from rewriting
an event and recomputing every later hash. A checkpoint — the event count, the
head hash, intermediate "marks" and the time, signed with the server's Ed25519
key — is written to the artifact store and can be downloaded, printed and kept
anywhere. Verifying today's chain against an old checkpoint proves the history
it covers is unchanged, or names where the two histories part.

File format (``attest-audit-checkpoint/1``): a JSON object ``{"payload": {...},
"signature": base64}`` where the signature covers the canonical JSON bytes of
the payload. The payload carries the public key, so anyone can check it; the
verifier also compares the key id with the keys this server trusts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from core.errors import ValidationFailed
from core.hashing import canonical_bytes

from .chain import VerifyResult, verify_chain, verify_chain_after
from .models import Action, AuditEvent
from .services import audit_event_record

FORMAT = "attest-audit-checkpoint/1"
MAX_MARKS = 1024


# -- keys ------------------------------------------------------------------------------

def _load_private_key() -> Ed25519PrivateKey:
    """The signing key: ATTEST_AUDIT_SIGNING_KEY (PEM text) or ..._FILE, else a key
    generated once beside the embedded database."""
    pem = settings.ATTEST_AUDIT_SIGNING_KEY
    if not pem and settings.ATTEST_AUDIT_SIGNING_KEY_FILE:
        pem = Path(settings.ATTEST_AUDIT_SIGNING_KEY_FILE).read_text()
    if not pem:
        path = Path(settings.DATA_DIR) / "audit_signing_key.pem"
        if not path.exists():
            if settings.ATTEST_REQUIRE_SIGNING_KEY:
                raise RuntimeError("ATTEST_AUDIT_SIGNING_KEY_FILE is required in this deployment")
            key = Ed25519PrivateKey.generate()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            path.chmod(0o600)
        pem = path.read_text()
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError("the audit signing key must be an Ed25519 private key")
    return key


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(public)).hexdigest()[:16]


def trusted_key_ids() -> set[str]:
    """This server's key plus retired public keys kept after a rotation."""
    ids = {key_id(_load_private_key().public_key())}
    for pem in settings.ATTEST_AUDIT_TRUSTED_PUBLIC_KEYS:
        public = serialization.load_pem_public_key(Path(pem).read_bytes() if Path(pem).exists()
                                                   else pem.encode())
        if isinstance(public, Ed25519PublicKey):
            ids.add(key_id(public))
    return ids


def public_key_pem() -> str:
    return _load_private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# -- writing ---------------------------------------------------------------------------

def _mark_seqs(count: int) -> list[int]:
    """Which events' hashes the checkpoint records: all of them up to MAX_MARKS, else
    evenly spaced ones (always including the head), so a rewrite can be located."""
    if count <= MAX_MARKS:
        return list(range(1, count + 1))
    step = math.ceil(count / MAX_MARKS)
    seqs = list(range(step, count + 1, step))
    if seqs[-1] != count:
        seqs.append(count)
    return seqs


@dataclass(frozen=True)
class Checkpoint:
    payload: dict
    signature: str
    storage_key: str

    def as_document(self) -> dict:
        return {"payload": self.payload, "signature": self.signature}

    def as_bytes(self) -> bytes:
        return json.dumps(self.as_document(), indent=2, sort_keys=True).encode()


def _refuse_broken(result: VerifyResult) -> None:
    if not result.ok:
        raise ValidationFailed(
            f"The chain is broken at event #{result.first_broken.seq}; refusing to sign it.",
            code="chain_broken")


def audit_checkpoint_write() -> Checkpoint:
    """Verify the chain, sign its head and marks, store the file, record the event.

    Refuses to sign a broken chain: a checkpoint vouches for what it covers.

    1. The whole chain is verified outside any lock. That walk is long (seconds per
       few hundred thousand events), and holding the chain lock through it would stop
       every append meanwhile: sign-offs, reviews, and on SQLite every write at all.
    2. Under the chain lock (the one appends take), the verified head must still carry
       the hash the walk ended on and the events appended since must verify (a short
       walk from that hash); the checkpoint signs the head as it stands then, and its
       event is appended before the lock is released.
    """
    from .services import lock_chain_head

    walked = verify_chain()
    _refuse_broken(walked)
    with transaction.atomic():
        lock_chain_head()
        result = verify_chain_after(walked)
        _refuse_broken(result)
        seqs = _mark_seqs(result.head_seq)
        marks = dict(AuditEvent.objects.filter(seq__in=seqs).values_list("seq", "hash"))
        private = _load_private_key()
        public = private.public_key()
        payload = {
            "format": FORMAT,
            "count": result.checked,
            "head_seq": result.head_seq,
            "head_hash": result.head_hash,
            "marks": [[seq, marks[seq]] for seq in seqs],
            "time": timezone.now().isoformat(timespec="seconds"),
            "key_id": key_id(public),
            "public_key": base64.b64encode(_raw_public(public)).decode(),
        }
        signature = base64.b64encode(private.sign(canonical_bytes(payload))).decode()
        name = f"audit-checkpoints/{result.head_seq:012d}-{result.head_hash[:16]}.json"
        checkpoint = Checkpoint(payload, signature, name)
        store = storages["artifacts"]
        if not store.exists(name):
            store.save(name, ContentFile(checkpoint.as_bytes()))
        audit_event_record(action=Action.AUDIT_CHECKPOINT, object_type="audits.checkpoint",
                           object_id=result.head_seq, object_repr=name,
                           details={"head_seq": result.head_seq, "head_hash": result.head_hash,
                                    "key_id": payload["key_id"], "storage_key": name})
    return checkpoint


def checkpoint_list() -> list[dict]:
    """Checkpoints recorded in the trail, newest first."""
    return [e.details for e in AuditEvent.objects.filter(action=Action.AUDIT_CHECKPOINT)
            .order_by("-seq")[:200]]


def checkpoint_latest() -> dict | None:
    """The newest signed checkpoint document ({payload, signature, storage_key}), or None."""
    for details in checkpoint_list()[:1]:
        document = json.loads(checkpoint_read(details["storage_key"]))
        return {"payload": document["payload"], "signature": document["signature"],
                "storage_key": details["storage_key"]}
    return None


def checkpoint_read(storage_key: str) -> bytes:
    if not storage_key.startswith("audit-checkpoints/") or ".." in storage_key:
        raise ValidationFailed("Not a checkpoint.", code="not_found")
    with storages["artifacts"].open(storage_key, "rb") as handle:
        return handle.read()


# -- verifying -------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckpointVerdict:
    ok: bool
    message: str
    checkpoint_seq: int
    last_matching_seq: int | None = None
    first_differing_seq: int | None = None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "message": self.message, "checkpoint_seq": self.checkpoint_seq,
                "last_matching_seq": self.last_matching_seq,
                "first_differing_seq": self.first_differing_seq}


def parse_checkpoint(data: bytes) -> dict:
    try:
        document = json.loads(data)
        payload, signature = document["payload"], document["signature"]
        if payload["format"] != FORMAT:
            raise ValueError(f"unknown format {payload['format']!r}")
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(payload["public_key"]))
        public.verify(base64.b64decode(signature), canonical_bytes(payload))
    except InvalidSignature:
        raise ValidationFailed("The checkpoint's signature does not match its content: it was "
                               "altered or not made by an Attest server.",
                               code="bad_signature") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed(f"Not a readable Attest checkpoint ({exc}).",
                               code="invalid_checkpoint") from None
    if key_id(public) != payload.get("key_id"):
        raise ValidationFailed("The checkpoint's key id does not match its public key.",
                               code="bad_signature")
    return payload


def verify_against_checkpoint(data: bytes) -> CheckpointVerdict:
    """Does today's chain still extend the history this checkpoint signed?

    1. The file's signature must verify, with a key this server trusts.
    2. Today's chain must itself verify up to the checkpoint's head.
    3. Every mark (seq, hash) must equal today's hash at that seq; the first
       mark that differs, and the last that agrees, bound where the histories
       part (exactly, when the checkpoint recorded every event).
    """
    payload = parse_checkpoint(data)
    head = payload["head_seq"]
    if payload["key_id"] not in trusted_key_ids():
        return CheckpointVerdict(False, f"The checkpoint was signed with key {payload['key_id']}, "
                                 "which this server does not trust.", head)
    current = dict(AuditEvent.objects.filter(seq__in=[s for s, _ in payload["marks"]])
                   .values_list("seq", "hash"))
    last_ok = None
    for seq, expected in payload["marks"]:
        actual = current.get(seq)
        if actual != expected:
            where = (f"after event #{last_ok}" if last_ok else "at the start") + \
                    f", at or before event #{seq}"
            return CheckpointVerdict(
                False, f"The histories part {where}: event #{seq} "
                       f"{'is missing' if actual is None else 'has a different hash'} today.",
                head, last_ok, seq)
        last_ok = seq
    chain = verify_chain(upto_seq=head)
    if not chain.ok or chain.head_seq != head:
        broken = chain.first_broken
        return CheckpointVerdict(False, "Today's chain does not verify up to the checkpoint"
                                 + (f": broken at event #{broken.seq} ({broken.problem})."
                                    if broken else "."), head, None,
                                 broken.seq if broken else None)
    return CheckpointVerdict(True, f"The chain still extends the checkpoint of {payload['time']} "
                             f"(event #{head}, {payload['head_hash'][:16]}…).", head, head)
