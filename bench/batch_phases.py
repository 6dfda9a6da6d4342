"""Where a batch chunk's time goes: each phase of the worker's chunk path, timed alone.

``bench/predict.py`` times the whole batch path against its baseline; this script
takes the same path apart, on the same models and data, one phase after another
with no overlap (the worker overlaps chunk k's commit with chunk k+1's preparation),
in microseconds per row:

validate   ``inference.columnar.check_many`` plus picking the valid rows and their
           scoring matrix (what ``batch_chunk_prepare`` does before scoring);
score      ``inference.services.score_rows``: ``predict_proba`` on the matrix,
           routing, the log row with its two sha256 (the input's and the row's);
predict    of which ``predict_proba`` alone;
format     building the chunk's COPY rows (``inference.batches.logwrite.log_tuple``;
           psycopg's ``write_row`` quotes them inside the COPY, counted under commit);
commit     ``inference.batches.runner.batch_chunk_commit``: lock the job and the chain
           head, COPY the log rows and review items, save the progress, commit;
free       dropping the chunk's objects.

Then the COPY alone, the same rows (by ``write_row``) into a copy of the log table (its six indexes),
with the raw input in a ``json`` column (what Attest uses) and in ``jsonb`` (what it
used until ``inference`` 0007): what PostgreSQL spends per row on each.

    scripts/services.sh start /tmp/pred-svc
    .venv/bin/python bench/batch_phases.py --env-file /tmp/pred-svc/env [--rows 200000]

Exit status: 0 done, 1 the benchmark failed, 2 bad arguments (one-line reason).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import predict as bp
from machine_info import BadArguments, BenchError, Parser, header_lines, table  # noqa: I001

PROG = "bench/batch_phases.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n", 1)[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-file", type=Path, metavar="FILE",
                        help="read DATABASE_URL from this file (scripts/services.sh's DIR/env)")
    parser.add_argument("--models", default="lr,rf", help="lr and/or rf (default lr,rf)")
    parser.add_argument("--rows", type=int, default=200_000,
                        help="rows per model, in chunks of --chunk (default 200000)")
    parser.add_argument("--chunk", type=int, default=20_000, help="rows per chunk (default 20000)")
    parser.add_argument("--seed", type=int, default=7, help="seed for the split and models")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models or set(args.models) - {"lr", "rf"}:
        parser.error(f"--models takes lr and/or rf, not {','.join(args.models)!r}")
    if not 1_000 <= args.chunk <= 200_000:
        parser.error(f"--chunk must be between 1000 and 200000, not {args.chunk}")
    if not args.chunk <= args.rows <= 5_000_000:
        parser.error(f"--rows must be between --chunk and 5000000, not {args.rows}")
    if args.env_file is not None and not args.env_file.is_file():
        parser.error(f"--env-file {args.env_file}: no such file")
    return args


def phases(m: bp.BenchModel, args: argparse.Namespace, requester) -> tuple[dict, list[str]]:
    """Seconds per phase over ``args.rows`` rows, and the chunks' COPY text."""
    import numpy as np
    from django.utils import timezone

    from core.gc import gc_paused
    from inference import services
    from inference.batches import logwrite, runner
    from inference.columnar import check_many
    from inference.models import BatchJob, BatchStatus
    from registry.loading import version_model_load

    version = m.version
    loaded = version_model_load(version=version, purpose="batch")
    base = np.asarray(m.rows, dtype=float)
    n = args.chunk
    job = BatchJob.objects.create(
        model=version.model, version=version, requester=requester, file_name="phases.csv",
        file_format="csv", input_sha256="0" * 64, input_key="bench", input_size=0,
        total_rows=args.rows, chunk_size=n, chunk_seconds=0, queue="default",
        status=BatchStatus.RUNNING, started_at=timezone.now())
    schema, profile = version.input_schema, version.dataset.profile
    names = [f["name"] for f in schema]
    spent = dict.fromkeys(("validate", "score", "predict", "format", "commit", "free"), 0.0)
    copies: list[list[tuple]] = []
    clock = time.perf_counter
    for index, start in enumerate(range(0, args.rows - n + 1, n)):
        matrix = base[np.arange(start, start + n) % len(base)]
        records = [(start + i, dict(zip(m.features, r, strict=True)), None)
                   for i, r in enumerate(matrix.tolist())]
        with gc_paused():
            t0 = clock()
            screened = check_many([v for _i, v, _p in records], schema=schema, profile=profile,
                                  path="row")
            positions, indices, errors = runner._errors_of(
                records, screened.checked, reject_ood=version.ood_policy == "reject")
            valid = [screened.checked[p] for p in positions]
            scoring = runner._matrix_of(screened, positions, valid, names)
            t1 = clock()
            services._probabilities(loaded, valid, scoring)
            t2 = clock()
            rows = services.score_rows(model=job.model, version=version, checked=valid,
                                       loaded=loaded, requester=job.requester, started=t2,
                                       batch=job, row_indices=indices, matrix=scoring)
            t3 = clock()
            for r in rows:  # the chain links are drawn under the head's lock, at commit
                r.values["chain_hash"] = "0" * 64
            constant = logwrite.log_constant(rows)
            text = [logwrite.log_tuple(constant, start + i + 1, r) for i, r in enumerate(rows)]
            t4 = clock()
        if errors or len(rows) != n:
            raise BenchError(f"chunk {index}: {len(errors)} rows refused; the bench rows are "
                             "meant to be valid")
        copies.append(text)
        prepared = runner.PreparedChunk(index, start, n, rows, None, 0, {})
        t5 = clock()
        if not runner.batch_chunk_commit(job=job, prepared=prepared):
            raise BenchError(f"chunk {index} was not committed")
        t6 = clock()
        del rows, prepared, screened, valid, records, text
        t7 = clock()
        spent["validate"] += t1 - t0
        spent["predict"] += t2 - t1
        spent["score"] += (t2 - t1) + (t3 - t2)
        spent["format"] += t4 - t3
        spent["commit"] += t6 - t5
        spent["free"] += t7 - t6
        gc.collect()
    return spent, copies


