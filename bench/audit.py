"""Audit trail throughput: hash-chained appends, chain verification, the event list.

Every Attest number is printed next to a baseline measured in the same run, on
the same machine and database:

1. append -- ``audit_event_record`` (one transaction per event: advisory lock,
   read the chain head, hash, insert) from ``--writers`` forked processes at
   once, each with its own connection, against *plain inserts*: the same
   processes saving rows of the same content through the ORM, one transaction
   each, into a copy of the table (``LIKE audits_auditevent INCLUDING ALL``
   plus the actor foreign key) with distinct seq and hash values handed out in
   advance -- no lock, no head read, no hashing. Rounds alternate baseline and
   chain; the median round is reported. The same with one writer.
2. verify -- ``verify_chain`` (as configured: ATTEST_AUDIT_VERIFY_PROCESSES processes on
   PostgreSQL, each walking a range of seq numbers) over the ``--events`` loaded events, against
   reading the same rows without hashing: ``COPY (SELECT * ... ORDER BY seq)
   TO STDOUT`` streamed to this process unparsed (the I/O floor), and a
   server-side cursor over the same SELECT with Django's connection and type
   loaders (plain Django reading); medians of ``--rounds`` interleaved runs
   after one warm-up round. Then, as a CPU floor, ``event_hash`` and sha256
   alone over the exact bytes the chain hashes (``--sample`` events held in
   memory).
3. list -- ``GET /api/v1/audit/events/`` through the real view
   (``AuditEventListView``, DRF ``APIRequestFactory`` + ``force_authenticate``
   as a global auditor, response rendered; server time, no network, no
   middleware), for several filters, on the first page and on the 1,000th page
   (cursor computed directly: the seq of the 49,950th matching event), p50 and
   p95 of ``--samples`` requests, against the bare SQL keyset query for the same
   page (``SELECT * ... WHERE filter AND seq < cursor ORDER BY seq DESC LIMIT 51``)
   interleaved request by request.
4. verify on SQLite (embedded mode), ``--sqlite-events`` events in a temp
   database, in a child process; fetch-only baseline as in 2.

The PostgreSQL server comes from ``DATABASE_URL`` (in the environment or in the
file given with ``--env``, e.g. the ``DIR/env`` written by ``scripts/services.sh
start DIR``). The script creates its own database there (``--database``,
default ``attest_bench_audit``; an existing one of that name is dropped first
unless ``--reuse``), migrates it, bulk-loads the events with COPY (``--events``,
default 1,000,000, over ``--models`` models and ``--actors`` users with skewed
popularity, 20 actions, realistic JSON, a valid chain computed with the same
``event_hash`` that ``audit_event_record`` uses; then ``VACUUM ANALYZE``, as
autovacuum would soon do) and drops it at the end unless ``--keep``. Nothing
else is written outside a temp directory.

    .venv/bin/python bench/audit.py --env DIR/env [--events 1000000] [--keep|--reuse]

Exit status: 0 done, 1 the benchmark failed, 2 bad arguments (one-line reason).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse, urlunparse

# bench/ is sys.path[0] when a script runs as `python bench/NAME.py`
from machine_info import (  # noqa: E402,I001
    BadArguments,
    BenchError,
    Parser,
    django_setup,
    header_lines,
    load_average,
    table,
)

PROG = "bench/audit.py"
TABLE = "audits_auditevent"
PLAIN_TABLE = "bench_audit_plain"
PAGE = 50  # the API's default page size
PAGE_NO = 1000  # the "deep" page
VERIFY_TARGET = 200_000  # events/s
LIST_TARGET_MS = 100.0  # p95
START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=730)  # the loaded events cover two years



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n", 1)[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events to load into PostgreSQL (default 1,000,000)")
    parser.add_argument("--env", type=Path, metavar="FILE",
                        help="read DATABASE_URL from this file of `export NAME=value` lines "
                             "(e.g. DIR/env from scripts/services.sh start DIR)")
    parser.add_argument("--database", default="attest_bench_audit",
                        help="name of the database to create (default attest_bench_audit)")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the database of an earlier --keep run with the same --events "
                             "and --seed instead of dropping and reloading it")
    parser.add_argument("--models", type=int, default=50, help="registered models (default 50)")
    parser.add_argument("--actors", type=int, default=200, help="users acting (default 200)")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers (default 8)")
    parser.add_argument("--appends", type=int, default=250,
                        help="events per writer per append round (default 250)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="append rounds per writer count, and verify runs (default 3)")
    parser.add_argument("--samples", type=int, default=100,
                        help="requests per list case (default 100, after 5 warm-up requests)")
    parser.add_argument("--sample", type=int, default=100_000,
                        help="events held in memory for the sha256-only floor (default 100,000)")
    parser.add_argument("--sqlite-events", type=int, default=100_000,
                        help="events for the SQLite verify row (default 100,000; 0 skips it)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the synthetic trail")
    parser.add_argument("--sqlite-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sqlite_child is not None:
        return args
    if not 1_000 <= args.events <= 100_000_000:
        parser.error(f"--events must be between 1,000 and 100,000,000, not {args.events}")
    if not 1 <= args.models <= 10_000 or not 1 <= args.actors <= 100_000:
        parser.error("--models must be 1-10,000 and --actors 1-100,000")
    if not 1 <= args.writers <= 64:
        parser.error(f"--writers must be between 1 and 64, not {args.writers}")
    if not 1 <= args.appends <= 100_000 or not 1 <= args.rounds <= 100:
        parser.error("--appends must be 1-100,000 and --rounds 1-100")
    if not 5 <= args.samples <= 100_000:
        parser.error(f"--samples must be between 5 and 100,000, not {args.samples}")
    if not 1_000 <= args.sample <= args.events:
        parser.error("--sample must be between 1,000 and --events")
    if not (args.sqlite_events == 0 or 1_000 <= args.sqlite_events <= 10_000_000):
        parser.error("--sqlite-events must be 0 or between 1,000 and 10,000,000")
    if not args.database.replace("_", "").isalnum() or not args.database.islower():
        parser.error(f"--database must be lower-case letters, digits and _, not {args.database!r}")
    if args.env is not None and not args.env.is_file():
        parser.error(f"--env {args.env}: no such file")
    return args


# -- environment -----------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """The assignments of an env file (``export NAME=value`` lines)."""
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").strip().partition("=")
        if sep:
            words = shlex.split(value)
            found[name] = words[0] if words else ""
    return found


def bench_database_url(url: str, name: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise BadArguments("DATABASE_URL must be a postgres:// URL (start the services with "
                           "scripts/services.sh start DIR and pass --env DIR/env)")
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1") and not parsed.hostname.startswith(
            "/"):
        print(f"note: the database server is {parsed.hostname}, not loopback", file=sys.stderr)
    return urlunparse(parsed._replace(path=f"/{name}"))


def admin_connect(url: str):
    """A psycopg connection (autocommit) to the database named in DATABASE_URL."""
    import psycopg

    parsed = urlparse(url)
    return psycopg.connect(host=parsed.hostname, port=parsed.port or 5432,
                           user=unquote(parsed.username or ""),
                           password=unquote(parsed.password or ""),
                           dbname=unquote(parsed.path.lstrip("/")), autocommit=True)


def database_exists(admin, name: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def drop_database(admin, name: str) -> None:
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(data_dir: Path, database_url: str | None) -> None:
    """Settings read from the environment: this database, nothing else outside data_dir."""
    os.environ["ATTEST_DATA_DIR"] = str(data_dir)
    os.environ["ATTEST_LOG_LEVEL"] = "WARNING"
    os.environ["ATTEST_DEBUG"] = "0"
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "ATTEST_ARTIFACT_DIR", "ATTEST_S3_BUCKET",
                 "ATTEST_STATIC_ROOT", "ATTEST_UPLOAD_TEMP_DIR"):
        os.environ.pop(name, None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django_setup()


# -- the synthetic trail -------------------------------------------------------------------------

# 20 of the actions, busiest first (weights fall off as 1/rank^0.8).
ACTIONS = [
    "registry.artifact_downloaded", "auth.login", "registry.model_updated",
    "auth.token_first_use", "registry.version_updated", "auth.logout",
    "registry.version_registered", "registry.artifact_uploaded", "auth.permission_denied",
    "registry.version_submitted", "auth.login_failed", "access.granted",
    "registry.dataset_registered", "audit.verified", "auth.token_created",
    "registry.model_created", "access.revoked", "audit.exported", "auth.token_revoked",
    "registry.version_discarded",
]
VIA = ["web", "api", "api", "web", "command"]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "attest-client/1.4 python-requests/2.32",
]
FIRST = ["Ana", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kemal",
         "Lena", "Mo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tomás"]
LAST = ["Abara", "Berg", "Costa", "Dlamini", "Eriksen", "Fontaine", "García", "Huang", "Ito",
        "Jensen", "Kowalski", "Lindqvist", "Müller", "Novak", "Okafor", "Pérez"]


def zipf_weights(n: int, s: float = 0.8) -> list[float]:
    return [1 / (rank + 1) ** s for rank in range(n)]


@dataclass(frozen=True)
class Fixtures:
    users: list[tuple[int, str, str]]  # (id, username, full name), busiest first
    models: list[tuple[int, str]]  # (id, name), busiest first
    auditor_id: int


def create_fixtures(n_users: int, n_models: int) -> Fixtures:
    """Users, an auditor in the auditors group and registered models (no audit events)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from registry.models import RegisteredModel
    from registry.roles import AUDITORS_GROUP

    user_model = get_user_model()
    if not user_model.objects.filter(username="bench-auditor").exists():
        unusable = make_password(None)
        user_model.objects.bulk_create([
            user_model(username=f"user{i:04d}", first_name=FIRST[i % len(FIRST)],
                       last_name=LAST[(i * 7) % len(LAST)], email=f"user{i:04d}@example.org",
                       password=unusable)
            for i in range(n_users)])
        auditor = user_model.objects.create_user("bench-auditor", "auditor@example.org", None)
        group, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
        auditor.groups.add(group)
        owner = user_model.objects.get(username="user0000")
        RegisteredModel.objects.bulk_create([
            RegisteredModel(name=f"model-{i:03d}", description=f"Synthetic model {i}",
                            created_by=owner) for i in range(n_models)])
    users = [(u.pk, u.username, u.get_full_name()) for u in
             user_model.objects.filter(username__startswith="user").order_by("username")]
    models = list(RegisteredModel.objects.filter(name__startswith="model-")
                  .order_by("name").values_list("pk", "name"))
    auditor_id = user_model.objects.get(username="bench-auditor").pk
    if len(users) != n_users or len(models) != n_models:
        raise BenchError(f"the database has {len(users)} users and {len(models)} models, "
                         f"expected {n_users} and {n_models} (drop it, or match --actors/--models)")
    return Fixtures(users, models, auditor_id)


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def event_material(i: int, n: int, rng: random.Random, fx: Fixtures, pick: dict) -> dict:
    """The recorded fields of the i-th (0-based) of n synthetic events, as audit_event_record
    would build them (JSON already normalized)."""
    from core.hashing import normalize_json

    action = pick["action"][i]
    system = pick["system"][i]
    if system:
        actor_id, username, name, via = None, "", "", "task"
    else:
        actor_id, username, name = fx.users[pick["actor"][i]]
        via = VIA[i % len(VIA)]
    model_id = model_name = version_id = None
    version_label = ""
    before = after = details = None
    reason = ""
    object_type, object_id, object_repr = "", "", ""
    if action.startswith(("registry.", "access.")):
        model_id, model_name = fx.models[pick["model"][i]]
        object_type, object_id, object_repr = "registry.registeredmodel", str(model_id), model_name
        if "version" in action or "artifact" in action:
            v = 1 + rng.randrange(12)
            version_id = model_id * 100 + v
            version_label = f"v{v}"
            object_type = "registry.modelversion"
            object_id, object_repr = str(version_id), f"{model_name} {version_label}"
    if action in ("auth.login", "auth.login_failed", "auth.logout", "auth.token_first_use"):
        details = {"method": "password" if action != "auth.token_first_use" else "token",
                   "user_agent": USER_AGENTS[i % len(USER_AGENTS)]}
    elif action == "registry.model_updated":
        days = 30 * (1 + rng.randrange(24))
        before = {"description": f"Risk score for cohort {i % 97}", "retention_days": days,
                  "required_signoffs": ["pi_approval"]}
        after = {**before, "retention_days": days + 30,
                 "required_signoffs": ["pi_approval", "irb_approval"]}
        reason = "Retention aligned with the data-sharing agreement."
    elif action == "registry.version_updated":
        before = {"notes": "", "metrics": {"auc": round(rng.random(), 4)}}
        after = {"notes": "Recalibrated on the 2024 cohort.",
                 "metrics": {"auc": round(rng.random(), 4), "brier": round(rng.random() / 4, 4)}}
    elif action in ("registry.version_registered", "registry.artifact_uploaded",
                    "registry.artifact_downloaded"):
        details = {"artifact_sha256": _sha(rng), "size": rng.randrange(10_000, 500_000_000),
                   "format": "skops", "purpose": "inference" if "download" in action else None}
        if action == "registry.version_registered":
            details["dataset"] = {"name": f"cohort-{i % 31}", "version": "3", "sha256": _sha(rng)}
            details["input_schema"] = [f"f{k:02d}" for k in range(12)]
    elif action == "auth.permission_denied":
        details = {"path": f"/api/v1/models/{model_name or 'x'}/versions/", "method": "POST",
                   "capability": "register_version"}
    elif action in ("access.granted", "access.revoked"):
        grantee = fx.users[(pick["actor"][i] + 17) % len(fx.users)]
        details = {"user": grantee[1], "role": ["viewer", "auditor", "maintainer"][i % 3]}
        reason = "Requested by the study PI." if action == "access.granted" else ""
    elif action in ("audit.verified", "audit.exported"):
        details = {"checked": i, "ok": True} if action == "audit.verified" else {
            "format": "csv", "filters": {"model": model_name}}
    else:
        details = {"note": f"synthetic event {i}"}
    return {
        "seq": i + 1,
        "time": pick["time"][i],
        "actor_id": actor_id, "actor_username": username, "actor_name": name, "via": via,
        "action": action, "object_type": object_type, "object_id": object_id,
        "object_repr": object_repr, "model_id": model_id, "model_name": model_name or "",
        "version_id": version_id, "version_label": version_label,
        "before": normalize_json(before), "after": normalize_json(after),
        "details": normalize_json(details), "reason": reason,
        "request_id": f"{rng.getrandbits(128):032x}",
        "remote_addr": f"10.{i % 7}.{(i >> 3) % 250}.{1 + i % 200}",
    }


