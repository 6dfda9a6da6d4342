"""Tamper evidence for the prediction log.

Every row carries ``row_hash`` over what it recorded (the input's sha256, not
the input, so purging raw inputs keeps the log verifiable). Contiguous id ranges
are anchored: their digest — sha256 over the row hashes in id order — goes into
the audit hash chain as an event, and so under its signed checkpoints too. A raw
input still stored is its canonical JSON text, the bytes its ``input_sha256``
was taken over, so verification checks it too.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, timedelta

import orjson
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.hashing import canonical_bytes

from .models import Prediction, PredictionAnchor

ROW_FIELDS = ("public_id", "version_id", "model_id", "input_sha256", "label", "score",
              "confidence", "probabilities", "routing", "reason", "ood", "shadow_version_id",
              "shadow_output", "requester_id", "runtime", "created_at", "latency_ms", "batch_id",
              "row_index")
# Rows younger than this are not anchored yet: a transaction that began earlier may
# still commit a lower id, which a finished anchor would then miss.
ANCHOR_SETTLE = timedelta(seconds=30)


def row_time_text(value) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_material(values: dict, *, created_text: str | None = None) -> dict:
    material = {name: values.get(name) for name in ROW_FIELDS}
    material["public_id"] = str(material["public_id"])
    created = material["created_at"]
    if created_text is not None:  # the caller formatted created_at already (many rows, one time)
        material["created_at"] = created_text
    elif created is not None and not isinstance(created, str):
        material["created_at"] = row_time_text(created)
    return material


def row_hash(values: dict, *, created_text: str | None = None) -> str:
    return hashlib.sha256(canonical_bytes(row_material(values, created_text=created_text))
                          ).hexdigest()


def prediction_row_hash(prediction: Prediction) -> str:
    return row_hash({name: getattr(prediction, name) for name in ROW_FIELDS})


def anchor_predictions(*, settle: timedelta = ANCHOR_SETTLE, max_rows: int = 1_000_000) -> PredictionAnchor | None:
    """Anchor the rows after the last anchor, up to those older than ``settle``."""
    with transaction.atomic():
        last = PredictionAnchor.objects.select_for_update().order_by("-to_id").first()
        start = last.to_id if last else 0
        cutoff = timezone.now() - settle
        rows = list(Prediction.objects.filter(id__gt=start, created_at__lte=cutoff)
                    .order_by("id").values_list("id", "row_hash")[:max_rows])
        if not rows:
            return None
        # Stop before the first id that is younger than the cutoff, so the range is contiguous.
        newer = Prediction.objects.filter(id__gt=start, created_at__gt=cutoff).order_by("id") \
            .values_list("id", flat=True).first()
        if newer is not None:
            rows = [r for r in rows if r[0] < newer]
            if not rows:
                return None
        digest = hashlib.sha256("".join(h for _id, h in rows).encode("ascii")).hexdigest()
        event = audit_event_record(
            action=Action.PREDICTIONS_ANCHORED, object_type="inference.prediction",
            object_repr=f"predictions {start + 1}–{rows[-1][0]}",
            details={"from_id": start + 1, "to_id": rows[-1][0], "count": len(rows),
                     "digest": digest})
        return PredictionAnchor.objects.create(from_id=start + 1, to_id=rows[-1][0],
                                               count=len(rows), digest=digest,
                                               event_seq=event.seq)


@dataclass(frozen=True)
class LogVerdict:
    ok: bool
    checked: int
    anchored: int
    unanchored: int
    first_problem: dict | None
    # Raw inputs still stored and found to be the bytes their input_sha256 was taken over
    # (or, for rows stored before inputs were kept as canonical text, whose value re-hashes
    # to it); legacy_inputs_unmatched: such older rows whose value does not, which is what
    # PostgreSQL's jsonb did to -0.0 and to whole floats of 1e16 and up, or a change.
    inputs_checked: int = 0
    legacy_inputs_unmatched: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def verify_prediction_log(*, chunk_size: int = 20000) -> LogVerdict:
    """Recompute every row hash, every anchor digest and the sha256 of every raw input
    still stored; name the first problem."""
    fields = ("id", "row_hash", *ROW_FIELDS, "input_text")
    sha256_of = ROW_FIELDS.index("input_sha256") + 2
    anchors = list(PredictionAnchor.objects.order_by("from_id").values_list(
        "from_id", "to_id", "count", "digest"))
    from audits.models import AuditEvent

    recorded = {(e["from_id"], e["to_id"], e["digest"]) for e in AuditEvent.objects.filter(
        action=Action.PREDICTIONS_ANCHORED).values_list("details", flat=True)}
    anchor_index = 0
    digest = hashlib.sha256()
    in_anchor = 0
    checked = anchored = inputs = legacy_unmatched = 0
    last_id = 0
    # The column's own text (psycopg would parse a json column into a dict).
    query = Prediction.objects.annotate(input_text=Cast("input", TextField()))
    while True:
        rows = list(query.filter(id__gt=last_id).order_by("id")
                    .values_list(*fields)[:chunk_size])
        if not rows:
            break
        for row in rows:
            pk, stored = row[0], row[1]
            values = dict(zip(ROW_FIELDS, row[2:-1], strict=True))
            if row_hash(values) != stored:
                return LogVerdict(False, checked, anchored, 0,
                                  {"id": pk, "problem": "row does not match its hash"},
                                  inputs, legacy_unmatched)
            if row[-1] is not None:
                state = _input_state(row[-1], row[sha256_of])
                if state == "changed":
                    return LogVerdict(False, checked, anchored, 0,
                                      {"id": pk, "problem": "the stored input does not match "
                                       "its input_sha256"}, inputs, legacy_unmatched)
                inputs += 1
                legacy_unmatched += state == "legacy-unmatched"
            checked += 1
            last_id = pk
            if anchor_index < len(anchors) and pk > anchors[anchor_index][1]:
                return LogVerdict(False, checked, anchored, 0,
                                  {"id": anchors[anchor_index][1],
                                   "problem": "rows missing from an anchored range"},
                                  inputs, legacy_unmatched)
            if anchor_index < len(anchors) and anchors[anchor_index][0] <= pk:
                digest.update(stored.encode("ascii"))
                in_anchor += 1
                if pk == anchors[anchor_index][1]:
                    from_id, to_id, count, expected = anchors[anchor_index]
                    if (digest.hexdigest() != expected or in_anchor != count
                            or (from_id, to_id, expected) not in recorded):
                        return LogVerdict(False, checked, anchored, 0,
                                          {"id": to_id, "problem": f"anchor {from_id}–{to_id} "
                                           "does not match the rows or the audit chain"},
                                          inputs, legacy_unmatched)
                    anchored += in_anchor
                    anchor_index += 1
                    digest, in_anchor = hashlib.sha256(), 0
    if anchor_index < len(anchors):
        return LogVerdict(False, checked, anchored, 0,
                          {"id": anchors[anchor_index][1],
                           "problem": "rows missing from an anchored range"},
                          inputs, legacy_unmatched)
    orphan = _first_dangling_reference()
    if orphan is not None:
        return LogVerdict(False, checked, anchored, 0, orphan, inputs, legacy_unmatched)
    return LogVerdict(True, checked, anchored, checked - anchored, None, inputs,
                      legacy_unmatched)


def _input_state(text: str, expected: str) -> str:
    """"exact": the stored text is the bytes ``expected`` was taken over; "changed": it is
    canonical JSON (written so since 0007) with another hash; for text stored before
    (jsonb's or SQLite's own spacing): "legacy" when its value re-hashes to ``expected``,
    else "legacy-unmatched"."""
    raw = text.encode("utf-8")
    if hashlib.sha256(raw).hexdigest() == expected:
        return "exact"
    try:
        canonical = canonical_bytes(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return "changed"
    if canonical == raw:
        return "changed"
    return "legacy" if hashlib.sha256(canonical).hexdigest() == expected else "legacy-unmatched"


def _first_dangling_reference() -> dict | None:
    """The first row naming a model, version, user or batch that does not exist.

    The log's references are not database constraints (see Prediction), so this is
    where a reference left without its row would show.
    """
    for field in ("model", "version", "shadow_version", "requester", "batch"):
        related = Prediction._meta.get_field(field).related_model
        found = (Prediction.objects.filter(**{f"{field}__isnull": False})
                 .exclude(**{f"{field}_id__in": related.objects.values("pk")})
                 .order_by("id").values_list("id", f"{field}_id").first())
        if found is not None:
            return {"id": found[0], "problem": f"{field} {found[1]} does not exist"}
    return None
