"""Tamper evidence for the prediction log.

Every row carries ``row_hash`` over what it recorded (the input's sha256, not
the input, so purging raw inputs keeps the log verifiable), and ``chain_hash``
over the previous row of the same model and its own ``row_hash``: appends to a
model's log are serialised on its ``PredictionChainHead`` (as the audit trail's
are on its head), so from the first row on, an edit, a deletion or a reorder
breaks the chain, and removing the newest rows no longer matches the head.
Someone who can rewrite the database can recompute a chain too; what holds
against them is the audit chain under signed checkpoints kept off the host, so
contiguous id ranges are also anchored: their digest — sha256 over the row hashes in id order — goes into
the audit hash chain as an event, and so under its signed checkpoints too. A raw
input still stored is its canonical JSON text, the bytes its ``input_sha256``
was taken over, so verification checks it too.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, timedelta

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from audits.models import Action
from audits.services import audit_event_record
from core.gc import gc_paused
from core.hashing import canonical_bytes

from .models import CHAIN_GENESIS, Prediction, PredictionAnchor, PredictionChainHead

ROW_FIELDS = ("public_id", "version_id", "model_id", "input_sha256", "label", "score",
              "confidence", "probabilities", "routing", "reason", "ood", "shadow_version_id",
              "shadow_output", "requester_id", "runtime", "created_at", "latency_ms", "batch_id",
              "row_index")
# Hashed only when not empty: rows logged before a field existed have NULL there, and
# their hashes (taken without it) must still verify, and a row with nothing imputed hashes
# as it did before (any verifier of the older rows needs no change). Once a feature is
# named, removing or changing it breaks the hash.
# ``imputed`` (inference 0012): the features whose missing value was imputed.
ROW_FIELDS_WHEN_SET = ("imputed",)
# Rows younger than this are not anchored yet: a transaction that began earlier may
# still commit a lower id, which a finished anchor would then miss.
ANCHOR_SETTLE = timedelta(seconds=30)


def row_time_text(value) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_material(values: dict, *, created_text: str | None = None) -> dict:
    material = {name: values.get(name) for name in ROW_FIELDS}
    for name in ROW_FIELDS_WHEN_SET:
        if values.get(name):
            material[name] = values[name]
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
    return row_hash({name: getattr(prediction, name)
                     for name in (*ROW_FIELDS, *ROW_FIELDS_WHEN_SET)})


def chain_link(previous: str, row_hash_hex: str) -> str:
    """The chain hash of a row: sha256 over the previous row's chain hash and its row hash."""
    return hashlib.sha256((previous + row_hash_hex).encode("ascii")).hexdigest()


def chain_lock(model_id: int) -> PredictionChainHead:
    """Lock (creating it if need be) a model's chain head, inside the caller's transaction.

    Take it before the rows get their ids: then a model's ids follow its chain order.
    Held to the end of the transaction, so keep the work after it short.
    """
    head = PredictionChainHead.objects.select_for_update().filter(model_id=model_id).first()
    if head is None:
        try:
            with transaction.atomic():
                PredictionChainHead.objects.create(model_id=model_id)
        except IntegrityError:  # another writer created it first
            pass
        head = PredictionChainHead.objects.select_for_update().get(model_id=model_id)
    return head


def chain_links(head: PredictionChainHead, row_hashes: list[str]) -> list[str]:
    """The chain hashes of rows appended after ``head``, in order."""
    links, previous = [], head.head
    for value in row_hashes:
        previous = chain_link(previous, value)
        links.append(previous)
    return links


def chain_advance(head: PredictionChainHead, *, links: list[str], last_id: int) -> None:
    """Move the locked head past the rows just written (their ids end at ``last_id``)."""
    if not links:
        return
    PredictionChainHead.objects.filter(pk=head.pk).update(
        head=links[-1], last_id=last_id, count=F("count") + len(links),
        updated_at=timezone.now())


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


def anchor_window() -> timedelta:
    """How old a row may get before it must be anchored (ATTEST_ANCHOR_WINDOW_SECONDS)."""
    return timedelta(seconds=settings.ATTEST_ANCHOR_WINDOW_SECONDS)


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
    # Models whose chain was recomputed and found to end at its head.
    chains: int = 0
    # Rows older than the anchor window that are still not anchored in the audit chain
    # (the scheduler is not running, or anchoring fails): ``overdue`` is then true.
    unanchored_overdue: int = 0
    window_seconds: int = 0

    @property
    def overdue(self) -> bool:
        return self.unanchored_overdue > 0

    def as_dict(self) -> dict:
        return {**asdict(self), "overdue": self.overdue}


class _Problem(Exception):
    def __init__(self, pk: int, problem: str):
        self.found = {"id": pk, "problem": problem}