def choices(n: int, seed: int, fx: Fixtures) -> dict:
    """Per-event picks (action, actor, model, time) for n events, reproducible from the seed."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def pick(k: int) -> list[int]:
        w = np.array(zipf_weights(k))
        return rng.choice(k, size=n, p=w / w.sum()).tolist()

    actions = [ACTIONS[k] for k in pick(len(ACTIONS))]
    # increasing times over SPAN, microsecond precision as audit_event_record stores them
    step = SPAN.total_seconds() * 1e6 / n
    offsets = np.cumsum(rng.uniform(0.2 * step, 1.8 * step, size=n)).astype(np.int64).tolist()
    times = [START + timedelta(microseconds=us) for us in offsets]
    system = (rng.random(n) < 0.02).tolist()
    return {"action": actions, "actor": pick(len(fx.users)), "model": pick(len(fx.models)),
            "time": times, "system": system}


def generate_events(n: int, seed: int, fx: Fixtures) -> Iterator[tuple[dict, str, str]]:
    """(material, prev_hash, hash) of n chained events, hashed with audits.chain.event_hash."""
    from audits.chain import event_hash
    from audits.models import GENESIS_HASH

    picks = choices(n, seed, fx)
    rng = random.Random(seed)
    prev = GENESIS_HASH
    for i in range(n):
        material = event_material(i, n, rng, fx, picks)
        digest = event_hash(prev, material)
        yield material, prev, digest
        prev = digest


def copy_columns() -> list[str]:
    from audits.chain import MATERIAL_FIELDS

    return [*MATERIAL_FIELDS, "prev_hash", "hash"]


def load_postgres(n: int, seed: int, fx: Fixtures) -> float:
    """COPY n chained events into the audit table; returns seconds."""
    from django.db import connection, transaction

    from core.hashing import canonical_json

    cols = copy_columns()
    json_cols = {cols.index(c) for c in ("before", "after", "details")}
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg cursor
        with raw.copy(f"COPY {TABLE} ({', '.join(cols)}) FROM STDIN") as copy:
            for k, (material, prev, digest) in enumerate(generate_events(n, seed, fx)):
                row = [material[c] for c in cols[:-2]]
                for j in json_cols:
                    if row[j] is not None:
                        row[j] = canonical_json(row[j])
                row += [prev, digest]
                copy.write_row(row)
                if k and k % 200_000 == 0:
                    print(f"  loaded {k:,} events ({time.perf_counter() - started:.0f} s)",
                          file=sys.stderr)
    with connection.cursor() as cursor:
        # What autovacuum does soon after a bulk load (an insert-only table is vacuumed once
        # 20% of it is new): statistics, and the visibility map index-only scans rely on.
        cursor.execute(f"VACUUM ANALYZE {TABLE}")
    return time.perf_counter() - started


def load_sqlite(n: int, seed: int, fx: Fixtures) -> float:
    from django.db import connection, transaction

    from core.hashing import canonical_json

    cols = copy_columns()
    ops = connection.ops
    sql = (f"INSERT INTO {TABLE} ({', '.join(cols)}) "  # noqa: S608 - fixed identifiers
           f"VALUES ({', '.join('%s' for _ in cols)})")

    def rows() -> Iterator[list]:
        for material, prev, digest in generate_events(n, seed, fx):
            row = [material[c] for c in cols[:-2]]
            row[1] = ops.adapt_datetimefield_value(row[1])
            for j in (14, 15, 16):
                if row[j] is not None:
                    row[j] = canonical_json(row[j])
            yield [*row, prev, digest]

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        batch: list[list] = []
        for row in rows():
            batch.append(row)
            if len(batch) == 10_000:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


# -- measurements ----------------------------------------------------------------------------


def clock() -> float:
    return time.perf_counter()


def fetch_cursor(upto_seq: int, itersize: int = 20_000) -> tuple[float, int]:
    """Read every column of events 1..upto_seq in seq order, doing nothing with them.

    PostgreSQL: a server-side cursor in a transaction; SQLite: one SELECT, fetchmany.
    Django's connection, so the column types load as they do for Django (jsonb as text).
    """
    from django.db import connection, transaction

    sql = f"SELECT * FROM {TABLE} WHERE seq <= %s ORDER BY seq"  # noqa: S608
    count = 0
    started = clock()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            cursor = connection.connection.cursor(name="bench_fetch_only")
            cursor.itersize = itersize
        else:
            cursor = connection.connection.cursor()
        try:
            cursor.execute(sql.replace("%s", "?") if connection.vendor == "sqlite" else sql,
                           [upto_seq])
            while rows := cursor.fetchmany(itersize):
                count += len(rows)
        finally:
            cursor.close()
    return clock() - started, count


def fetch_copy(upto_seq: int) -> tuple[float, int]:
    """PostgreSQL: COPY the same rows (every column, seq order) to this process, unparsed."""
    from django.db import connection

    count = 0
    started = clock()
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY (SELECT * FROM {TABLE} WHERE seq <= {int(upto_seq)} "  # noqa: S608
            "ORDER BY seq) TO STDOUT") as copy:
        for _data in copy:
            count += 1
    return clock() - started, count


def machine_cpu_seconds() -> float | None:
    """CPU time used by the whole machine so far (all cores, /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def verify_run(upto_seq: int) -> tuple[float, Any, float, float | None]:
    """verify_chain: (seconds, result, CPU seconds of the verifying processes -- this one
    and its helpers --, CPU seconds of everything else on the machine: PostgreSQL's
    backends, and whatever else ran)."""
    from audits.chain import verify_chain

    machine = machine_cpu_seconds()
    before = os.times()
    started = clock()
    result = verify_chain(upto_seq=upto_seq)
    elapsed = clock() - started
    after = os.times()
    cpu = sum(after[:4]) - sum(before[:4])  # user + system, self + waited-for children
    machine_after = machine_cpu_seconds()
    rest = (machine_after - machine - cpu) if machine is not None and machine_after is not None \
        else None
    return elapsed, result, cpu, rest


@dataclass
class Row:
    measurement: str
    value: str
    baseline: str
    ratio: str
    target: str = "-"
    met: str = "-"


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} ev/s"