def copy_alone(copies: list[str]) -> dict[str, float]:
    """Seconds to COPY the lines into a copy of the log table, input as json and as jsonb."""
    from django.db import connection, transaction

    from inference.batches import logwrite
    from inference.models import Prediction

    table_name = Prediction._meta.db_table
    columns = ", ".join(logwrite._LOG_COLUMNS)
    found = {}
    for kind in ("json", "jsonb"):
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_log_copy")
            # INCLUDING INDEXES: the log's six (primary key, public_id, version+id,
            # model+time, batch+row, input_sha256).
            cursor.execute(f"CREATE TABLE bench_log_copy (LIKE {table_name} INCLUDING DEFAULTS "
                           "INCLUDING INDEXES) WITH (autovacuum_enabled = false)")
            cursor.execute(f"ALTER TABLE bench_log_copy ALTER COLUMN input TYPE {kind}")
        t0 = time.perf_counter()
        for chunk in copies:
            with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(
                    f"COPY bench_log_copy ({columns}) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
        found[kind] = time.perf_counter() - t0
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE bench_log_copy")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        url = bp.database_url(args)
        work = Path(tempfile.mkdtemp(prefix="attest-bench-phases-"))
    except (BadArguments, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    db_name = None
    try:
        bench_url, db_name = bp.create_database(url)
        bp.setup_django(bp.base_env(work, bench_url))
        print("\n".join(header_lines(("Django", "psycopg", "scikit-learn", "numpy",
                                        "orjson"))))
        print(f"database: {bp.postgres_version()} on loopback")
        models = bp.build_models(args, work)
        released = bp.release_models(models, work)
        out = []
        for m in models:
            spent, copies = phases(m, args, released["users"]["clinician"])
            rows = len(copies) * args.chunk
            for name, seconds in spent.items():
                out.append([m.key, name, f"{seconds * 1e6 / rows:.2f}", ""])
            alone = copy_alone(copies)
            for kind, seconds in alone.items():
                note = "what Attest uses" if kind == "json" else "until inference 0007"
                out.append([m.key, f"COPY alone, input as {kind}", f"{seconds * 1e6 / rows:.2f}",
                            note])
        print(f"\n{args.rows:,} rows per model in chunks of {args.chunk:,}, each phase timed "
              "alone (no overlap)\n")
        print(table(["model", "phase", "µs/row", "note"], out))
        return 0
    except BenchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    finally:
        if db_name is not None:
            bp.drop_database(url, db_name)


if __name__ == "__main__":
    sys.exit(main())
