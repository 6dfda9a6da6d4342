"""The compliance dossier of a version with 1,000,000 logged predictions and 100,000 audit
events: ``dossier_build`` end to end, and where its time goes.

One run on PostgreSQL (``DATABASE_URL`` from the environment or ``--env FILE``; the script
creates its own database there, ``--database``, and drops it at the end unless ``--keep``;
``--reuse`` measures the database an earlier ``--keep`` run seeded):

1. seed, with the other benches' loaders (imported, not copied): ``--events`` audit
   events with a valid chain (bench/audit.py's COPY loader), then the version of
   bench/monitoring.py (a 30-feature model released through the real workflow: register,
   submit — which computes its explanation figures —, PI and IRB sign-off, promote) and
   ``--rows`` logged predictions of it over 30 days (bench/monitoring.py's writer, with
   real row and chain hashes); then, through the product's services: the log anchored
   in the audit chain in ranges of ``--anchor-rows`` (``anchor_predictions``, as the
   scheduled job does), review items for the rows routed to review, ``--reviews`` of
   them decided (a third overridden), ``--outcomes`` outcomes recorded, rejection
   counts, the monitoring aggregation and a monitoring run, and a signed checkpoint
   (``audit_checkpoint_write``); ``VACUUM ANALYZE``;
2. baselines in the same run: ``SELECT count(*)`` of the log, a ``COPY ... TO STDOUT`` of
   the columns the log verification reads (unparsed) and of the audit table, and
   sha256 over as many rows of the log's row-material size held in memory;
3. ``dossier_build`` of a requested dossier, ``--rounds`` times: the end-to-end time and
   each part's — the evidence snapshot (the cover, each question, the checklist,
   monitoring, explanations; inside question 4 the audit-chain verification and the
   prediction-log verification separately), rendering (WeasyPrint) and storing — timed
   by wrapping the functions the build calls (no second path), medians over the rounds.

    .venv/bin/python bench/dossier.py --env /tmp/svc/env [--rows 1000000] [--events 100000]
        [--rounds 2] [--keep | --reuse]

Exit status: 0 done, 1 the benchmark failed, 2 bad arguments (one-line reason).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

# bench/ is sys.path[0] when run as `python bench/dossier.py`, as bench/audit.py expects;
# bench/monitoring.py is imported as bench.monitoring (plain "monitoring" is the app).
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
import audit as audit_bench  # noqa: E402
from machine_info import (  # noqa: E402
    BadArguments,
    BenchError,
    Parser,
    header_lines,
    load_average,
    table,
)

from bench import monitoring as monitoring_bench  # noqa: E402

PROG = "bench/dossier.py"
TARGET_S = 15.0
MODEL_NAME = "bench-monitoring"  # what bench/monitoring.py's release() registers


def parse_args(argv):
    parser = Parser(prog=PROG, description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged predictions")
    parser.add_argument("--events", type=int, default=100_000,
                        help="audit events loaded before the version's own history")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--anchor-rows", type=int, default=10_000,
                        help="rows per prediction-log anchor (default 10,000)")
    parser.add_argument("--reviews", type=int, default=300, help="review items decided")
    parser.add_argument("--outcomes", type=int, default=5_000, help="outcomes recorded")
    parser.add_argument("--rounds", type=int, default=2, help="dossier builds timed (median)")
    parser.add_argument("--env", type=Path, metavar="FILE",
                        help="read DATABASE_URL from this file of `export NAME=value` lines")
    parser.add_argument("--database", default="attest_bench_dossier")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the database an earlier --keep run seeded")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="write a cProfile of the last build to FILE")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not 1_000 <= args.rows <= 20_000_000 or not 1_000 <= args.events <= 20_000_000:
        parser.error("--rows and --events must be between 1,000 and 20,000,000")
    if not 1 <= args.rounds <= 20 or args.anchor_rows < 100 or args.features < 2:
        parser.error("--rounds must be 1-20, --anchor-rows at least 100, --features at least 2")
    if not 0 <= args.reviews <= 10_000 or not 0 <= args.outcomes <= 100_000:
        parser.error("--reviews must be 0-10,000 and --outcomes 0-100,000")
    if not args.database.replace("_", "").isalnum() or not args.database.islower():
        parser.error(f"--database must be lower-case letters, digits and _, not {args.database!r}")
    if args.env is not None and not args.env.is_file():
        parser.error(f"--env {args.env}: no such file")
    return args


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- seeding -------------------------------------------------------------------------------


def seed(args) -> tuple[float, dict]:
    """Everything the dossier reads; returns (seconds, what was seeded)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from audits.checkpoints import audit_checkpoint_write
    from core.context import acting_as
    from inference.log import anchor_predictions
    from inference.models import Prediction, RejectionCount, ReviewItem, Routing
    from inference.services import review_decide
    from monitoring.aggregation import aggregate_predictions
    from monitoring.models import OutcomeSource
    from monitoring.services import monitoring_run, outcomes_record
    from registry import services
    from registry.roles import ModelRole

    started = time.perf_counter()
    done: dict = {}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ATTEST_EXPLAIN_EAGER_THREAD = False  # the figures are computed at submit, here
    note(f"loading {args.events:,} audit events ...")
    fx = audit_bench.create_fixtures(50, 20)
    done["events_load_s"] = audit_bench.load_postgres(args.events, args.seed, fx)

    note("releasing the version (register, submit with explanation figures, sign, promote) ...")
    rng = np.random.default_rng(args.seed)
    names = [f"x{j:02d}" for j in range(args.features)]
    train = monitoring_bench.synthetic(20_000, args.features, rng)
    registered, version, model, users = monitoring_bench.release(args, train, names, rng)
    cut = int(args.rows * 0.8)
    live = np.vstack([monitoring_bench.synthetic(cut, args.features, rng),
                      monitoring_bench.synthetic(args.rows - cut, args.features, rng,
                                                 drift=True)])
    note(f"writing {args.rows:,} predictions with row and chain hashes ...")
    done["log_write_s"] = monitoring_bench.write_log(registered, version, model, live, names,
                                                     users["owner"], chained=True)
    del live
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE inference_prediction")

    note("anchoring, reviews, outcomes, rejections ...")
    t = time.perf_counter()
    anchors = 0
    with acting_as(None, via="task"):
        while anchor_predictions(settle=timedelta(0), max_rows=args.anchor_rows) is not None:
            anchors += 1
    done["anchors"], done["anchor_s"] = anchors, time.perf_counter() - t

    routed = list(Prediction.objects.filter(version=version, routing=Routing.REVIEW)
                  .order_by("id").values_list("id", "created_at"))
    ReviewItem.objects.bulk_create(
        [ReviewItem(prediction_id=pk, model=registered, version=version, created_at=at)
         for pk, at in routed], batch_size=10_000)
    done["review_items"] = len(routed)
    reviewer = get_user_model().objects.create_user(username="bench-reviewer",
                                                    password=monitoring_bench.PASSWORD)
    owner = users["owner"]
    with acting_as(owner, via="command"):
        services.access_grant(user=owner, model=registered, grantee=reviewer,
                              role=ModelRole.REVIEWER)
    step = max(1, len(routed) // max(1, args.reviews))
    picked = ReviewItem.objects.filter(prediction_id__in=[pk for pk, _ in routed[::step]]
                                       [:args.reviews]).select_related("prediction")
    overridden = 0
    with acting_as(reviewer, via="api"):
        for k, item in enumerate(picked):
            if k % 3 == 0:
                other = "negative" if item.prediction.label == "positive" else "positive"
                review_decide(user=reviewer, item=item, decision="override", final_label=other,
                              reason_code="clinical_judgement")
                overridden += 1
            else:
                review_decide(user=reviewer, item=item, decision="accept")
    done["reviews"], done["overrides"] = len(picked), overridden

    if args.outcomes:
        sample = (Prediction.objects.filter(version=version).order_by("id")
                  .values_list("public_id", "label", "created_at")[::max(1, args.rows
                                                                       // args.outcomes)])
        rows = []
        for k, (public_id, label, at) in enumerate(sample[:args.outcomes]):
            truth = label if k % 5 else ("negative" if label == "positive" else "positive")
            day = min(at + timedelta(days=2), timezone.now()).date()
            rows.append({"prediction_id": str(public_id), "outcome": truth,
                         "outcome_date": day.isoformat()})
        with acting_as(owner, via="api"):
            outcomes_record(user=owner, model=registered, rows=rows, source=OutcomeSource.API)
        done["outcomes"] = len(rows)
    today = timezone.now().date()
    RejectionCount.objects.bulk_create([
        RejectionCount(model=registered, version=version, day=today - timedelta(days=d),
                       code=code, count=1 + (d * 7 + k) % 23)
        for d in range(30) for k, code in enumerate(("missing_field", "out_of_range",
                                                      "wrong_type"))])

    note("monitoring aggregation and run ...")
    t = time.perf_counter()
    with acting_as(None, via="task"):
        aggregate_predictions(settle=timedelta(0))
        monitoring_run(version=version, notify=False)
    done["monitoring_s"] = time.perf_counter() - t
    note("signed checkpoint ...")
    with acting_as(None, via="task"):
        audit_checkpoint_write()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - started, done


# -- baselines -----------------------------------------------------------------------------


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t, out


def baselines(rows: int) -> dict[str, float]:
    """Reading the log and the trail without doing anything with them, and sha256 alone."""
    from django.db import connection

    from inference.log import ROW_FIELDS, ROW_FIELDS_WHEN_SET, row_material
    from inference.models import Prediction

    out = {}
    with connection.cursor() as cursor:
        out["count"], _ = timed(cursor.execute, "SELECT count(*) FROM inference_prediction")
        raw = cursor.cursor
        columns = ", ".join(["id", "row_hash", "chain_hash", *ROW_FIELDS, *ROW_FIELDS_WHEN_SET,
                             "input"])

        def copy(sql: str) -> int:
            n = 0
            with raw.copy(sql) as stream:
                for _block in stream:
                    n += 1
            return n

        out["log_copy"], _ = timed(copy, f"COPY (SELECT {columns} FROM "  # noqa: S608
                                   "inference_prediction ORDER BY id) TO STDOUT")
        out["chain_copy"], _ = timed(copy, "COPY (SELECT * FROM audits_auditevent "
                                     "ORDER BY seq) TO STDOUT")
    from core.hashing import canonical_bytes

    sample = [canonical_bytes(row_material(dict(zip((*ROW_FIELDS, *ROW_FIELDS_WHEN_SET), r,
                                                    strict=True))))
              for r in Prediction.objects.order_by("id").values_list(
                  *ROW_FIELDS, *ROW_FIELDS_WHEN_SET)[:10_000]]
    out["row_bytes"] = statistics.mean(map(len, sample))
    blobs = (sample * (rows // len(sample) + 1))[:rows]
    sha = hashlib.sha256
    t = time.perf_counter()
    for blob in blobs:
        sha(blob).hexdigest()
    out["sha256"] = time.perf_counter() - t
    return out


# -- the build, part by part ---------------------------------------------------------------


class Parts:
    """Wraps the functions ``dossier_build`` calls and adds up the seconds in each."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, module, name: str, label: str) -> None:
        original = getattr(module, name)

        @functools.wraps(original)
        def timed_call(*a, **kw):
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t

        setattr(module, name, timed_call)
        self._undo.append((module, name, original))

    def undo(self) -> None:
        for module, name, original in reversed(self._undo):
            setattr(module, name, original)
        self._undo.clear()


EVIDENCE_PARTS = [("_q1", "question 1: production version, provenance, release history"),
                  ("_q2", "question 2: schema, rejections, OOD flags (a pass over the log)"),
                  ("_q3", "question 3: threshold, review queue, overrides, rollbacks"),
                  ("_q4", "question 4: logging, retention, verification"),
                  ("_q5", "question 5: runbook, version history"),
                  ("_checklist", "deployment checklist"),
                  ("_monitoring", "monitoring"),
                  ("_explanations", "explanations")]


def build_once(version, owner, profile: Path | None) -> tuple[dict[str, float], dict]:
    from dossier import evidence, render, services
    from dossier.models import Dossier, DossierStatus

    queued: list[int] = []
    real_enqueue = services.enqueue
    services.enqueue = queued.append  # the bench runs the job itself, below
    try:
        dossier = services.dossier_request(user=owner, version=version)
    finally:
        services.enqueue = real_enqueue
    parts = Parts()
    for name, label in EVIDENCE_PARTS:
        parts.wrap(evidence, name, label)
    parts.wrap(evidence, "verify_chain", "chain")
    parts.wrap(evidence, "verify_prediction_log", "log")
    parts.wrap(services, "evidence_snapshot", "evidence")
    parts.wrap(services, "json_ready", "json_ready")
    parts.wrap(render, "dossier_pdf", "render")
    parts.wrap(services, "blob_put", "blob_put")
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
    try:
        t = time.perf_counter()
        if profiler:
            profiler.enable()
        status = services.dossier_build(dossier_id=dossier.pk)
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        total = time.perf_counter() - t
    finally:
        parts.undo()
    dossier = Dossier.objects.get(pk=dossier.pk)
    if status != DossierStatus.COMPLETED:
        raise BenchError(f"dossier_build ended {status}: {dossier.error}")
    return {**parts.seconds, "total": total}, dossier.snapshot


def check(snapshot: dict, rows: int) -> dict:
    """The dossier must have verified what was seeded: all rows, the whole chain."""
    q4 = next(q for q in snapshot["questions"] if q["number"] == 4)["evidence"]
    log, chain = q4["prediction_log"], q4["audit_chain"]
    if not log["ok"] or log["checked"] != rows:
        raise BenchError(f"the dossier's prediction-log verification: {log}")
    if not chain["ok"]:
        raise BenchError(f"the dossier's audit-chain verification: {chain}")
    return {"log": log, "chain": chain,
            "statuses": {q["number"]: q["status"] for q in snapshot["questions"]}}


def report_rows(runs: list[dict[str, float]]) -> list[list[str]]:
    def med(key: str) -> float:
        return statistics.median(r.get(key, 0.0) for r in runs)

    total = med("total")

    def row(label: str, seconds: float, bold: bool = False) -> list[str]:
        text = [label, f"{seconds:.2f}", f"{100 * seconds / total:.1f}%"]
        return [f"**{c}**" for c in text] if bold else text

    q4_rest = statistics.median(r.get("question 4: logging, retention, verification", 0.0)
                                - r.get("chain", 0.0) - r.get("log", 0.0) for r in runs)
    parts_sum = statistics.median(sum(r.get(label, 0.0) for _, label in EVIDENCE_PARTS)
                                  for r in runs)
    out = [row("evidence snapshot (one REPEATABLE READ transaction)", med("evidence"), True)]
    for _name, label in EVIDENCE_PARTS:
        out.append(row(f"  {label}", med(label)))
        if label.startswith("question 4"):
            out.append(row("    audit-chain verification (verify_chain)", med("chain")))
            out.append(row("    prediction-log verification (verify_prediction_log)",
                           med("log")))
            out.append(row("    purges, reconciliation", q4_rest))
    out.append(row("  cover, chain head, checkpoint, sign-off manifest",
                   med("evidence") - parts_sum))
    out.append(row("rendering (Django template + WeasyPrint)", med("render"), True))
    out.append(row("storing (sha256, blob_put, completion + audit event)",
                   statistics.median(r["total"] - r.get("evidence", 0) - r.get("render", 0)
                                     - r.get("json_ready", 0) for r in runs)
                   - 0.0, True))
    out.append(row("json_ready (the snapshot normalised) and the claim/progress updates",
                   med("json_ready")))
    out.append(row("dossier_build end to end", total, True))
    return out


def measure(args) -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from audits.models import AuditEvent
    from inference.models import Prediction
    from registry.models import ModelVersion

    print("\n".join(header_lines(("Django", "psycopg", "weasyprint", "pydyf", "orjson",
                                  "numpy"))))
    version = ModelVersion.objects.select_related("model").filter(
        model__name=MODEL_NAME).order_by("-number").first()
    if version is None:
        raise BenchError(f"no version of {MODEL_NAME} in {args.database}: run without --reuse")
    rows = Prediction.objects.filter(version=version).count()
    if rows != args.rows:
        raise BenchError(f"the database holds {rows:,} predictions, not --rows {args.rows:,}")
    owner = get_user_model().objects.get(username="bench-owner")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), "
                       "pg_size_pretty(pg_total_relation_size('inference_prediction')), "
                       "pg_size_pretty(pg_total_relation_size('audits_auditevent'))")
        server, log_size, trail_size = cursor.fetchone()
    events = AuditEvent.objects.count()
    print(f"PostgreSQL {server}, database {args.database}: {rows:,} predictions of "
          f"{version.label} ({log_size} with indexes), {events:,} audit events ({trail_size})")
    print(f"load average before measuring: {load_average()}")
    note("baselines ...")
    base = baselines(rows)
    runs, facts = [], {}
    for k in range(args.rounds):
        note(f"dossier_build {k + 1}/{args.rounds} ...")
        profile = args.profile if k == args.rounds - 1 else None
        seconds, snapshot = build_once(version, owner, profile)
        facts = check(snapshot, rows)
        runs.append(seconds)
        note(f"  {seconds['total']:.1f} s")
    print(f"load average after measuring: {load_average()}\n")
    total = statistics.median(r["total"] for r in runs)
    print(table(["part of dossier_build", f"seconds (median of {args.rounds})", "share"],
                report_rows(runs)))
    log_s = statistics.median(r["log"] for r in runs)
    chain_s = statistics.median(r["chain"] for r in runs)
    n_chain = facts["chain"]["checked"]
    print()
    print(table(["baseline (same run)", "seconds", "ratio: Attest / baseline"], [
        [f"SELECT count(*) of the log ({rows:,} rows)", f"{base['count']:.2f}",
         f"verify_prediction_log {log_s / base['count']:.0f}x"],
        [f"COPY of the columns the log verification reads, unparsed ({rows:,} rows)",
         f"{base['log_copy']:.2f}", f"verify_prediction_log {log_s / base['log_copy']:.1f}x"],
        [f"sha256 of {rows:,} in-memory rows of the log's row material "
         f"({base['row_bytes']:.0f} B each)", f"{base['sha256']:.2f}",
         f"verify_prediction_log {log_s / base['sha256']:.1f}x"],
        [f"COPY of the audit table, unparsed ({events:,} events)", f"{base['chain_copy']:.2f}",
         f"verify_chain ({n_chain:,} events) {chain_s / base['chain_copy']:.1f}x"],
    ]))
    print()
    print(f"dossier_build: {total:.2f} s (rounds: "
          f"{', '.join(f'{r['total']:.2f}' for r in runs)}) against the {TARGET_S:.0f} s "
          f"target: {'met' if total <= TARGET_S else 'NOT met'}; evidence "
          f"{statistics.median(r['evidence'] for r in runs) / total:.0%} of it, rendering "
          f"{statistics.median(r['render'] for r in runs) / total:.0%}")
    print(f"the dossier states: prediction log verified, {facts['log']['checked']:,} rows, "
          f"{facts['log']['anchored']:,} anchored; audit chain verified, {n_chain:,} events; "
          f"question statuses {facts['statuses']}")
    return 0


# -- main ----------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        url = (audit_bench.read_env_file(args.env).get("DATABASE_URL") if args.env
               else os.environ.get("DATABASE_URL"))
        if not url:
            raise BadArguments("no DATABASE_URL (pass --env DIR/env, or set it)")
        bench_url = audit_bench.bench_database_url(url, args.database)
        work = Path(tempfile.mkdtemp(prefix="attest-bench-dossier-"))
    except (BenchError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    admin = None
    created = False
    try:
        try:
            admin = audit_bench.admin_connect(url)
        except Exception as exc:  # noqa: BLE001 - psycopg raises many classes
            raise BadArguments(f"cannot connect to DATABASE_URL: {exc}") from exc
        exists = audit_bench.database_exists(admin, args.database)
        if args.reuse and not exists:
            raise BadArguments(f"--reuse: there is no database {args.database}")
        if not args.reuse:
            audit_bench.drop_database(admin, args.database)
            admin.execute(f'CREATE DATABASE "{args.database}"')
        created = True
        # The data directory (artifacts, the checkpoint key, the dossier PDFs) must outlive
        # the run when the database does.
        data = Path(tempfile.gettempdir()) / f"{args.database}-data" if (
            args.keep or args.reuse) else work / "data"
        audit_bench.setup_django(data, bench_url)
        from django.conf import settings
        from django.core.management import call_command

        settings.ALLOWED_HOSTS = ["testserver"]
        if not args.reuse:
            call_command("migrate", verbosity=0, interactive=False)
            seconds, seeded = seed(args)
            print(f"seeded in {seconds:.0f} s: {seeded}", file=sys.stderr)
        return measure(args)
    except BenchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BadArguments) else 1
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if admin is not None:
            if created and not args.keep and not args.reuse:
                audit_bench.drop_database(admin, args.database)
            admin.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
