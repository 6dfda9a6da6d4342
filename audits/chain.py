"""The hash chain over audit events: what is hashed, and how it is checked.

Each event's hash is ``sha256(prev_hash + "\\n" + canonical_json(material))``
where material is every recorded field except the hashes themselves. The first
event's prev_hash is 64 zeros. ``seq`` numbers events from 1 without gaps, so a
deleted row shows as a gap even where hashes were recomputed around it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from core.hashing import canonical_bytes

from .models import GENESIS_HASH, AuditEvent

MATERIAL_FIELDS = (
    "seq", "time", "actor_id", "actor_username", "actor_name", "via", "action",
    "object_type", "object_id", "object_repr", "model_id", "model_name", "version_id",
    "version_label", "before", "after", "details", "reason", "request_id", "remote_addr",
)


def _time_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(prev_hash: str, material: dict) -> str:
    data = dict(material)
    data["time"] = _time_text(data["time"]) if isinstance(data["time"], datetime) else data["time"]
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical_bytes(data)).hexdigest()


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    id: int
    time: str
    problem: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    head_hash: str
    head_seq: int
    first_broken: BrokenLink | None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["first_broken"] = asdict(self.first_broken) if self.first_broken else None
        return data


def verify_chain(*, upto_seq: int | None = None, chunk_size: int = 20000) -> VerifyResult:
    """Recompute every hash in seq order and report the first broken link.

    1. Events are streamed in seq order in chunks (keyset pagination, so memory
       stays flat on millions of rows).
    2. For each: seq must be the previous seq + 1, prev_hash must equal the
       previous event's hash, and the stored hash must equal the recomputed one.
    3. The first failure stops the walk; its seq, id, time and the kind of
       problem are reported.
    """
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    last_seq = 0
    fields = ("id", "prev_hash", "hash", *MATERIAL_FIELDS)
    while True:
        qs = AuditEvent.objects.filter(seq__gte=expected_seq).order_by("seq")
        if upto_seq is not None:
            qs = qs.filter(seq__lte=upto_seq)
        rows = list(qs.values_list(*fields)[:chunk_size])
        if not rows:
            break
        for row in rows:
            event_id, prev_hash, stored_hash = row[0], row[1], row[2]
            material = dict(zip(MATERIAL_FIELDS, row[3:], strict=True))
            seq = material["seq"]
            problem = None
            if seq != expected_seq:
                problem = f"sequence gap: expected event #{expected_seq}, found #{seq}"
            elif prev_hash != expected_prev:
                problem = "prev_hash does not match the previous event's hash"
            elif event_hash(prev_hash, material) != stored_hash:
                problem = "content does not match its hash"
            if problem:
                return VerifyResult(False, checked, expected_prev, last_seq,
                                    BrokenLink(seq, event_id, _time_text(material["time"]), problem))
            checked += 1
            expected_prev = stored_hash
            expected_seq = seq + 1
            last_seq = seq
        if len(rows) < chunk_size:
            break
    return VerifyResult(True, checked, expected_prev, last_seq, None)


def chain_head() -> tuple[int, str]:
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    return (last[0], last[1]) if last else (0, GENESIS_HASH)