def measure_verify(n: int, rounds: int, sample: list[tuple[dict, str, str]],
                   label: str) -> tuple[list[Row], dict]:
    """verify_chain vs fetch only, interleaved; sha256 / event_hash over in-memory events."""
    from django.db import connection

    from audits.chain import event_hash

    postgres = connection.vendor == "postgresql"
    fetchers = {"cursor": fetch_cursor, **({"copy": fetch_copy} if postgres else {})}
    fetch_s: dict[str, list[float]] = {name: [] for name in fetchers}
    verify_s: list[float] = []
    cpu_s: list[float] = []
    server_s: list[float] = []
    for run in range(rounds + 1):  # the first round warms caches and is not counted
        for name, fetch in fetchers.items():
            seconds, count = fetch(n)
            if count != n:
                raise BenchError(f"fetch only ({name}) read {count} events, expected {n}")
            if run:
                fetch_s[name].append(seconds)
        seconds, result, cpu, server = verify_run(n)
        if not result.ok or result.checked != n:
            raise BenchError(f"verify_chain failed on the synthetic trail: {result.as_dict()}")
        if run:
            verify_s.append(seconds)
            cpu_s.append(cpu)
            if server is not None:
                server_s.append(server)
    verify = statistics.median(verify_s)
    from django.conf import settings

    processes = settings.ATTEST_AUDIT_VERIFY_PROCESSES if postgres else 1
    cpu_note = (f" ({processes} processes; CPU per event: {1e6 * statistics.median(cpu_s) / n:.1f}"
                " us in them")
    cpu_note += (f", {1e6 * statistics.median(server_s) / n:.1f} us in the rest of the machine)"
                 if server_s else ")")
    target = f">= {VERIFY_TARGET:,} ev/s" if postgres else "-"
    met = ("yes" if n / verify >= VERIFY_TARGET else "NO") if postgres else "-"
    rows = []
    for name, what in (("copy", "COPY of the same rows, unparsed"),
                       ("cursor", "server-side cursor, Django's loaders" if postgres
                        else "one SELECT, fetchmany")):
        if name in fetch_s:
            fetch = statistics.median(fetch_s[name])
            rows.append(Row(f"verify_chain, {label}, {n:,} events", rate(n, verify) + cpu_note,
                            f"fetch only ({what}): {rate(n, fetch)}", f"{fetch / verify:.2f}x",
                            target, met))
            target = met = cpu_note = ""  # the target and the CPU split are shown once
            target = met = "-"
    info = {"fetch_s": fetch_s, "verify_s": verify_s}
    if sample:
        data = [prev.encode("ascii") + b"\n" + _canonical(m) for m, prev, _ in sample]
        started = clock()
        for blob in data:
            hashlib.sha256(blob).hexdigest()
        sha_s = clock() - started
        started = clock()
        for material, prev, digest in sample:
            if event_hash(prev, material) != digest:
                raise BenchError("event_hash disagrees with the loader")
        hash_s = clock() - started
        k = len(sample)
        mean_bytes = sum(map(len, data)) / k
        rows.append(Row(f"event_hash on in-memory events ({k:,}, {mean_bytes:.0f} B each)",
                        rate(k, hash_s), f"sha256 alone over the same bytes: {rate(k, sha_s)}",
                        f"{sha_s / hash_s:.2f}x"))
        info.update(sha_s=sha_s, hash_s=hash_s, mean_bytes=mean_bytes)
    return rows, info


