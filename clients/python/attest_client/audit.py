"""Verifying an audit-trail export offline, against a signed checkpoint if one is kept.

Nothing here asks the server: an auditor can check, on their own machine and years
later, that an exported trail is intact and that it still extends a checkpoint they
kept. The rules are the server's own (``audits/chainwalk.py``, ``audits/checkpoints.py``),
implemented again so the client never imports the server:

- each event's hash is ``sha256(prev_hash + "\\n" + canonical JSON of its material)``,
  the material being every recorded field but the two hashes, with the time in UTC
  at microsecond precision; canonical JSON is orjson's with sorted keys, which is
  exactly what the server hashes;
- the first event's prev_hash is 64 zeros; seq numbers events from 1 without gaps;
- a checkpoint (``attest-audit-checkpoint/1``) is ``{"payload", "signature"}``, an
  Ed25519 signature over the payload's canonical JSON by the key the payload carries
  (its id: the first 16 hex digits of the sha256 of the raw public key), recording the
  head and the hashes of marked events.

An export may be filtered (one model's events, a date range). Then each event is still
checked against its own recorded prev_hash, links are checked wherever consecutive
events are both present, and only the checkpoint's marks that the export holds can be
compared; the verdict says how much it could check.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from .errors import UsageError

GENESIS_HASH = "0" * 64
CHECKPOINT_FORMAT = "attest-audit-checkpoint/1"
MATERIAL_FIELDS = (
    "seq", "time", "actor_id", "actor_username", "actor_name", "via", "action",
    "object_type", "object_id", "object_repr", "model_id", "model_name", "version_id",
    "version_label", "before", "after", "details", "reason", "request_id", "remote_addr",
)
# Export keys for material fields named differently (the export's None is the stored "").
_EXPORT_NAMES = {"actor_username": "actor", "model_name": "model", "version_label": "version"}
_BLANK_AS_NONE = {"actor_username", "model_name", "version_label", "remote_addr"}
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def canonical_bytes(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTIONS, default=str)


def time_text(value: str) -> str:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def material(event: dict) -> dict:
    """The hashed fields of one exported event, as the server stored them."""
    out = {}
    for name in MATERIAL_FIELDS:
        key = _EXPORT_NAMES.get(name, name)
        if key not in event:
            raise UsageError(f"the export's events lack '{key}': it was made by an Attest "
                             "server too old to be verified offline; export it again")
        value = event[key]
        if name in _BLANK_AS_NONE and value is None:
            value = ""
        out[name] = value
    out["time"] = time_text(out["time"])
    return out


def event_hash(prev_hash: str, event: dict) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n"
                          + canonical_bytes(material(event))).hexdigest()


@dataclass
class ExportVerdict:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    complete: bool  # seq 1..head, no event missing
    missing: int  # events between the first and the last not in the export (filtered)
    first_broken: dict | None = None
    checkpoint: dict | None = None
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def load_export(path: Path) -> dict:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"export not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a JSON audit export ({exc.__class__.__name__}); a CSV "
                         "export cannot be verified offline: export with --format json") from None
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise UsageError(f"{path} is not an Attest audit export (no 'events' list)")
    return document


def verify_events(events: list[dict]) -> ExportVerdict:
    """Recompute every hash and check every link the export holds (see the module doc)."""
    ordered = sorted(events, key=lambda e: int(e["seq"]))
    if not ordered:
        return ExportVerdict(False, 0, 0, GENESIS_HASH, False, 0,
                             messages=["the export holds no events"])
    previous: dict | None = None
    checked = missing = 0
    for event in ordered:
        seq = int(event["seq"])
        problem = None
        if previous is not None and seq == int(previous["seq"]):
            problem = f"event #{seq} appears twice"
        elif previous is None and seq == 1 and event["prev_hash"] != GENESIS_HASH:
            problem = "the first event does not start from the genesis hash"
        elif previous is not None and seq == int(previous["seq"]) + 1 and \
                event["prev_hash"] != previous["hash"]:
            problem = "prev_hash does not match the previous event's hash"
        elif event_hash(event["prev_hash"], event) != event["hash"]:
            problem = "content does not match its hash"
        if problem:
            return ExportVerdict(False, checked, int(previous["seq"]) if previous else 0,
                                 previous["hash"] if previous else GENESIS_HASH,
                                 False, missing,
                                 {"seq": seq, "id": event.get("id"), "time": event.get("time"),
                                  "problem": problem})
        if previous is not None:
            missing += seq - int(previous["seq"]) - 1
        checked += 1
        previous = event
    complete = int(ordered[0]["seq"]) == 1 and missing == 0
    return ExportVerdict(True, checked, int(previous["seq"]), previous["hash"], complete, missing)


def parse_checkpoint(data: bytes, *, public_key_pem: bytes | None = None) -> dict:
    """The checkpoint's payload once its signature verifies (and its key is the pinned one)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        document = json.loads(data)
        payload, signature = document["payload"], document["signature"]
        if payload["format"] != CHECKPOINT_FORMAT:
            raise ValueError(f"unknown format {payload['format']!r}")
        raw = base64.b64decode(payload["public_key"])
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(signature),
                                                       canonical_bytes(payload))
    except InvalidSignature:
        raise CheckpointRejected("the checkpoint's signature does not match its content: it "
                                 "was altered or not made by an Attest server") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"not a readable Attest checkpoint ({exc})") from None
    if hashlib.sha256(raw).hexdigest()[:16] != payload.get("key_id"):
        raise CheckpointRejected("the checkpoint's key id does not match its public key")
    if public_key_pem is not None:
        try:
            pinned = serialization.load_pem_public_key(public_key_pem)
        except ValueError as exc:
            raise UsageError(f"not a PEM public key ({exc})") from None
        pinned_raw = pinned.public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
        if pinned_raw != raw:
            raise CheckpointRejected(
                f"the checkpoint was signed with key {payload['key_id']}, not with the public "
                f"key given (key {hashlib.sha256(pinned_raw).hexdigest()[:16]})")
    return payload


