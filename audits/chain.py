"""The hash chain over audit events: what is hashed, and how it is checked.

Each event's hash is ``sha256(prev_hash + "\\n" + canonical_json(material))``
where material is every recorded field except the hashes themselves. The first
event's prev_hash is 64 zeros. ``seq`` numbers events from 1 without gaps, so a
deleted row shows as a gap even where hashes were recomputed around it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connections, router

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


# -- verification ------------------------------------------------------------------------------
#
# verify_chain reads every event once, so it is written for throughput (docs/performance.md,
# "Audit"). Rows arrive as lists in _COLUMNS order with the time already as text, integers as
# int or None and the JSON columns as text or None; the material dict is built in place and
# serialized the way canonical_bytes serializes it. A row the fast code cannot serialize
# exactly (JSON orjson refuses, values it cannot encode) is hashed by event_hash itself, so
# the verdict is always that of the reference code.

_COLUMNS = ("id", "prev_hash", "hash", *MATERIAL_FIELDS)
_JSON_FIELDS = ("before", "after", "details")
# canonical_bytes adds OPT_NON_STR_KEYS, OPT_PASSTHROUGH_DATETIME and default=str; none of
# them changes the bytes for what reaches orjson here (str keys; str, int, None and values
# from orjson.loads), and orjson runs faster without them.
_SORT_KEYS = orjson.OPT_SORT_KEYS
_BATCH = 2000  # rows handed from a reader to the verifier at a time


def verify_chain(*, upto_seq: int | None = None, chunk_size: int = 100_000) -> VerifyResult:
    """Recompute every hash in seq order and report the first broken link.

    1. Events are streamed in seq order in chunks of ``chunk_size`` (keyset
       pagination, so memory stays flat on millions of rows; on PostgreSQL each
       chunk is one ``COPY ... TO STDOUT``, which the server produces while
       this process hashes).
    2. For each: seq must be the previous seq + 1, prev_hash must equal the
       previous event's hash, and the stored hash must equal the recomputed one.
    3. The first failure stops the walk; its seq, id, time and the kind of
       problem are reported.
    """
    connection = connections[router.db_for_read(AuditEvent)]
    reader = _postgresql_rows if connection.vendor == "postgresql" else _generic_rows
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    sha256, dumps, loads = hashlib.sha256, orjson.dumps, orjson.loads
    batches = reader(connection, upto_seq, max(1, chunk_size))
    try:
        for batch in batches:
            for f in batch:
                seq, prev_hash, stored_hash = f[3], f[1], f[2]
                if seq != expected_seq:
                    problem = f"sequence gap: expected event #{expected_seq}, found #{seq}"
                elif prev_hash != expected_prev:
                    problem = "prev_hash does not match the previous event's hash"
                else:
                    before, after, details = f[17], f[18], f[19]
                    try:
                        body = dumps({
                            "action": f[9], "actor_id": f[5], "actor_name": f[7],
                            "actor_username": f[6],
                            "after": None if after is None else loads(after),
                            "before": None if before is None else loads(before),
                            "details": None if details is None else loads(details),
                            "model_id": f[13], "model_name": f[14], "object_id": f[11],
                            "object_repr": f[12], "object_type": f[10], "reason": f[20],
                            "remote_addr": f[22], "request_id": f[21], "seq": seq, "time": f[4],
                            "version_id": f[15], "version_label": f[16], "via": f[8],
                        }, option=_SORT_KEYS)
                    except (TypeError, ValueError):  # orjson's decode and encode errors
                        digest = _reference_hash(prev_hash, f)
                    else:
                        digest = sha256((prev_hash + "\n").encode() + body).hexdigest()
                    if digest == stored_hash:
                        checked += 1
                        expected_prev = stored_hash
                        expected_seq = seq + 1
                        continue
                    problem = "content does not match its hash"
                return VerifyResult(False, checked, expected_prev, expected_seq - 1,
                                    BrokenLink(seq, int(f[0]), f[4], problem))
    finally:
        batches.close()  # a reader stopped early finishes its query
    return VerifyResult(True, checked, expected_prev, expected_seq - 1, None)


def _json_value(value: Any) -> Any:
    """A JSON column's text as JSONField.from_db_value returns it (the raw text if invalid)."""
    if not isinstance(value, str | bytes | bytearray):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _reference_hash(prev_hash: str, f: list) -> str:
    """event_hash of a row the fast path could not serialize."""
    material = dict(zip(MATERIAL_FIELDS, f[3:23], strict=True))
    for name in _JSON_FIELDS:
        material[name] = _json_value(material[name])
    try:
        return event_hash(prev_hash, material)
    except (TypeError, ValueError):  # not serializable at all: it cannot be what was hashed
        return ""