def _canonical(material: dict) -> bytes:
    from audits.chain import _time_text
    from core.hashing import canonical_bytes

    return canonical_bytes({**material, "time": _time_text(material["time"])})


# -- appends -------------------------------------------------------------------------------------


def plain_model():
    """An unmanaged copy of AuditEvent over the plain table: same fields, same ORM insert."""
    from django.db import models

    from audits.models import AuditEvent

    attrs: dict[str, Any] = {"__module__": __name__}
    for field in AuditEvent._meta.concrete_fields:
        if not field.primary_key:
            attrs[field.name] = field.clone()
    attrs["Meta"] = type("Meta", (), {"app_label": "audits", "db_table": PLAIN_TABLE,
                                      "managed": False})
    return type("BenchPlainEvent", (models.Model,), attrs)


def create_plain_table() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {PLAIN_TABLE}")
        cursor.execute(f"CREATE TABLE {PLAIN_TABLE} (LIKE {TABLE} INCLUDING ALL)")
        cursor.execute(f"ALTER TABLE {PLAIN_TABLE} ADD FOREIGN KEY (actor_id) "
                       "REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED")


def drop_plain_table() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {PLAIN_TABLE}")


def append_payload(k: int, model: tuple[int, str]) -> dict:
    """What each appended event records (about the size of a loaded model_updated event)."""
    days = 30 * (1 + k % 24)
    before = {"description": f"Risk score for cohort {k % 97}", "retention_days": days,
              "required_signoffs": ["pi_approval"]}
    return {"action": "registry.model_updated", "object_type": "registry.registeredmodel",
            "object_id": str(model[0]), "object_repr": model[1], "model_id": model[0],
            "model_name": model[1], "before": before,
            "after": {**before, "retention_days": days + 30},
            "details": {"fields": ["retention_days"], "k": k},
            "reason": "Retention aligned with the data-sharing agreement."}