def verify_prediction_log(*, chunk_size: int = 20000) -> LogVerdict:
    """Recompute every row hash, every model's chain, every anchor digest and the sha256 of
    every raw input still stored; name the first problem; count rows left unanchored
    beyond the window. The walk makes short-lived dicts and no cycles: the cyclic garbage
    collector is paused meanwhile (core.gc), as for the audit chain's walk."""
    with gc_paused():
        return _verify(chunk_size)


def _verify(chunk_size: int) -> LogVerdict:
    hashed = (*ROW_FIELDS, *ROW_FIELDS_WHEN_SET)
    fields = ("id", "row_hash", "chain_hash", *hashed, "input_text")
    sha256_of = ROW_FIELDS.index("input_sha256") + 3
    model_of = ROW_FIELDS.index("model_id") + 3
    anchors = list(PredictionAnchor.objects.order_by("from_id").values_list(
        "from_id", "to_id", "count", "digest"))
    heads = {h.model_id: h for h in PredictionChainHead.objects.all()}
    from audits.models import AuditEvent

    recorded = {(e["from_id"], e["to_id"], e["digest"]) for e in AuditEvent.objects.filter(
        action=Action.PREDICTIONS_ANCHORED).values_list("details", flat=True)}
    window = anchor_window()
    counts = {"checked": 0, "anchored": 0, "inputs": 0, "legacy": 0}

    def verdict(ok: bool, problem: dict | None, *, chains: int = 0, overdue: int = 0):
        unanchored = counts["checked"] - counts["anchored"] if ok else 0
        return LogVerdict(ok, counts["checked"], counts["anchored"], unanchored, problem,
                          counts["inputs"], counts["legacy"], chains, overdue,
                          int(window.total_seconds()))

    chains: dict[int, list] = {}  # model id -> [last chain hash, rows, last id]
    anchor_index = 0
    digest = hashlib.sha256()
    in_anchor = 0
    last_id = 0
    # The column's own text (psycopg would parse a json column into a dict).
    query = Prediction.objects.annotate(input_text=Cast("input", TextField()))
    try:
        while True:
            rows = list(query.filter(id__gt=last_id).order_by("id")
                        .values_list(*fields)[:chunk_size])
            if not rows:
                break
            for row in rows:
                pk, stored, link = row[0], row[1], row[2]
                values = dict(zip(hashed, row[3:-1], strict=True))
                if row_hash(values) != stored:
                    raise _Problem(pk, "row does not match its hash")
                chain = chains.setdefault(row[model_of], [CHAIN_GENESIS, 0, 0])
                if chain_link(chain[0], stored) != link:
                    raise _Problem(pk, "row does not follow the one before it in its model's "
                                   "chain (a row was changed, removed or moved)")
                chain[0], chain[1], chain[2] = link, chain[1] + 1, pk
                if row[-1] is not None:
                    state = _input_state(row[-1], row[sha256_of])
                    if state == "changed":
                        raise _Problem(pk, "the stored input does not match its input_sha256")
                    counts["inputs"] += 1
                    counts["legacy"] += state == "legacy-unmatched"
                counts["checked"] += 1
                last_id = pk
                if anchor_index < len(anchors) and pk > anchors[anchor_index][1]:
                    raise _Problem(anchors[anchor_index][1], "rows missing from an anchored range")
                if anchor_index < len(anchors) and anchors[anchor_index][0] <= pk:
                    digest.update(stored.encode("ascii"))
                    in_anchor += 1
                    if pk == anchors[anchor_index][1]:
                        from_id, to_id, count, expected = anchors[anchor_index]
                        if (digest.hexdigest() != expected or in_anchor != count
                                or (from_id, to_id, expected) not in recorded):
                            raise _Problem(to_id, f"anchor {from_id}–{to_id} does not match "
                                           "the rows or the audit chain")
                        counts["anchored"] += in_anchor
                        anchor_index += 1
                        digest, in_anchor = hashlib.sha256(), 0
        if anchor_index < len(anchors):
            raise _Problem(anchors[anchor_index][1], "rows missing from an anchored range")
        for model_id in sorted(set(chains) | set(heads)):
            link, count, end = chains.get(model_id, [CHAIN_GENESIS, 0, 0])
            head = heads.get(model_id)
            if head is None or (head.head, head.count, head.last_id) != (link, count, end):
                raise _Problem(end, f"the prediction chain of model {model_id} does not end "
                               "at its recorded head (its newest rows were removed, or the "
                               "head was changed)")
    except _Problem as found:
        return verdict(False, found.found)
    orphan = _first_dangling_reference()
    if orphan is not None:
        return verdict(False, orphan)
    anchored_to = anchors[-1][1] if anchors else 0
    overdue = Prediction.objects.filter(id__gt=anchored_to,
                                        created_at__lt=timezone.now() - window).count()
    return verdict(True, None, chains=len(chains), overdue=overdue)


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
