"""The audit chain's hashing and its verification loop, importable without Django.

``audits.chain.verify_chain`` runs :func:`walk` in its own process and, on
PostgreSQL with a long chain, in helper processes too: ``python -m
audits.chainwalk`` reads one job (connection parameters, table, a range of seq
numbers and the hash the range must continue from) as JSON on stdin, walks that
range over its own connection and prints the outcome as JSON. Keeping this
module free of Django makes a helper start in ~0.1 s and lets it hash at the
same speed as the parent.

Each event's hash is ``sha256(prev_hash + "\\n" + canonical_json(material))``
where material is every recorded field except the hashes themselves.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from core.hashing import canonical_bytes

MATERIAL_FIELDS = (
    "seq", "time", "actor_id", "actor_username", "actor_name", "via", "action",
    "object_type", "object_id", "object_repr", "model_id", "model_name", "version_id",
    "version_label", "before", "after", "details", "reason", "request_id", "remote_addr",
)
COLUMNS = ("id", "prev_hash", "hash", *MATERIAL_FIELDS)
JSON_FIELDS = ("before", "after", "details")
BATCH = 2000  # rows handed from a reader to the walk at a time


def time_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(prev_hash: str, material: dict) -> str:
    data = dict(material)
    data["time"] = time_text(data["time"]) if isinstance(data["time"], datetime) else data["time"]
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical_bytes(data)).hexdigest()


class Walk(NamedTuple):
    """The outcome of walking a run of events.

    ``head_hash``/``head_seq`` are those of the last event that checked out (the
    starting point when none did); ``broken`` is (seq, id, time, problem) of the first
    event that did not, or None.
    """

    ok: bool
    checked: int
    head_hash: str
    head_seq: int
    broken: tuple[int, int, str, str] | None

    def as_json(self) -> dict:
        return self._asdict()

    @classmethod
    def from_json(cls, data: dict) -> Walk:
        broken = data["broken"]
        return cls(bool(data["ok"]), int(data["checked"]), str(data["head_hash"]),
                   int(data["head_seq"]), tuple(broken) if broken else None)


# -- the loop ---------------------------------------------------------------------------------
#
# Rows arrive as lists in COLUMNS order with the time already as text, integers as int or None
# and the JSON columns as text or None; the material dict is built in place and serialized the
# way canonical_bytes serializes it. A row the fast code cannot serialize exactly (JSON orjson
# refuses, values it cannot encode) is hashed by event_hash itself, so the verdict is always
# that of the reference code. Nothing here creates reference cycles, so callers switch the
# cyclic garbage collector off around a walk: its passes over millions of short-lived dicts
# cost about a fifth of the time.

# canonical_bytes adds OPT_NON_STR_KEYS, OPT_PASSTHROUGH_DATETIME and default=str; none of them
# changes the bytes for what reaches orjson here (str keys; str, int, None and values from
# orjson.loads), and orjson runs faster without them.
_SORT_KEYS = orjson.OPT_SORT_KEYS


def walk(batches: Iterable[list[list]], expected_prev: str, expected_seq: int) -> Walk:
    """Check each row's seq, prev_hash and hash in order; stop at the first failure."""
    checked = 0
    sha256, dumps, loads = hashlib.sha256, orjson.dumps, orjson.loads
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
                    digest = reference_hash(prev_hash, f)
                else:
                    digest = sha256((prev_hash + "\n").encode() + body).hexdigest()
                if digest == stored_hash:
                    checked += 1
                    expected_prev = stored_hash
                    expected_seq = seq + 1
                    continue
                problem = "content does not match its hash"
            return Walk(False, checked, expected_prev, expected_seq - 1,
                        (seq, int(f[0]), f[4], problem))
    return Walk(True, checked, expected_prev, expected_seq - 1, None)


def json_value(value: Any) -> Any:
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


def reference_hash(prev_hash: str, f: list) -> str:
    """event_hash of a row the fast path could not serialize."""
    material = dict(zip(MATERIAL_FIELDS, f[3:23], strict=True))
    for name in JSON_FIELDS:
        material[name] = json_value(material[name])
    try:
        return event_hash(prev_hash, material)
    except (TypeError, ValueError):  # not serializable at all: it cannot be what was hashed
        return ""


# -- PostgreSQL: COPY ... TO STDOUT -----------------------------------------------------------
#
# COPY streams rows in the text format. The time is formatted by the server exactly as
# time_text formats it; NULL integers and JSON arrive as empty strings (a value of those
# columns is never empty), so a row holds a backslash only where COPY escaped a character --
# rare, and handled by _copy_fields.

_PG_TIME = "to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
PG_SELECT = ", ".join(
    _PG_TIME if name == "time"
    else f"coalesce({name}::text, '')" if name in ("actor_id", "model_id", "version_id",
                                                    *JSON_FIELDS)
    else name
    for name in COLUMNS) + ", ''"  # a last empty column takes the line's newline


def pg_rows(raw_cursor, table: str, start: int, end: int | None,
            chunk_size: int) -> Iterator[list]:
    """Batches of parsed rows with seq in [start, end] (end None: to the last), in seq order.

    ``raw_cursor`` is a psycopg 3 cursor; each chunk of ``chunk_size`` rows is one COPY
    (keyset pagination), which the server produces while the caller hashes.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
        raise ValueError(f"not a table name: {table!r}")
    while True:
        upto = "" if end is None else f" AND seq <= {int(end)}"
        sql = (f"COPY (SELECT {PG_SELECT} FROM {table} "  # noqa: S608 - integers, checked name
               f"WHERE seq >= {int(start)}{upto} ORDER BY seq LIMIT {int(chunk_size)}) TO STDOUT")
        count = 0
        with raw_cursor.copy(sql) as copy:
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
                    if len(batch) == BATCH:
                        count += BATCH
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


# -- helper process ---------------------------------------------------------------------------

def walk_range(conninfo: dict, table: str, start: int, end: int, prev_hash: str,
               expected_seq: int, chunk_size: int) -> Walk:
    """Walk seq in [start, end] over a new connection (a helper process's whole job)."""
    import psycopg

    with psycopg.connect(**conninfo, autocommit=True) as conn, conn.cursor() as cursor:
        batches = pg_rows(cursor, table, start, end, chunk_size)
        try:
            return walk(batches, prev_hash, expected_seq)
        finally:
            batches.close()


def main() -> int:
    try:
        job = json.loads(sys.stdin.read())
        gc.disable()
        result = walk_range(job["conninfo"], job["table"], int(job["start"]), int(job["end"]),
                            str(job["prev_hash"]), int(job["expected_seq"]),
                            int(job["chunk_size"]))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which walks the range itself
        print(f"chainwalk: {exc.__class__.__name__}: {exc}"[:500], file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(result.as_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