def run_writers(writers: int, per_writer: int, fx: Fixtures, work: Callable[[int, dict], None],
                offset: int = 0) -> float:
    """Fork ``writers`` processes (own connection each; separate processes as gunicorn or
    Celery workers are, so no GIL is shared), start them together; seconds until all
    finish. Writer w's k-th call gets ``offset + w * per_writer + k + 1`` (unique)."""
    import multiprocessing

    from django.contrib.auth import get_user_model
    from django.db import connections

    from core.context import acting_as

    mp = multiprocessing.get_context("fork")
    barrier = mp.Barrier(writers + 1)
    errors = mp.SimpleQueue()
    users = {u.pk: u for u in get_user_model().objects.filter(
        pk__in=[fx.users[w % len(fx.users)][0] for w in range(writers)])}
    connections.close_all()  # a forked child must not use the parent's connection

    def writer(w: int) -> None:
        code = 0
        try:
            user = users[fx.users[w % len(fx.users)][0]]
            model = fx.models[w % len(fx.models)]
            connections["default"].ensure_connection()
            with acting_as(user, via="api", remote_addr="10.0.0.1"):
                barrier.wait(timeout=300)
                for k in range(per_writer):
                    work(offset + w * per_writer + k + 1, append_payload(k, model))
        except BaseException as exc:  # noqa: BLE001 - reported by the parent
            errors.put(f"{exc.__class__.__name__}: {exc}")
            barrier.abort()
            code = 1
        finally:
            connections.close_all()
            os._exit(code)  # no atexit handlers or finalizers inherited from the parent

    procs = [mp.Process(target=writer, args=(w,)) for w in range(writers)]
    for proc in procs:
        proc.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=300)
    started = clock()
    for proc in procs:
        proc.join()
    elapsed = clock() - started
    if not errors.empty():
        raise BenchError(f"a writer failed: {errors.get()}")
    if any(proc.exitcode for proc in procs):
        raise BenchError(f"a writer exited with {[proc.exitcode for proc in procs]}")
    return elapsed


