"""The hash chain over audit events: what is hashed, and how it is checked.

Each event's hash is ``sha256(prev_hash + "\\n" + canonical_json(material))``
where material is every recorded field except the hashes themselves. The first
event's prev_hash is 64 zeros. ``seq`` numbers events from 1 without gaps, so a
deleted row shows as a gap even where hashes were recomputed around it.

The hashing and the verification loop live in ``audits.chainwalk`` (no Django
there, so helper processes start fast); this module reads the events and, on
PostgreSQL, splits a long chain between processes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import connections, router

from core.gc import gc_paused

from .chainwalk import (
    BATCH,
    COLUMNS,
    MATERIAL_FIELDS,
    Walk,
    event_hash,
    pg_rows,
    time_text,
    walk,
)
from .models import GENESIS_HASH, AuditEvent

__all__ = ["MATERIAL_FIELDS", "BrokenLink", "VerifyResult", "chain_head", "event_hash",
           "verify_chain", "verify_chain_after"]

log = logging.getLogger(__name__)
_time_text = time_text  # the name tests and the bench import

# A helper process is worth starting for at least this many events (it costs ~0.1 s).
MIN_EVENTS_PER_PROCESS = 100_000
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Connection parameters a helper may receive: plain values libpq understands.
_CONNINFO_SKIP = {"cursor_factory", "context", "prepare_threshold"}


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


def _result(w: Walk, checked_before: int = 0) -> VerifyResult:
    broken = BrokenLink(int(w.broken[0]), int(w.broken[1]), str(w.broken[2]), str(w.broken[3])) \
        if w.broken else None
    return VerifyResult(w.ok, checked_before + w.checked, w.head_hash, w.head_seq, broken)


def verify_chain(*, upto_seq: int | None = None, chunk_size: int = 100_000,
                 processes: int | None = None) -> VerifyResult:
    """Recompute every hash in seq order and report the first broken link.

    1. Events are streamed in seq order in chunks of ``chunk_size`` (keyset
       pagination, so memory stays flat on millions of rows; on PostgreSQL each
       chunk is one ``COPY ... TO STDOUT``, which the server produces while
       this process hashes).
    2. For each: seq must be the previous seq + 1, prev_hash must equal the
       previous event's hash, and the stored hash must equal the recomputed one.
    3. The first failure stops the walk; its seq, id, time and the kind of
       problem are reported.

    On PostgreSQL a chain of at least 2 x MIN_EVENTS_PER_PROCESS events is cut
    into consecutive seq ranges walked at once by this process and helper
    processes (``processes`` in all, default ``ATTEST_AUDIT_VERIFY_PROCESSES``).
    A range after the first starts from the stored hash of the event before it,
    and the ranges are then read in order, so the verdict, the count and the
    first broken link are exactly those of one walk from the start.
    """
    connection = connections[router.db_for_read(AuditEvent)]
    with gc_paused():  # see audits.chainwalk: the walk creates no cycles
        if connection.vendor == "postgresql":
            wanted = settings.ATTEST_AUDIT_VERIFY_PROCESSES if processes is None else processes
            return _verify_postgresql(connection, upto_seq, max(1, chunk_size),
                                      max(1, int(wanted)))
        batches = _generic_rows(connection, upto_seq, max(1, chunk_size))
        try:
            return _result(walk(batches, GENESIS_HASH, 1))
        finally:
            batches.close()


def verify_chain_after(verified: VerifyResult, *, chunk_size: int = 100_000) -> VerifyResult:
    """Extend a verify to the events appended since: the short step a checkpoint takes
    under the chain lock, after the long walk ran outside it.

    1. The event at ``verified.head_seq`` must still carry ``verified.head_hash`` (else
       the history was changed during the walk, and that event is named).
    2. The events after it are walked from that hash, as one walk would have.
    The result counts and names everything from event 1, as ``verify_chain`` would.
    """
    if not verified.ok:
        return verified
    seq, head_hash = verified.head_seq, verified.head_hash
    if seq:
        row = AuditEvent.objects.filter(seq=seq).values_list("id", "time", "hash").first()
        if row is None or row[2] != head_hash:
            problem = "changed while the chain was being verified" if row else \
                "deleted while the chain was being verified"
            broken = BrokenLink(seq, row[0] if row else 0,
                                time_text(row[1]) if row else "", problem)
            return VerifyResult(False, verified.checked - 1, head_hash, seq - 1, broken)
    connection = connections[router.db_for_read(AuditEvent)]
    with gc_paused():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                tail = _walk_here(cursor, AuditEvent._meta.db_table, seq + 1, None, head_hash,
                                  seq + 1, max(1, chunk_size))
        else:
            batches = _generic_rows(connection, None, max(1, chunk_size), start=seq + 1)
            try:
                tail = walk(batches, head_hash, seq + 1)
            finally:
                batches.close()
    return _result(tail, verified.checked)


# PostgreSQL: COPY streams, and consecutive ranges walked at once by several processes.

def _verify_postgresql(connection, upto_seq: int | None, chunk_size: int,
                       processes: int) -> VerifyResult:
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        if upto_seq is None:
            cursor.execute(f"SELECT max(seq) FROM {table}")  # noqa: S608 - model's table name
            head = int(cursor.fetchone()[0] or 0)
        else:
            head = max(0, int(upto_seq))
        parts = min(processes, head // MIN_EVENTS_PER_PROCESS)
        if parts < 2:
            return _result(_walk_here(cursor, table, 1, upto_seq, GENESIS_HASH, 1, chunk_size))
        bounds = [1 + i * head // parts for i in range(parts)] + [head + 1]
        starts = [(GENESIS_HASH, 1)] + [_start_of(cursor, table, b) for b in bounds[1:-1]]
        helpers: list[_Helper | None] = [None] + [
            _Helper.start(connection, table, bounds[i], bounds[i + 1] - 1, *starts[i], chunk_size)
            for i in range(1, parts)]
        try:
            checked = 0
            done = Walk(True, 0, GENESIS_HASH, 0, None)
            for i in range(parts):
                start_from = (done.head_hash, done.head_seq + 1)
                helper = helpers[i]
                w = None
                if helper is not None and starts[i] == start_from:
                    w = helper.result()
                if w is None:  # the first range, a helper that failed, or rows changed meanwhile
                    w = _walk_here(cursor, table, bounds[i], bounds[i + 1] - 1, *start_from,
                                   chunk_size)
                if not w.ok:
                    return _result(w, checked)
                checked += w.checked
                done = w
        finally:
            for helper in helpers:
                if helper is not None:
                    helper.stop()
        if upto_seq is None:  # events appended while the ranges were walked
            tail = _walk_here(cursor, table, head + 1, None, done.head_hash, done.head_seq + 1,
                              chunk_size)
            return _result(tail, checked)
        return _result(done._replace(checked=0), checked)


def _walk_here(cursor, table: str, start: int, end: int | None, prev_hash: str,
               expected_seq: int, chunk_size: int) -> Walk:
    batches = pg_rows(cursor.cursor, table, start, end, chunk_size)  # psycopg's own cursor
    try:
        return walk(batches, prev_hash, expected_seq)
    finally:
        batches.close()  # a walk stopped early finishes its COPY


def _start_of(cursor, table: str, seq: int) -> tuple[str, int]:
    """Where a range beginning at ``seq`` continues from: the stored hash of the event
    before it and the seq that must follow."""
    cursor.execute(f"SELECT seq, hash FROM {table} WHERE seq < %s "  # noqa: S608 - table name
                   "ORDER BY seq DESC LIMIT 1", [seq])
    row = cursor.fetchone()
    return (row[1], int(row[0]) + 1) if row else (GENESIS_HASH, 1)


class _Helper:
    """A ``python -m audits.chainwalk`` process walking one range over its own connection."""

    def __init__(self, proc: subprocess.Popen, errors: IO[bytes], label: str) -> None:
        self.proc, self.errors, self.label = proc, errors, label

    @classmethod
    def start(cls, connection, table: str, start: int, end: int, prev_hash: str,
              expected_seq: int, chunk_size: int) -> _Helper | None:
        conninfo = {key: value for key, value in connection.get_connection_params().items()
                    if key not in _CONNINFO_SKIP and isinstance(value, str | int | float | bool)}
        job = {"conninfo": conninfo, "table": table, "start": start, "end": end,
               "prev_hash": prev_hash, "expected_seq": expected_seq, "chunk_size": chunk_size}
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT),
                                                        env.get("PYTHONPATH", "")) if p)
        label = f"events #{start}-#{end}"
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        try:
            proc = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed module
                [sys.executable, "-m", "audits.chainwalk"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=errors, cwd=_PROJECT_ROOT, env=env)
            assert proc.stdin is not None
            with proc.stdin:  # the password goes by pipe, not on the command line
                proc.stdin.write(json.dumps(job).encode())
        except OSError as exc:
            errors.close()
            log.warning("audit verify: no helper process for %s (%s); walking it here", label,
                        exc)
            return None
        return cls(proc, errors, label)

    def result(self) -> Walk | None:
        """The helper's walk, or None (logged) when it failed: the caller walks the range."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait()
        try:
            if self.proc.returncode != 0:
                self.errors.seek(0)
                raise ValueError(self.errors.read()[-300:].decode("utf-8", "replace").strip()
                                 or f"exit status {self.proc.returncode}")
            return Walk.from_json(json.loads(out))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("audit verify: helper for %s failed (%s); walking it here", self.label,
                        exc)
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.errors.close()