class CheckpointRejected(Exception):
    """The checkpoint's signature or key does not hold: a verdict, not a usage error."""


def verify_export(document: dict, checkpoint: bytes | None = None, *,
                  public_key_pem: bytes | None = None) -> ExportVerdict:
    """The export's own chain, then (with a checkpoint) every mark the export holds.

    With a checkpoint:
    1. Its signature must verify (and its key be the pinned one, when given).
    2. Every mark (seq, hash) the export holds must equal the export's hash at that
       seq; the first that differs, and the last that agrees, bound where the two
       histories part.
    3. The export must reach the checkpoint's head, and at least one mark must have
       been compared; otherwise the verdict is "cannot tell", not "fine".
    """
    events = document["events"]
    verdict = verify_events(events)
    head = document.get("chain_head") or {}
    if verdict.ok and head.get("seq") == verdict.head_seq and head.get("hash") != \
            verdict.head_hash:
        verdict.ok = False
        verdict.messages.append("the export's stated chain head does not match its last event")
    if checkpoint is None:
        return verdict
    try:
        payload = parse_checkpoint(checkpoint, public_key_pem=public_key_pem)
    except CheckpointRejected as exc:
        verdict.ok = False
        verdict.checkpoint = {"ok": False, "message": str(exc)}
        return verdict
    hashes = {int(e["seq"]): e["hash"] for e in events}
    compared, last_ok, differing = 0, None, None
    for seq, expected in payload["marks"]:
        if seq not in hashes:
            continue
        compared += 1
        if hashes[seq] != expected:
            differing = seq
            break
        last_ok = seq
    cp_head = int(payload["head_seq"])
    result = {"ok": False, "checkpoint_seq": cp_head, "checkpoint_time": payload["time"],
              "key_id": payload["key_id"], "key_pinned": public_key_pem is not None,
              "marks": len(payload["marks"]), "marks_compared": compared,
              "last_matching_seq": last_ok, "first_differing_seq": differing}
    if differing is not None:
        where = (f"after event #{last_ok}" if last_ok else "at the start") + \
            f", at or before event #{differing}"
        result["message"] = (f"the histories part {where}: event #{differing} has a different "
                             "hash in this export than in the checkpoint")
    elif verdict.head_seq < cp_head:
        result["message"] = (f"the export ends at event #{verdict.head_seq}, before the "
                             f"checkpoint's head #{cp_head}: export the trail again")
    elif compared == 0:
        result["message"] = ("the export holds none of the checkpoint's marked events (it is "
                             "filtered): nothing could be compared")
    else:
        result["ok"] = True
        scope = "" if verdict.complete else \
            f" ({compared} of {len(payload['marks'])} marks; the export is filtered)"
        result["message"] = (f"the export extends the checkpoint of {payload['time']} (event "
                             f"#{cp_head}, {payload['head_hash'][:16]}…){scope}")
    verdict.checkpoint = result
    verdict.ok = verdict.ok and result["ok"]
    return verdict