def measure_appends(args: argparse.Namespace, fx: Fixtures) -> list[Row]:
    from django.db import transaction

    from audits.services import audit_event_record
    from core.context import current_actor
    from core.hashing import normalize_json

    plain = plain_model()
    create_plain_table()
    used = 0  # seqs handed out in the plain table so far

    def chained(_seq: int, payload: dict) -> None:
        audit_event_record(**payload)

    def plain_insert(seq: int, payload: dict) -> None:
        ctx = current_actor()
        with transaction.atomic():
            plain(seq=seq, time=datetime.now(UTC), actor_id=ctx.user_id,
                  actor_username=ctx.username, actor_name=ctx.display_name, via=ctx.via,
                  action=payload["action"], object_type=payload["object_type"],
                  object_id=payload["object_id"], object_repr=payload["object_repr"],
                  model_id=payload["model_id"], model_name=payload["model_name"],
                  version_id=None, version_label="",
                  before=normalize_json(payload["before"]),
                  after=normalize_json(payload["after"]),
                  details=normalize_json(payload["details"]), reason=payload["reason"],
                  request_id=ctx.request_id, remote_addr=ctx.remote_addr or "",
                  prev_hash=f"{seq - 1:064x}", hash=f"{seq:064x}").save(force_insert=True)

    def run(writers: int, per_writer: int, work: Callable[[int, dict], None]) -> float:
        nonlocal used
        seconds = run_writers(writers, per_writer, fx, work, offset=used)
        used += writers * per_writer
        return seconds

    rows = []
    try:
        for writers in sorted({args.writers, 1}, reverse=True):
            per_writer = args.appends if writers > 1 else args.appends * min(args.writers, 4)
            n = writers * per_writer
            run(writers, max(1, per_writer // 10), plain_insert)  # warm-up
            run(writers, max(1, per_writer // 10), chained)
            base_s, chain_s = [], []
            for r in range(args.rounds):
                order = [(plain_insert, base_s), (chained, chain_s)]
                for work, into in (order if r % 2 == 0 else order[::-1]):
                    into.append(run(writers, per_writer, work))
            base, chain = statistics.median(base_s), statistics.median(chain_s)
            rows.append(Row(
                f"append, audit_event_record, {writers} writer{'s' if writers > 1 else ''}",
                rate(n, chain) + f" ({1000 * chain / n * writers:.1f} ms/event/writer)",
                f"plain ORM insert, 1 tx each: {rate(n, base)}", f"{base / chain:.2f}x"))
    finally:
        drop_plain_table()
    return rows


# -- the event list --------------------------------------------------------------------------


@dataclass
class ListCase:
    name: str
    params: dict[str, str]
    where: str  # SQL condition for the bare query
    where_params: list[Any]
    page: int  # 1 or PAGE_NO
    cursor: int | None = None


def list_cases(fx: Fixtures, n: int, skipped: list[str]) -> list[ListCase]:
    """Filters on the busiest model, action and actor (so the 1,000th page exists), a
    180-day window in the second year, the first 150 days (the window furthest from the
    newest event), and a one-day window (first page only). Filters with no
    1,000th page (too few --events) are named in ``skipped``."""
    from django.db import connection

    busiest_model = fx.models[0]
    busiest_action = ACTIONS[0]
    busiest_actor = fx.users[0][1]
    since = START + timedelta(days=365)
    until = since + timedelta(days=180)
    day = START + timedelta(days=200)
    quiet_model = fx.models[-1]
    base = [
        ("none", {}, "TRUE", []),
        (f"model={busiest_model[1]} (busiest)", {"model": busiest_model[1]},
         "model_id = %s", [busiest_model[0]]),
        (f"action={busiest_action}", {"action": busiest_action}, "action = %s", [busiest_action]),
        (f"actor={busiest_actor} (busiest)", {"actor": busiest_actor},
         "actor_username = %s", [busiest_actor]),
        ("since/until, 180 days in year 2", {"since": since.isoformat(),
                                              "until": until.isoformat()},
         "time >= %s AND time < %s", [since, until]),
        ("since/until, first 150 days", {"since": START.isoformat(),
                                         "until": (START + timedelta(days=150)).isoformat()},
         "time >= %s AND time < %s", [START, START + timedelta(days=150)]),
    ]
    cases: list[ListCase] = []
    for name, params, where, wp in base:
        cases.append(ListCase(name, params, where, wp, 1))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT seq FROM {TABLE} WHERE {where} AND seq <= %s "  # noqa: S608
                           f"ORDER BY seq DESC OFFSET %s LIMIT 1",
                           [*wp, n, PAGE * (PAGE_NO - 1) - 1])
            found = cursor.fetchone()
        if found is None:
            skipped.append(name)
        else:
            cases.append(ListCase(name, params, where, wp, PAGE_NO, found[0]))
    cases.append(ListCase(f"model={quiet_model[1]} (quietest)", {"model": quiet_model[1]},
                          "model_id = %s", [quiet_model[0]], 1))
    # date-times, not dates: a bare date in `until` currently means its midnight (see the docs)
    cases.append(ListCase("since/until, one day", {"since": day.isoformat(),
                                                   "until": (day + timedelta(days=1)).isoformat()},
                          "time >= %s AND time < %s", [day, day + timedelta(days=1)], 1))
    return cases


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def measure_list(args: argparse.Namespace, fx: Fixtures, n: int, notes: list[str]) -> list[Row]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.test import APIRequestFactory, force_authenticate

    from audits.api import AuditEventListView

    factory = APIRequestFactory()
    view = AuditEventListView.as_view()
    user_model = get_user_model()
    skipped: list[str] = []
    cases = list_cases(fx, n, skipped)
    if skipped:
        notes.append(f"no page {PAGE_NO:,} (fewer than {PAGE * (PAGE_NO - 1):,} matching "
                     f"events) for: {', '.join(skipped)}")
    # The page size the API returns (50) plus one, as audit_event_page asks for.
    def bare(case: ListCase) -> tuple[float, int]:
        cond = case.where + (" AND seq < %s" if case.cursor else "")
        params = [*case.where_params, *([case.cursor] if case.cursor else [])]
        started = clock()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {TABLE} WHERE {cond} "  # noqa: S608
                           f"ORDER BY seq DESC LIMIT {PAGE + 1}", params)
            got = cursor.fetchall()
        return clock() - started, min(len(got), PAGE)

    def api(case: ListCase) -> tuple[float, int]:
        params = {**case.params, **({"cursor": str(case.cursor)} if case.cursor else {})}
        user = user_model.objects.get(pk=fx.auditor_id)  # fresh, as each request loads it
        request = factory.get("/api/v1/audit/events/", params)
        force_authenticate(request, user=user)
        started = clock()
        response = view(request)
        response.render()
        elapsed = clock() - started
        if response.status_code != 200:
            raise BenchError(f"GET /api/v1/audit/events/ {params}: {response.status_code} "
                             f"{response.content[:300]!r}")
        return elapsed, len(json.loads(response.content)["results"])

    times: dict[int, tuple[list[float], list[float]]] = {k: ([], []) for k in range(len(cases))}
    for sample in range(args.samples + 5):
        for k, case in enumerate(cases):
            sql_s, sql_n = bare(case)
            api_s, api_n = api(case)
            if sql_n != api_n:
                raise BenchError(f"{case.name} page {case.page}: the view returned {api_n} "
                                 f"events, the bare query {sql_n}")
            if sample >= 5:
                times[k][0].append(sql_s)
                times[k][1].append(api_s)
    rows = []
    for k, case in enumerate(cases):
        sql_t, api_t = times[k]
        a50, a95 = 1000 * statistics.median(api_t), 1000 * percentile(api_t, 95)
        s50, s95 = 1000 * statistics.median(sql_t), 1000 * percentile(sql_t, 95)
        rows.append(Row(f"list, {case.name}, page {case.page:,}",
                        f"p50 {a50:.1f} ms, p95 {a95:.1f} ms",
                        f"bare SQL: p50 {s50:.1f} ms, p95 {s95:.1f} ms", f"{a95 / s95:.1f}x",
                        f"p95 <= {LIST_TARGET_MS:.0f} ms", "yes" if a95 <= LIST_TARGET_MS else "NO"))
    return rows


# -- SQLite (child process) ----------------------------------------------------------------------


def sqlite_child(args: argparse.Namespace) -> int:
    """Embedded mode: a temp SQLite database, load, verify; JSON on stdout."""
    out = args.sqlite_child
    data = Path(tempfile.mkdtemp(prefix="attest-bench-sqlite-"))
    try:
        setup_django(data, None)
        from django.core.management import call_command
        from django.db import connection

        if connection.vendor != "sqlite":
            raise BenchError("the SQLite child is not on SQLite")
        call_command("migrate", verbosity=0, interactive=False)
        fx = create_fixtures(args.actors, args.models)
        load_s = load_sqlite(args.sqlite_events, args.seed, fx)
        rows, info = measure_verify(args.sqlite_events, args.rounds, [], "SQLite embedded")
        size = (data / "attest.sqlite3").stat().st_size
        out.write_text(json.dumps({"rows": [r.__dict__ for r in rows], "load_s": load_s,
                                   "db_mb": size / 1e6, **info}))
        return 0
    finally:
        shutil.rmtree(data, ignore_errors=True)


def run_sqlite(args: argparse.Namespace, work: Path) -> tuple[list[Row], str]:
    out = work / "sqlite.json"
    cmd = [sys.executable, __file__, "--sqlite-child", str(out),
           "--sqlite-events", str(args.sqlite_events), "--rounds", str(args.rounds),
           "--models", str(args.models), "--actors", str(args.actors), "--seed", str(args.seed)]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0 or not out.is_file():
        raise BenchError(f"the SQLite run failed: {done.stderr.strip().splitlines()[-1:]}")
    got = json.loads(out.read_text())
    note = (f"SQLite: {args.sqlite_events:,} events loaded in {got['load_s']:.1f} s "
            f"(executemany), database file {got['db_mb']:.0f} MB, WAL, synchronous=NORMAL")
    return [Row(**r) for r in got["rows"]], note


# -- report ------------------------------------------------------------------------------------










def server_info() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), current_setting('fsync'), "
                       "current_setting('synchronous_commit'), current_setting('shared_buffers'), "
                       "pg_size_pretty(pg_total_relation_size(%s))", [TABLE])
        version, fsync, sync, buffers, size = cursor.fetchone()
    s = connection.settings_dict
    return (f"PostgreSQL {version} at {s['HOST']}:{s['PORT']}, database {s['NAME']}; "
            f"fsync={fsync}, synchronous_commit={sync}, shared_buffers={buffers}; "
            f"audit table + indexes {size}")


