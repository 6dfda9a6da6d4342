"""Monitoring: drift for 30 features over 1,000,000 logged predictions, and the page.

One run, in a throw-away embedded deployment (SQLite under a temp directory, deleted at
the end):

1. a model with 30 numeric inputs is registered from a 20,000-row synthetic training
   file and released (its profile: decile bins per feature), then 1,000,000 predictions
   of it are written to the log, spread over 30 days, three features drifting in the last
   fifth (rows inserted directly with executemany; their row hashes are placeholders,
   the bench does not verify the log);
2. **baseline**: plain numpy on the same arrays in memory — PSI of every feature on the
   profile's bins (``np.histogram``) and the exact two-sample KS statistic against the
   training rows (sorted arrays, ``np.searchsorted``);
3. **Attest**: the aggregation job's pass over the 1M rows (read from the log, inputs
   parsed, binned, stored per hour and day), then the figures of a window over all of
   them from the stored counts, then a whole monitoring run (every window, the daily
   series, the health table, alerts), and the monitoring page and API for that version.

    .venv/bin/python bench/monitoring.py [--rows 1000000] [--features 30] [--rounds 5]
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.machine_info import (  # noqa: E402
    BenchError,
    Parser,
    django_setup,
    header_lines,
    table,
)

PASSWORD = "bench-password-not-secret"  # noqa: S105 - a throw-away database
MODEL_CARD = ("# bench-monitoring\n\n## Training data\nbench-cohort@1: 20,000 synthetic rows "
              "of 30 numeric features (bench/monitoring.py).\n")
RUNBOOK = ("## Redeploy\nRoll back to the previous version from the model page.\n\n"
           "## Retraining\nRetrain on the newest cohort when drift is flagged.\n")
DAYS = 30


def parse_args(argv):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="page renders timed (median)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.features < 2:
        parser.error("--rows must be at least 1000 and --features at least 2")
    return args


def setup(data_dir: Path) -> None:
    os.environ["ATTEST_DATA_DIR"] = str(data_dir)
    os.environ["ATTEST_LOG_LEVEL"] = "WARNING"
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "ATTEST_S3_BUCKET", "ATTEST_ARTIFACT_DIR",
                 "ATTEST_STATIC_ROOT"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django_setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0, interactive=False)


def synthetic(n: int, features: int, rng, *, drift: bool = False) -> np.ndarray:
    """Columns of four shapes: normal, log-normal, uniform, small integers."""
    cols = []
    for j in range(features):
        kind = j % 4
        if kind == 0:
            col = rng.normal(50 + j, 5 + j % 7, n)
        elif kind == 1:
            col = rng.lognormal(1 + j % 3 * 0.2, 0.5, n)
        elif kind == 2:
            col = rng.uniform(0, 10 + j, n)
        else:
            col = rng.integers(0, 12, n).astype(float)
        cols.append(col)
    x = np.column_stack(cols)
    if drift:
        for j in (0, 1, 2):
            x[:, j] = x[:, j] + x[:, j].std()
    return x


def release(args, train: np.ndarray, names: list[str], rng):
    """Users, the model, its dataset and a version in production since DAYS + 1 days."""
    import io

    import skops.io as sio
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.files.uploadedfile import SimpleUploadedFile
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from core.clock import replayed_time
    from core.context import acting_as
    from registry import release as rel
    from registry import services
    from registry.roles import ModelRole

    users = {}
    for name in ("owner", "pi", "irb", "viewer"):
        users[name] = get_user_model().objects.create_user(
            username=f"bench-{name}", password=PASSWORD, email=f"{name}@example.org")
    users["owner"].user_permissions.add(Permission.objects.get(codename="add_registeredmodel"))
    owner = get_user_model().objects.get(pk=users["owner"].pk)
    admin = get_user_model().objects.create_superuser(username="bench-admin", password=PASSWORD)
    z = (train - train.mean(axis=0)) / train.std(axis=0)
    weights = rng.normal(0, 0.4, train.shape[1])
    y = rng.random(len(train)) < 1 / (1 + np.exp(-(z @ weights)))
    labels = np.where(y, "positive", "negative")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(train, labels)
    csv = io.StringIO()
    csv.write(",".join([*names, "label"]) + "\n")
    for row, label in zip(train, labels, strict=True):
        csv.write(",".join(f"{v:.6g}" for v in row) + f",{label}\n")
    started = datetime.now(UTC) - timedelta(days=DAYS + 1)
    with replayed_time(started), acting_as(owner, via="command"):
        registered = services.registered_model_create(user=owner, name="bench-monitoring")
        for name, role in (("pi", ModelRole.APPROVER), ("irb", ModelRole.IRB),
                           ("viewer", ModelRole.VIEWER)):
            # signing roles are granted by administrators only
            grantor = admin if role != ModelRole.VIEWER else owner
            services.access_grant(user=grantor, model=registered, grantee=users[name], role=role)
        dataset = services.dataset_version_register(
            user=owner, name="bench-cohort", version="1", source="synthetic",
            data_file=SimpleUploadedFile("train.csv", csv.getvalue().encode()))
        version = services.model_version_register(
            user=owner, model=registered,
            artifact=SimpleUploadedFile("m.skops", sio.dumps(model)),
            metadata={"dataset": dataset.pk, "input_schema": names,
                      "metrics": {"overall": {"auc": 0.8}}, "confidence_threshold": 0.6,
                      "model_card": MODEL_CARD, "runbook": RUNBOOK})
        services.model_version_submit(user=owner, version=version)
        for who, meaning in (("pi", "pi_approval"), ("irb", "irb_approval")):
            # the signer is the actor, as in their own request (the reconciler checks it)
            with acting_as(users[who], via="command"):
                rel.signoff_record(user=users[who], version=version, meaning=meaning,
                                   decision="approve", password=PASSWORD)
        rel.version_promote(user=owner, version=version)
    version.refresh_from_db()
    return registered, version, model, users


def write_log(registered, version, model, live: np.ndarray, names: list[str], owner, *,
              chained: bool = False) -> float:
    """The log rows, oldest first, spread over the last DAYS days.

    ``chained``: real row and chain hashes (``inference.log``'s row_hash and chain_link,
    the model's chain head moved past them), so ``verify_prediction_log`` accepts the
    rows (bench/dossier.py); otherwise placeholders, which monitoring never reads."""
    import orjson
    from django.db import connection

    from inference.log import chain_link, row_hash, row_time_text
    from inference.models import CHAIN_GENESIS, Prediction, PredictionChainHead

    n = len(live)
    end = datetime.now(UTC) - timedelta(minutes=5)
    offsets = np.sort(np.random.default_rng(1).uniform(0, DAYS * 86400, n))[::-1]
    proba = model.predict_proba(live)[:, list(model.classes_).index("positive")]
    columns = [f.column for f in Prediction._meta.concrete_fields if f.column != "id"]
    # column names from the model itself, not from input
    sql = (f"INSERT INTO inference_prediction ({', '.join(columns)}) VALUES "  # noqa: S608
           f"({', '.join(['%s'] * len(columns))})")
    started = time.perf_counter()
    rows = []
    values = live.round(5).tolist()
    link = CHAIN_GENESIS
    for i in range(n):
        text = orjson.dumps(dict(zip(names, values[i], strict=True)), option=orjson.OPT_SORT_KEYS)
        score = float(proba[i])
        positive = score >= 0.5
        confidence = score if positive else 1 - score
        when = end - timedelta(seconds=float(offsets[i]))
        record = {
            "public_id": uuid.uuid4().hex, "model_id": registered.pk, "version_id": version.pk,
            "input_sha256": hashlib.sha256(text).hexdigest(), "input": text.decode(),
            "label": "positive" if positive else "negative", "score": round(score, 6),
            "confidence": round(confidence, 6),
            "probabilities": orjson.dumps({"negative": round(1 - score, 6),
                                           "positive": round(score, 6)}).decode(),
            "routing": "auto" if confidence >= 0.6 else "review",
            "reason": "" if confidence >= 0.6 else "low confidence", "ood": "[]",
            "shadow_version_id": None, "shadow_output": None, "requester_id": owner.pk,
            "runtime": "sklearn", "created_at": when.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "latency_ms": round(2 + (i % 97) / 10, 3), "cpu_ms": round(0.5 + (i % 13) / 20, 4),
            "batch_id": None, "row_index": None, "imputed": "[]",  # nothing imputed
            # monitoring reads neither hash: placeholders (verify_predictions would refuse them)
            "row_hash": "0" * 64, "chain_hash": "0" * 64, "purged_at": None}
        if chained:  # the values as the log reads them back: public_id with dashes, JSON parsed
            record["row_hash"] = row_hash(
                {**record, "public_id": str(uuid.UUID(record["public_id"])),
                 "probabilities": orjson.loads(record["probabilities"]), "ood": [],
                 "imputed": []},
                created_text=row_time_text(when))
            link = record["chain_hash"] = chain_link(link, record["row_hash"])
        rows.append([record[c] for c in columns])
        if len(rows) == 50_000:
            with connection.cursor() as cursor:
                cursor.executemany(sql, rows)
            rows = []
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)
    if chained:  # one writer, nothing else logging: the model's ids follow its chain
        last_id = Prediction.objects.filter(model_id=registered.pk).order_by("-id") \
            .values_list("id", flat=True).first()
        PredictionChainHead.objects.update_or_create(
            model_id=registered.pk, defaults={"head": link, "last_id": last_id, "count": n})
    return time.perf_counter() - started


def numpy_drift(live: np.ndarray, train: np.ndarray, profile: dict, names: list[str]):
    """Plain numpy over arrays in memory: PSI on the profile's bins, exact KS statistic."""
    t0 = time.perf_counter()
    psis = []
    for j, name in enumerate(names):
        column = profile["columns"][name]
        edges = np.asarray(column["quantiles"])
        ref = np.clip(np.asarray(column["bin_frequencies"]), 1e-4, None)
        counts, _ = np.histogram(np.clip(live[:, j], edges[0], edges[-1]), bins=edges)
        share = np.clip(counts / counts.sum(), 1e-4, None)
        psis.append(float(np.sum((share - ref) * np.log(share / ref))))
    t1 = time.perf_counter()
    ks = []
    for j in range(len(names)):
        a, b = np.sort(live[:, j]), np.sort(train[:, j])
        points = np.concatenate([a, b])
        d = np.abs(np.searchsorted(a, points, side="right") / len(a)
                   - np.searchsorted(b, points, side="right") / len(b)).max()
        ks.append(float(d))
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, psis, ks


def parse_only() -> float:
    """What reading the log costs before any counting: the job's own query (times, flags
    and inputs as text), the times parsed in bulk, the inputs' JSON parsed."""
    import orjson
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from inference.models import Prediction
    from monitoring.aggregation import epoch_seconds

    started = time.perf_counter()
    last = 0
    while True:
        chunk = list(Prediction.objects.filter(id__gt=last).order_by("id")
                     .annotate(created_text=Cast("created_at", TextField()),
                               input_text=Cast("input", TextField()),
                               ood_text=Cast("ood", TextField()))
                     .values_list("id", "version_id", "created_text", "input_text", "score",
                                  "label", "routing", "ood_text", "batch_id",
                                  "latency_ms")[:20_000])
        if not chunk:
            break
        epoch_seconds([r[2] for r in chunk])
        orjson.loads(("[" + ",".join(r[3] for r in chunk) + "]").encode())
        last = chunk[-1][0]
    return time.perf_counter() - started


def median_time(fn, rounds: int) -> tuple[float, float, float]:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def main(argv=None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="attest-bench-monitoring-"))
    try:
        setup(work)
        return run(args)
    except BenchError as exc:
        print(f"bench/monitoring.py: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args) -> int:
    from django.test import Client

    from monitoring.aggregation import aggregate_predictions
    from monitoring.evaluation import evaluation_context, window_figures
    from monitoring.live import production_intervals
    from monitoring.services import monitoring_run
    from monitoring.windows import rolling_windows

    print("\n".join(header_lines(("Django", "numpy", "scipy", "scikit-learn", "orjson"))))
    rng = np.random.default_rng(args.seed)
    names = [f"x{j:02d}" for j in range(args.features)]
    train = synthetic(20_000, args.features, rng)
    registered, version, model, users = release(args, train, names, rng)
    cut = int(args.rows * 0.8)
    live = np.vstack([synthetic(cut, args.features, rng),
                      synthetic(args.rows - cut, args.features, rng, drift=True)])
    load_s = write_log(registered, version, model, live, names, users["owner"])
    profile = version.dataset.profile
    # The oldest rows first in the log: the in-memory arrays in the same order.
    np_psi, np_ks, psis, _ks = numpy_drift(live, train, profile, names)
    numpy_total = np_psi + np_ks
    read_s = parse_only()
    t = time.perf_counter()
    watermark = aggregate_predictions(settle=timedelta(0))
    aggregate_s = time.perf_counter() - t
    intervals = production_intervals([version.pk])[version.pk]
    now = datetime.now(UTC)
    window = rolling_windows(now, intervals[-1].start)["since_promotion"]
    ctx = evaluation_context(version, since=window.start, now=now, intervals=intervals)
    figures = window_figures(window, ctx)
    if figures["predictions"]["n"] != args.rows:
        raise BenchError(f"the window holds {figures['predictions']['n']} predictions, not "
                         f"{args.rows}")
    ours = {d["feature"]: d["psi"] for d in figures["drift"]}
    worst = max(abs(ours[name] - psis[j]) for j, name in enumerate(names))
    window_s, window_lo, window_hi = median_time(
        lambda: window_figures(window, evaluation_context(
            version, since=window.start, now=now, intervals=intervals)), args.rounds)
    t = time.perf_counter()
    run_ = monitoring_run(version=version, notify=False)
    run_s = time.perf_counter() - t
    client = Client()
    client.force_login(users["viewer"])
    page_url = f"/models/{registered.name}/monitoring/"

    def get(url):
        response = client.get(url)
        if response.status_code != 200:
            raise BenchError(f"{url} answered {response.status_code}")
        return response

    page = median_time(lambda: get(page_url), args.rounds)
    api = median_time(lambda: get(f"/api/v1{page_url}"), args.rounds)
    first = (now - timedelta(days=DAYS)).date().isoformat()
    ranged = median_time(lambda: get(f"{page_url}?since={first}"), args.rounds)
    detail = median_time(lambda: get(f"/models/{registered.name}/"), args.rounds)
    per_row_us = aggregate_s / args.rows * 1e6
    rows = [
        ["numpy: PSI, 30 features on the profile's bins (in memory)", f"{np_psi:.2f}", "-", ""],
        ["numpy: exact KS statistic against the training rows", f"{np_ks:.2f}", "-", ""],
        ["**numpy: PSI + KS (baseline)**", f"**{numpy_total:.2f}**", "1.00x", "baseline"],
        [f"Attest: read the {args.rows:,} rows from the log, parse times and inputs (part of "
         "the next row)",
         f"{read_s:.2f}", f"{read_s / numpy_total:.2f}x",
         "what any computation from the log pays before counting"],
        [f"**Attest: aggregation pass over the {args.rows:,} rows (read, parse, bin, store)**",
         f"**{aggregate_s:.2f}**", f"**{aggregate_s / numpy_total:.2f}x**",
         f"once per row ever: {per_row_us:.1f} µs per logged prediction, after the fact"],
        [f"**Attest: drift of a window over the {args.rows:,} predictions, from the stored "
         "counts**",
         f"**{window_s:.3f}**", f"**{window_s / numpy_total:.4f}x**",
         f"median of {args.rounds} ({window_lo:.3f}–{window_hi:.3f}); PSI, KS (approx.) for "
         "30 features + rates, latency, performance"],
        ["Attest: a whole monitoring run (4 windows, 30 daily windows, health, alerts, stored)",
         f"{run_s:.2f}", f"{run_s / numpy_total:.2f}x", f"{run_.figures.count()} figures"],
    ]
    print()
    print(f"{args.rows:,} predictions × {args.features} features, {DAYS} days; log written in "
          f"{load_s:.1f} s (executemany); counts through row {watermark}. Largest |PSI "
          f"difference| Attest vs numpy on the same rows: {worst:.2e}.")
    print()
    print(table(["operation", "seconds", "ratio vs numpy", "note"], rows))
    print()
    page_rows = [
        ["monitoring page (7-day window)", f"{page[0] * 1000:.0f}",
         f"{page[1] * 1000:.0f}–{page[2] * 1000:.0f}", f"{page[0] / detail[0]:.1f}x",
         "≤ 500 ms" + (" met" if page[0] <= 0.5 else " NOT met")],
        ["GET /api/v1/models/{model}/monitoring/", f"{api[0] * 1000:.0f}",
         f"{api[1] * 1000:.0f}–{api[2] * 1000:.0f}", f"{api[0] / detail[0]:.1f}x", ""],
        [f"monitoring page, a {DAYS}-day date range (computed on demand from counts)",
         f"{ranged[0] * 1000:.0f}", f"{ranged[1] * 1000:.0f}–{ranged[2] * 1000:.0f}",
         f"{ranged[0] / detail[0]:.1f}x", ""],
        ["model page (baseline)", f"{detail[0] * 1000:.0f}",
         f"{detail[1] * 1000:.0f}–{detail[2] * 1000:.0f}", "1.00x", "baseline"],
    ]
    print(table([f"page (version with {args.rows:,} predictions)", "ms (median)", "range",
                 "ratio vs model page", "target"], page_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
