"""Writing a chunk's scored rows to the prediction log, inside the chunk's transaction.

The model's chain head (``inference.log.chain_lock``) is locked before any id is drawn, so
a model's ids follow its chain; the rows' chain hashes are computed from it and the head
moved past them in the same transaction. On PostgreSQL the rows and their review items go
in by COPY; elsewhere by bulk_create.
"""

from __future__ import annotations

import orjson
from django.db import connection

from registry.models import ModelVersion, RegisteredModel

from ..log import chain_advance, chain_links, chain_lock
from ..models import Prediction, ReviewItem, ReviewStatus
from ..services import ScoredRow

# The log's columns in COPY order: those equal for every row of a chunk first, taken once
# per chunk from its first row.
_LOG_CONSTANT = ("model_id", "version_id", "shadow_version_id", "requester_id", "runtime",
                 "created_at", "latency_ms", "cpu_ms", "batch_id")
_LOG_COLUMNS = (*_LOG_CONSTANT, "id", "public_id", "input_sha256", "input", "label", "score",
                "confidence", "probabilities", "routing", "reason", "ood", "shadow_output",
                "row_index", "imputed", "row_hash", "chain_hash")


_REVIEW_COLUMNS = ("prediction_id", "model_id", "version_id", "status", "created_at",
                   "decision", "final_label", "reason_code", "comment")


def log_constant(rows: list[ScoredRow]) -> tuple:
    """The values of ``_LOG_CONSTANT``: one score_rows call computes them once for all its
    rows (tests check it), so the chunk's first row has them."""
    return tuple(rows[0].values[name] for name in _LOG_CONSTANT)


def log_tuple(constant: tuple, pk: int, r: ScoredRow, dumps=orjson.dumps) -> tuple:
    """One log row in ``_LOG_COLUMNS`` order, for ``copy.write_row`` (which quotes and
    escapes); json columns get the canonical text (a str)."""
    v = r.values
    shadow, imputed = v["shadow_output"], v["imputed"]
    return (*constant, pk, v["public_id"], v["input_sha256"], r.input_json.decode(),
            v["label"], v["score"], v["confidence"], dumps(v["probabilities"]).decode(),
            v["routing"], v["reason"], dumps(v["ood"]).decode(),
            None if shadow is None else dumps(shadow).decode(),
            v["row_index"], None if imputed is None else dumps(imputed).decode(),
            v["row_hash"], v["chain_hash"])


def log_write(rows: list[ScoredRow], *, model: RegisteredModel, version: ModelVersion) -> int:
    """Write log rows and their review items (inside the caller's transaction); returns the
    number routed to review.

    On PostgreSQL: ids drawn from the table's sequence in one query, then one COPY for
    the log rows and one for the review items, by psycopg's ``write_row`` (Django's
    bulk_create spends ~65% of a chunk rendering and quoting 20 columns per row;
    docs/performance.md). JSON goes in as the canonical text already computed for the
    hashes. Elsewhere: bulk_create.
    """
    if not rows:
        return 0
    # The model's chain head is locked before any id is drawn (a model's ids follow its
    # chain) and held to the chunk's commit.
    head = chain_lock(model.pk)
    links = chain_links(head, [r.values["row_hash"] for r in rows])
    for r, link in zip(rows, links, strict=True):
        r.values["chain_hash"] = link
    if connection.vendor != "postgresql":
        objects = [Prediction(input=r.input, **r.values) for r in rows]
        Prediction.objects.bulk_create(objects, batch_size=2000)
        chain_advance(head, links=links, last_id=objects[-1].pk)
        reviews = [ReviewItem(prediction=p, model=model, version=version,
                              created_at=p.created_at)
                   for p, r in zip(objects, rows, strict=True) if r.review]
        ReviewItem.objects.bulk_create(reviews, batch_size=2000)
        return len(reviews)
    table = Prediction._meta.db_table
    dumps = orjson.dumps
    constant = log_constant(rows)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                       "FROM generate_series(1, %s)", [table, len(rows)])
        ids = [r[0] for r in cursor.fetchall()]
        routed = []
        raw = cursor.cursor  # psycopg's cursor: COPY is not in the DB-API
        with raw.copy(f"COPY {table} ({', '.join(_LOG_COLUMNS)}) FROM STDIN") as copy:
            for pk, r in zip(ids, rows, strict=True):
                copy.write_row(log_tuple(constant, pk, r, dumps))
                if r.review:
                    routed.append((pk, r.values["created_at"]))
        chain_advance(head, links=links, last_id=ids[-1])
        if routed:
            review_table = ReviewItem._meta.db_table
            with raw.copy(f"COPY {review_table} ({', '.join(_REVIEW_COLUMNS)}) "
                          "FROM STDIN") as copy:
                for pk, created in routed:
                    copy.write_row((pk, model.pk, version.pk, ReviewStatus.OPEN, created,
                                    "", "", "", ""))
    return len(routed)