def machine() -> list[str]:
    return header_lines(("Django", "djangorestframework", "psycopg", "psycopg-binary", "orjson",
                         "numpy"))



def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sqlite_child is not None:
        try:
            return sqlite_child(args)
        except BenchError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
    try:
        url = (read_env_file(args.env).get("DATABASE_URL") if args.env
               else os.environ.get("DATABASE_URL"))
        if not url:
            raise BadArguments("no DATABASE_URL (pass --env DIR/env from scripts/services.sh "
                               "start DIR, or set it)")
        bench_url = bench_database_url(url, args.database)
        work = Path(tempfile.mkdtemp(prefix="attest-bench-audit-"))
    except (BenchError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    admin = None
    created = False
    try:
        try:
            admin = admin_connect(url)
        except Exception as exc:  # noqa: BLE001 - psycopg raises many classes
            raise BadArguments(f"cannot connect to DATABASE_URL: {exc}") from exc
        exists = database_exists(admin, args.database)
        if exists and not args.reuse:
            drop_database(admin, args.database)
        if not exists or not args.reuse:
            admin.execute(f'CREATE DATABASE "{args.database}"')
        created = True
        setup_django(work / "data", bench_url)
        from django.core.management import call_command
        from django.db import connection, connections

        print("\n".join(machine()))
        call_command("migrate", verbosity=0, interactive=False)
        fx = create_fixtures(args.actors, args.models)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*), coalesce(max(seq), 0) FROM {TABLE}")  # noqa: S608
            count, _head = cursor.fetchone()
        n = args.events
        if count == 0:
            print(f"loading {n:,} events ...", file=sys.stderr)
            load_s = load_postgres(n, args.seed, fx)
            load_note = f"loaded {n:,} events with COPY in {load_s:.0f} s ({rate(n, load_s)})"
        elif count >= n:
            load_note = f"reused {count:,} events of an earlier run (verified up to #{n:,})"
        else:
            raise BenchError(f"database {args.database} holds {count:,} events, fewer than "
                             f"--events {n:,}: run without --reuse")
        print(server_info())
        print(load_note)
        print(f"trail: {args.models} models, {args.actors} actors (busiest first, weights "
              f"1/rank^0.8), {len(ACTIONS)} actions, {SPAN.days} days from {START:%Y-%m-%d}")
        print(f"load average before measuring: {load_average()}\n")
        sample = list(itertools.islice(generate_events(n, args.seed, fx), args.sample))
        print("measuring verify ...", file=sys.stderr)
        rows, _info = measure_verify(n, args.rounds, sample, "PostgreSQL")
        del sample
        print("measuring the event list ...", file=sys.stderr)
        notes: list[str] = []
        rows += measure_list(args, fx, n, notes)
        print("measuring appends ...", file=sys.stderr)
        rows = measure_appends(args, fx) + rows
        from audits.chain import verify_chain

        final = verify_chain()
        if not final.ok:
            raise BenchError(f"the chain does not verify after the appends: {final.as_dict()}")
        notes.append(f"after the appends the whole chain ({final.checked:,} events) verifies")
        if args.sqlite_events:
            print("measuring SQLite ...", file=sys.stderr)
            sqlite_rows, note = run_sqlite(args, work)
            rows += sqlite_rows
            notes.append(note)
        connections.close_all()
        header = ["measurement", "value", "baseline", "ratio", "target", "met?"]
        print(table(header, [[r.measurement, r.value, r.baseline, r.ratio, r.target, r.met]
                             for r in rows]))
        print("\nratio: append and verify = baseline time / Attest time (1.00x = as fast as the "
              "baseline; lower is slower); list = Attest p95 / bare SQL p95 (how many times "
              "slower)")
        print("verify CPU per event: medians for the verifying processes (this one and the "
              "helpers verify_chain starts on PostgreSQL, ATTEST_AUDIT_VERIFY_PROCESSES in all) "
              "and for the rest of the machine (mostly their PostgreSQL backends); on an "
              "otherwise idle machine with c cores verify runs at about c / (their sum)")
        for note in notes:
            print(f"note: {note}")
        print(f"load average at end: {load_average()}")
        return 0
    except BenchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BadArguments) else 1
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if admin is not None:
            if created and not args.keep:
                drop_database(admin, args.database)
            admin.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