# Other backends (SQLite in embedded mode): plain keyset queries through the DB-API cursor.

def _generic_rows(connection, upto_seq: int | None, chunk_size: int,
                  start: int = 1) -> Iterator[list]:
    qn = connection.ops.quote_name
    opts = AuditEvent._meta
    seq = qn("seq")
    columns = ", ".join(qn(opts.get_field(name).column) for name in COLUMNS)
    where = f"{seq} >= %s" + ("" if upto_seq is None else f" AND {seq} <= %s")
    sql = (f"SELECT {columns} FROM {qn(opts.db_table)} "  # noqa: S608 - quoted identifiers
           f"WHERE {where} ORDER BY {seq} LIMIT %s")
    to_text = _db_time_text(connection)
    with connection.cursor() as cursor:
        while True:
            params = [start] if upto_seq is None else [start, upto_seq]
            cursor.execute(sql, [*params, chunk_size])
            count = 0
            while rows := cursor.fetchmany(BATCH):
                count += len(rows)
                batch = []
                for row in rows:
                    f = list(row)
                    f[4] = to_text(f[4])
                    batch.append(f)
                yield batch
            if count < chunk_size:
                return
            start = f[3] + 1


def _db_time_text(connection) -> Callable[[Any], Any]:
    """The time column's raw value -> time_text of the datetime Django would load.

    Backends without time zones (SQLite) return naive UTC datetimes or text; Django's
    converter makes them aware in the connection's zone, and so does this.
    """
    convert = getattr(connection.ops, "convert_datetimefield_value", None)
    utc = connection.timezone_name == "UTC"

    def to_text(value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                return time_text(value)
            if utc:  # make_aware(value, UTC), then time_text, without the detour
                return value.isoformat(timespec="microseconds") + "+00:00"
        elif isinstance(value, str) and utc:
            try:
                parsed = datetime.fromisoformat(value)  # what parse_datetime tries first
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                return parsed.isoformat(timespec="microseconds") + "+00:00"
        if convert is not None:
            value = convert(value, None, connection)
        return time_text(value) if isinstance(value, datetime) else value

    return to_text


def chain_head() -> tuple[int, str]:
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    return (last[0], last[1]) if last else (0, GENESIS_HASH)