# PostgreSQL: COPY streams rows in the text format. The time is formatted by the server
# exactly as _time_text formats it; NULL integers and JSON arrive as empty strings (a value of
# those columns is never empty), so a row holds a backslash only where COPY escaped a
# character -- rare, and handled by _copy_fields.
_PG_TIME = "to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
_PG_SELECT = ", ".join(
    _PG_TIME if name == "time"
    else f"coalesce({name}::text, '')" if name in ("actor_id", "model_id", "version_id",
                                                    *_JSON_FIELDS)
    else name
    for name in _COLUMNS) + ", ''"  # a last empty column takes the line's newline


def _postgresql_rows(connection, upto_seq: int | None, chunk_size: int) -> Iterator[list]:
    table = AuditEvent._meta.db_table
    start = 1
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: COPY is not in the DB-API
        while True:
            upto = "" if upto_seq is None else f" AND seq <= {int(upto_seq)}"
            sql = (f"COPY (SELECT {_PG_SELECT} FROM {table} "  # noqa: S608 - integers, names
                   f"WHERE seq >= {int(start)}{upto} ORDER BY seq LIMIT {int(chunk_size)}) TO STDOUT")
            count = 0
            with raw.copy(sql) as copy:
                try:
                    batch = []
                    for data in copy:
                        line = str(data, "utf-8")
                        f = line.split("\t") if "\\" not in line else _copy_fields(line)
                        f[3] = int(f[3])
                        a, m, v = f[5], f[13], f[15]
                        f[5] = int(a) if a else None
                        f[13] = int(m) if m else None
                        f[15] = int(v) if v else None
                        f[17] = f[17] or None
                        f[18] = f[18] or None
                        f[19] = f[19] or None
                        batch.append(f)
                        if len(batch) == _BATCH:
                            count += _BATCH
                            yield batch
                            batch = []
                    count += len(batch)
                    if batch:
                        yield batch
                finally:
                    for _data in copy:  # read what is left so the connection stays usable
                        pass
            if count < chunk_size:
                return
            start = f[3] + 1


_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_COPY_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _copy_unescape(field: str) -> str | None:
    if field == "\\N":
        return None
    return _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES.get(m.group(1), m.group(1)), field)


def _copy_fields(line: str) -> list:
    """Fields of a COPY text-format line that contains escapes (tabs in data are escaped, so
    every tab separates fields)."""
    return [_copy_unescape(field) if "\\" in field else field for field in line.split("\t")]


# Other backends (SQLite in embedded mode): plain keyset queries through the DB-API cursor.

def _generic_rows(connection, upto_seq: int | None, chunk_size: int) -> Iterator[list]:
    qn = connection.ops.quote_name
    opts = AuditEvent._meta
    seq = qn("seq")
    columns = ", ".join(qn(opts.get_field(name).column) for name in _COLUMNS)
    where = f"{seq} >= %s" + ("" if upto_seq is None else f" AND {seq} <= %s")
    sql = (f"SELECT {columns} FROM {qn(opts.db_table)} "  # noqa: S608 - quoted identifiers
           f"WHERE {where} ORDER BY {seq} LIMIT %s")
    time_text = _db_time_text(connection)
    start = 1
    with connection.cursor() as cursor:
        while True:
            params = [start] if upto_seq is None else [start, upto_seq]
            cursor.execute(sql, [*params, chunk_size])
            count = 0
            while rows := cursor.fetchmany(_BATCH):
                count += len(rows)
                batch = []
                for row in rows:
                    f = list(row)
                    f[4] = time_text(f[4])
                    batch.append(f)
                yield batch
            if count < chunk_size:
                return
            start = f[3] + 1


def _db_time_text(connection) -> Callable[[Any], Any]:
    """The time column's raw value -> _time_text of the datetime Django would load.

    Backends without time zones (SQLite) return naive UTC datetimes or text; Django's
    converter makes them aware in the connection's zone, and so does this.
    """
    convert = getattr(connection.ops, "convert_datetimefield_value", None)
    utc = connection.timezone_name == "UTC"

    def time_text(value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                return _time_text(value)
            if utc:  # make_aware(value, UTC), then _time_text, without the detour
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
        return _time_text(value) if isinstance(value, datetime) else value

    return time_text


def chain_head() -> tuple[int, str]:
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    return (last[0], last[1]) if last else (0, GENESIS_HASH)
