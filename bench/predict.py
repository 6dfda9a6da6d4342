"""Prediction latency and throughput: Attest's real endpoint against minimal servers.

Every Attest number is printed next to baselines measured in the same run, on
the same machine, against the same fitted model and the same request rows:

raw        in-process ``predict_proba`` on one row: the scikit-learn estimator on
           a 1 x n numpy array, and the ONNX conversion in onnxruntime (what
           Attest's serving runtime may choose); p50/p95 in microseconds;
(b)        a minimal FastAPI endpoint: pydantic validation of the same features
           and ranges, then ``predict_proba``; served by uvicorn with 2 worker
           processes (the web servers' default count), access log on;
(full)     Attest: ``POST /api/v1/models/{name}/predict/`` with a clinician's API
           token, served as the image serves it (``gunicorn -c deploy/gunicorn.conf.py``,
           2 workers x 4 gthread threads unless ``--web-shape`` says otherwise);
           PostgreSQL with persistent connections,
           access log on: validation, OOD check, scoring, routing, the prediction log row
           with its row hash (and a review item when routed) in one transaction;
(c)        ``mlflow models serve`` on the same estimator (2 uvicorn workers), from a
           separate virtualenv (``--mlflow-python``); skipped, with the reason, when
           that is not installed or does not start offline.

Each server gets ``--warmup`` unmeasured requests; then, in each of ``--rounds``
rounds, ``--requests`` requests from 1 client (p50/p95) and ``--requests`` from
``--clients`` concurrent clients (req/s, p50/p95). The servers of a model run side by
side and are measured in turn, in an order rotated every round, so a change in the
machine's load during the run falls on all of them alike; each figure is the median
over the rounds (the spread is printed). Clients are threads with one persistent
HTTP/1.1 connection each (``http.client``), on 127.0.0.1; they share the machine's
cores with the servers, the same way for every server.

batch      ``--batch-rows`` rows scored and logged by the batch worker's own chunk
           function (``inference.batches.runner.batch_chunk_process``: column-wise validation
           and OOD check, scoring, routing, row hashes, COPY of the log rows and review
           items and the job's progress, one transaction per ``--chunk`` rows) against
           raw ``predict_proba`` on the same chunk + a plain ``COPY`` of the same
           rows (input, label, score, confidence, probabilities, time) into an
           unindexed table, run once before and once after Attest's run (the mean is
           the baseline, so a drift of the machine's speed falls on both sides).
           Rows/s and ratio.

The script creates its own PostgreSQL database next to the one ``DATABASE_URL``
names (or ``--env-file DIR/env`` from ``scripts/services.sh start DIR``), migrates
it, and drops it at the end unless ``--keep``. Artifacts go to a temp directory;
S3 and Celery settings are ignored. Nothing is downloaded at run time.

    scripts/services.sh start /tmp/pred-svc
    .venv/bin/python bench/predict.py --env-file /tmp/pred-svc/env [--models lr,rf]
    scripts/services.sh stop /tmp/pred-svc

Exit status: 0 done (targets met or not: they are printed), 1 the benchmark
failed, 2 bad arguments (one-line reason).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

ROOT = Path(__file__).resolve().parent.parent
PROG = "bench/predict.py"
DEFAULT_MLFLOW_PYTHON = "/tmp/mlflow-venv/bin/python"
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
PASSWORD = "bench-attest-password-1"  # noqa: S105 - throw-away users in a throw-away database

# The targets (see docs/performance.md, "Predict").
TARGET_P50_RATIO = 2.0  # full-path p50 within 2x of (b)
TARGET_P95_MS = 10.0  # full-path p95, 1 client
# full-path throughput against (c) with concurrent clients, per model: where scoring
# dominates (the forest) and where the request path does (the logistic regression)
TARGET_VS_MLFLOW = {"rf": 5.0, "lr": 1.0}
TARGET_BATCH_RATIO = 2.0  # batch time <= 2x the baseline



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n", 1)[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-file", type=Path, metavar="FILE",
                        help="read DATABASE_URL from this file of `export NAME=value` lines "
                             "(e.g. DIR/env from scripts/services.sh start DIR)")
    parser.add_argument("--models", default="lr,rf",
                        help="comma-separated: lr (standardized logistic regression), rf (200-tree "
                             "random forest); default lr,rf")
    parser.add_argument("--requests", type=int, default=2000,
                        help="measured requests per server and client count (default 2000)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurement rounds per server, servers taken in turn, figures "
                             "are the median over rounds (default 3)")
    parser.add_argument("--clients", type=int, default=8,
                        help="concurrent clients for the throughput run (default 8)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="unmeasured requests per server before measuring (default 200)")
    parser.add_argument("--raw-calls", type=int, default=2000,
                        help="in-process predict_proba calls for the raw row (default 2000)")
    parser.add_argument("--batch-rows", type=int, default=1_000_000,
                        help="rows for the batch comparison, 0 to skip (default 1000000)")
    parser.add_argument("--chunk", type=int, default=5000,
                        help="rows of the first batch chunk / transaction (default 5000, "
                             "ATTEST_BATCH_CHUNK_ROWS's default)")
    parser.add_argument("--chunk-seconds", type=float, default=1.0,
                        help="seconds of work each later chunk is sized to, as jobs the "
                             "service creates do (default 1.0, ATTEST_BATCH_CHUNK_SECONDS's "
                             "default); 0 keeps every chunk at --chunk rows")
    parser.add_argument("--mlflow-python", default=os.environ.get("ATTEST_BENCH_MLFLOW_PYTHON",
                                                                  DEFAULT_MLFLOW_PYTHON),
                        help="python of a separate virtualenv with mlflow and the same "
                             f"scikit-learn (default {DEFAULT_MLFLOW_PYTHON})")
    parser.add_argument("--skip-mlflow", action="store_true", help="skip the mlflow row")
    parser.add_argument("--web-shape", default="2x4",
                        help="gunicorn's WORKERSxTHREADS for the (full) rows (default 2x4, "
                             "the image's)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="also record py-spy flame graphs of a web server worker under the "
                             "8-client load, and cProfile the first batch chunk, into DIR")
    parser.add_argument("--keep", action="store_true",
                        help="keep the benchmark database and temp directory (printed)")
    parser.add_argument("--seed", type=int, default=7, help="seed for the split and models")
    args = parser.parse_args(argv)
    try:
        args.web_shape = web_shape(args.web_shape)
    except ValueError as exc:
        parser.error(f"--web-shape: {exc}")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models or set(args.models) - {"lr", "rf"}:
        parser.error(f"--models takes lr and/or rf, not {','.join(args.models)!r}")
    for name, low, high in (("requests", 10, 1_000_000), ("rounds", 1, 20), ("clients", 1, 64),
                            ("warmup", 0, 100_000), ("raw_calls", 10, 1_000_000),
                            ("batch_rows", 0, 10_000_000), ("chunk", 100, 1_000_000)):
        value = getattr(args, name)
        if not low <= value <= high:
            parser.error(f"--{name.replace('_', '-')} must be between {low} and {high}, "
                         f"not {value}")
    if not 0 <= args.chunk_seconds <= 60:  # also refuses nan
        parser.error(f"--chunk-seconds must be between 0 and 60, not {args.chunk_seconds}")
    if args.env_file is not None and not args.env_file.is_file():
        parser.error(f"--env-file {args.env_file}: no such file")
    return args


# -- environment and database ------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip().removeprefix("export ").strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if sep:
            words = shlex.split(value)
            found[name.strip()] = words[0] if words else ""
    return found


def database_url(args: argparse.Namespace) -> str:
    url = (read_env_file(args.env_file).get("DATABASE_URL") if args.env_file
           else os.environ.get("DATABASE_URL"))
    if not url or not url.startswith(("postgres://", "postgresql://")):
        raise BadArguments("needs a PostgreSQL DATABASE_URL (environment or --env-file DIR/env "
                           "from scripts/services.sh start DIR)")
    return url


def _pg_connect(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def create_database(url: str) -> tuple[str, str]:
    """A new database beside the one ``url`` names; returns (its url, its name)."""
    from urllib.parse import urlsplit, urlunsplit

    name = f"attest_bench_{uuid.uuid4().hex[:10]}"
    try:
        with _pg_connect(url) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - psycopg raises many classes
        raise BenchError(f"cannot create a database on {urlsplit(url).hostname}:"
                         f"{urlsplit(url).port}: {exc.__class__.__name__}: {exc}") from exc
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}")), name


def drop_database(url: str, name: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    # WITH (FORCE) ends an autovacuum worker the batch part's million rows have woken
    # only for a role in pg_signal_backend (scripts/services.sh grants it): otherwise
    # wait for the worker to finish, up to 30 s.
    for attempt in range(30):
        try:
            with _pg_connect(url) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == 29:
                raise
            time.sleep(1)


def base_env(work: Path, db_url: str) -> dict[str, str]:
    """The environment of this process and of the Attest servers it starts."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ATTEST_S3_", "AWS_", "CELERY_", "ATTEST_ARTIFACT"))}
    env.update({
        "DATABASE_URL": db_url, "ATTEST_DATA_DIR": str(work / "data"),
        "ATTEST_LOG_LEVEL": "WARNING", "ATTEST_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "portal.settings", "PYTHONDONTWRITEBYTECODE": "1",
        # One BLAS/OpenMP thread everywhere: 2 cores, several processes.
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
        "ATTEST_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        # No embedded beat: its stale-job sweep would take the batch row the bench drives
        # by hand (batch_chunks_run) for a stalled job and fail it (no stored input file).
        "ATTEST_EMBEDDED_SCHEDULER": "0",
    })
    return env


def setup_django(env: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(env)
    django_setup()


# -- models ------------------------------------------------------------------------------


@dataclass
class BenchModel:
    key: str
    name: str
    title: str
    estimator: Any
    features: list[str]
    train_csv: Path
    rows: list[list[float]]  # held-out rows inside the schema's ranges, feature order
    version: Any = None
    schema: list[dict] = field(default_factory=list)
    runtime: dict = field(default_factory=dict)
    onnx: Any = None


def build_models(args: argparse.Namespace, work: Path) -> list[BenchModel]:
    """The demo's data: breast-cancer (WDBC) as bundled with scikit-learn, 75/25 split."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame["diagnosis"] = np.where(frame.pop("target") == 0, "malignant", "benign")
    features = [str(name) for name in bunch.feature_names]
    train, test = train_test_split(frame, test_size=0.25, random_state=args.seed,
                                   stratify=frame["diagnosis"])
    csv = work / "wdbc-train.csv"
    train.to_csv(csv, index=False)
    lo, hi = train[features].min(), train[features].max()
    inside = test[((test[features] >= lo) & (test[features] <= hi)).all(axis=1)]
    rows = inside[features].to_numpy(dtype=float).tolist()
    # Fitted on arrays (no feature names), so every server feeds the estimator the same
    # 1 x 30 float array and scikit-learn has no names to check.
    x, y = train[features].to_numpy(dtype=float), train["diagnosis"].to_numpy()
    built = []
    for key in args.models:
        if key == "lr":
            est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
            title = "logistic regression (StandardScaler + LogisticRegression, 30 features)"
        else:
            est = RandomForestClassifier(n_estimators=200, random_state=args.seed)
            title = "random forest (200 trees, 30 features)"
        est.fit(x, y)
        built.append(BenchModel(key, f"bench-{key}", title, est, features, csv, rows))
    return built


def release_models(models: list[BenchModel], work: Path) -> dict:
    """Users, dataset and one released production version per model, through the services."""
    import skops.io as sio
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.files import File
    from django.core.management import call_command

    from portal.tokens import api_token_create
    from registry import release, services
    from registry.models import ServingRuntime
    from registry.roles import ModelRole

    call_command("migrate", verbosity=0, interactive=False)
    User = get_user_model()
    users = {}
    for name in ("owner", "pi", "irb", "clinician"):
        users[name] = User.objects.create_user(username=f"bench-{name}", password=PASSWORD,
                                               email=f"{name}@example.org")
    users["owner"].user_permissions.add(Permission.objects.get(
        codename="add_registeredmodel", content_type__app_label="registry"))
    users["owner"] = User.objects.get(pk=users["owner"].pk)
    users["admin"] = User.objects.create_superuser(username="bench-admin", password=PASSWORD)
    with open(models[0].train_csv, "rb") as handle:
        dataset = services.dataset_version_register(
            user=users["owner"], name="wdbc-bench", version="1",
            data_file=File(handle, name="wdbc-train.csv"),
            source="WDBC as bundled with scikit-learn (bench/predict.py)")
    for m in models:
        registered = services.registered_model_create(user=users["owner"], name=m.name)
        for who, role in (("pi", ModelRole.APPROVER), ("irb", ModelRole.IRB),
                          ("clinician", ModelRole.CLINICIAN)):
            grantor = users["admin"] if role != ModelRole.CLINICIAN else users["owner"]
            services.access_grant(user=grantor, model=registered, grantee=users[who],
                                  role=role)
        version = services.model_version_register(
            user=users["owner"], model=registered,
            artifact=File(io.BytesIO(sio.dumps(m.estimator)), name=f"{m.key}.skops"),
            metadata={"dataset": dataset.pk, "input_schema": m.features,
                      "trusted_types": TRUSTED_TYPES if m.key == "rf" else [],
                      "output_schema": {"positive_label": "malignant"},
                      "confidence_threshold": 0.85, "ood_policy": "review"})
        services.model_version_submit(user=users["owner"], version=version)
        for who, meaning in (("pi", "pi_approval"), ("irb", "irb_approval")):
            release.signoff_record(user=users[who], version=version, meaning=meaning,
                                   decision="approve", password=PASSWORD)
        m.version = release.version_promote(user=users["owner"], version=version)
        m.schema = m.version.input_schema
        runtime = ServingRuntime.objects.filter(version=m.version).first()
        m.runtime = {} if runtime is None else {
            "status": runtime.status, "single": runtime.single_runtime,
            "batch": runtime.batch_runtime}
        joblib_dump(m.estimator, work / f"{m.key}.joblib")
    _row, token = api_token_create(user=users["clinician"], name="bench")
    explain_jobs_wait()
    return {"users": users, "token": token}


def explain_jobs_wait(timeout: float = 600.0) -> None:
    """Wait for the explanation figures jobs that submitting and releasing started (in
    this process's threads: the embedded shape): their LIME and SHAP work would share
    the cores and this process's interpreter with the clients measured next."""
    from explain.models import ACTIVE_STATUSES, ExplanationJob

    deadline = time.monotonic() + timeout
    while ExplanationJob.objects.filter(status__in=ACTIVE_STATUSES).exists():
        if time.monotonic() > deadline:
            raise BenchError(f"explanation jobs still running after {timeout:.0f} s")
        time.sleep(0.5)


def joblib_dump(estimator, path: Path) -> None:
    import joblib

    joblib.dump(estimator, path)


# -- in-process raw scoring --------------------------------------------------------------


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return pick(0.50), pick(0.95)


def app_in_process(m: BenchModel, token: str, calls: int,
                   profile_to: Path | None = None) -> tuple[float, float, float]:
    """Attest's WSGI application called directly, one prediction per call, as a web
    server would call it but without one: (p50 µs, p95 µs, CPU µs per call). What is
    left of a (full) row's server CPU is the web server's own. With ``profile_to``,
    another ``calls`` calls run under cProfile after the measured ones (stats there)."""
    import sys as _sys

    from portal.wsgi import application

    path = f"/api/v1/models/{m.name}/predict/"
    bodies = [json.dumps({"inputs": dict(zip(m.features, r, strict=True))}).encode()
              for r in m.rows]
    status: list[str] = []

    def start_response(line, headers, exc_info=None):
        status.append(line)

    def call(body: bytes) -> None:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
            "RAW_URI": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8000", "HTTP_AUTHORIZATION": f"Bearer {token}",
            "HTTP_ACCEPT": "*/*", "HTTP_CONNECTION": "keep-alive",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "wsgi.errors": _sys.stderr,
            "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False}
        b"".join(application(environ, start_response))

    for i in range(min(200, calls)):
        call(bodies[i % len(bodies)])
    durations = []
    cpu = time.process_time()
    for i in range(calls):
        started = time.perf_counter()
        call(bodies[i % len(bodies)])
        durations.append((time.perf_counter() - started) * 1e6)
    cpu_us = (time.process_time() - cpu) / calls * 1e6
    bad = Counter(s for s in status if not s.startswith("200"))
    if bad:
        raise BenchError(f"the app answered {dict(bad)} in process")
    if profile_to is not None:
        import cProfile

        profiled = cProfile.Profile(time.thread_time)  # CPU, not waits on the database
        profiled.enable()
        for i in range(calls):
            call(bodies[i % len(bodies)])
        profiled.disable()
        profiled.dump_stats(str(profile_to))
    return (*percentiles(durations), cpu_us)


def raw_latency(m: BenchModel, calls: int) -> dict[str, tuple[float, float]]:
    """p50/p95 in microseconds of one-row predict_proba, in this process."""
    import numpy as np

    rows = [np.asarray([r], dtype=float) for r in m.rows]
    found = {}
    timed: list[tuple[str, Callable[[Any], Any], list]] = [
        ("scikit-learn predict_proba", m.estimator.predict_proba, rows)]
    try:
        import onnxruntime as ort
        from skl2onnx import to_onnx

        options = {id(m.estimator): {"zipmap": False}} if m.key == "rf" else None
        if m.key == "lr":
            options = {id(m.estimator.steps[-1][1]): {"zipmap": False}}
        onx = to_onnx(m.estimator, rows[0].astype(np.float32), options=options,
                      target_opset={"": 17, "ai.onnx.ml": 3})
        session = ort.InferenceSession(onx.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        proba_name = session.get_outputs()[1].name
        frows = [r.astype(np.float32) for r in rows]
        timed.append(("onnxruntime session.run", lambda x: session.run(
            [proba_name], {input_name: x}), frows))
    except Exception as exc:  # noqa: BLE001 - reported as a skipped row
        found["onnxruntime session.run"] = f"skipped: {exc.__class__.__name__}: {exc}"[:120]
    for label, fn, inputs in timed:
        for i in range(min(200, calls)):
            fn(inputs[i % len(inputs)])
        durations = []
        for i in range(calls):
            x = inputs[i % len(inputs)]
            started = time.perf_counter()
            fn(x)
            durations.append((time.perf_counter() - started) * 1e6)
        found[label] = percentiles(durations)
    return found


# -- servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-1500:]
        return ""

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_server(name: str, cmd: list[str], env: dict[str, str], work: Path, *,
                 ready: Callable[[int], bool], port: int, timeout: float = 90) -> Server:
    log_path = work / f"{name}.log"
    handle = open(log_path, "wb")  # noqa: SIM115 - the server owns it until it exits
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=handle,
                               stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    server = Server(name, port, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with status {process.returncode}: "
                             f"{server.tail()[-600:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if ready(port):
                return server
        time.sleep(0.25)
    server.stop()
    raise BenchError(f"{name} did not answer on 127.0.0.1:{port} within {timeout:.0f} s: "
                     f"{server.tail()[-600:]}")


def http_ready(path: str, method: str = "GET", body: bytes | None = None,
               headers: dict | None = None) -> Callable[[int], bool]:
    def probe(port: int) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            return conn.getresponse().status < 500
        finally:
            conn.close()
    return probe


FASTAPI_APP = '''
"""Minimal FastAPI baseline written by bench/predict.py: validate, predict, answer."""
import json
import os
import re

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, create_model

SPEC = json.loads(open(os.environ["BENCH_SPEC"]).read())
MODEL = joblib.load(SPEC["model"])
LABELS = [str(c) for c in MODEL.classes_]
FIELDS = {f"f{i}": (float, Field(alias=f["name"], ge=f["min"], le=f["max"], allow_inf_nan=False))
          for i, f in enumerate(SPEC["features"])}
KEYS = list(FIELDS)
Inputs = create_model("Inputs", __config__=ConfigDict(extra="forbid"), **FIELDS)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: Inputs


app = FastAPI()


@app.post("/predict")
def predict(request: PredictRequest):
    x = np.array([[getattr(request.inputs, k) for k in KEYS]], dtype=float)
    p = MODEL.predict_proba(x)[0]
    k = int(p.argmax())
    return {"label": LABELS[k], "confidence": float(p[k]),
            "probabilities": {label: float(v) for label, v in zip(LABELS, p)}}
'''

# `uvicorn --workers 2` binds its shared socket with proto 0, so asyncio does not set
# TCP_NODELAY on accepted connections, and h11's separate header and body writes then
# wait for the client's delayed ACK: ~44 ms per request instead of ~1 ms. Binding the
# socket ourselves (IPPROTO_TCP, TCP_NODELAY) and handing it to uvicorn's own
# multiprocess supervisor gives the same 2 workers without the stall.
FASTAPI_SERVE = '''
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

if __name__ == "__main__":  # the workers are spawned: they import this file again
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.listen(2048)
    sock.set_inheritable(True)
    config = uvicorn.Config("bench_fastapi_app:app", workers=2, log_level="info")
    Multiprocess(config, sockets=[sock]).run()
'''

MLFLOW_SAVE = '''
import json
import sys

import joblib
import mlflow.sklearn

mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], pyfunc_predict_fn="predict_proba",
                          skops_trusted_types=json.loads(sys.argv[3]) or None)
'''


def start_fastapi(m: BenchModel, env: dict[str, str], work: Path) -> Server:
    app_dir = work / "fastapi_app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "bench_fastapi_app.py").write_text(FASTAPI_APP)
    (app_dir / "bench_fastapi_serve.py").write_text(FASTAPI_SERVE)
    spec = work / f"fastapi-{m.key}.json"
    spec.write_text(json.dumps({"model": str(work / f"{m.key}.joblib"), "features": [
        {"name": f["name"], "min": f["min"], "max": f["max"]} for f in m.schema]}))
    port = free_port()
    body = json.dumps({"inputs": dict(zip(m.features, m.rows[0], strict=True))}).encode()
    return start_server(
        f"uvicorn-{m.key}", [sys.executable, str(app_dir / "bench_fastapi_serve.py"), str(port)],
        {**env, "BENCH_SPEC": str(spec), "PYTHONPATH": str(app_dir)}, work, port=port,
        ready=http_ready("/predict", "POST", body, {"Content-Type": "application/json"}))


# The (full) rows: Attest's web service as the image's command starts it.
@dataclass(frozen=True)
class WebShape:
    workers: int
    threads: int

    @property
    def key(self) -> str:
        return f"gunicorn-{self.workers}x{self.threads}"

    @property
    def label(self) -> str:
        return f"gunicorn {self.workers}x{self.threads} gthread"


def web_shape(text: str) -> WebShape:
    """``WORKERSxTHREADS``, e.g. ``2x4``."""
    found = re.fullmatch(r"([1-9][0-9]?)x([1-9][0-9]?)", text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not WORKERSxTHREADS, e.g. 2x4")
    return WebShape(int(found[1]), int(found[2]))


def start_web(shape: WebShape, env: dict[str, str], work: Path) -> Server:
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    return start_server(
        shape.key, [gunicorn, "-c", str(ROOT / "deploy/gunicorn.conf.py"),
                    "--bind", f"127.0.0.1:{port}", "--worker-tmp-dir", str(work)],
        {**env, "WEB_CONCURRENCY": str(shape.workers), "GUNICORN_THREADS": str(shape.threads)},
        work, port=port, ready=http_ready("/api/v1/"))


def start_mlflow(m: BenchModel, args: argparse.Namespace, env: dict[str, str], work: Path,
                 workers: int) -> Server | str:
    """The mlflow server, or the reason it cannot run here.

    ``mlflow models serve`` runs ``uvicorn --workers N`` from PATH; with N > 1 uvicorn's
    shared socket leaves Nagle on (see FASTAPI_SERVE), so both 2 workers (as configured
    for every other server) and 1 worker are measured.
    """
    python = Path(args.mlflow_python)
    if args.skip_mlflow:
        return "skipped (--skip-mlflow)"
    if not python.exists():
        return (f"skipped: no {python} (a separate virtualenv with mlflow and "
                "scikit-learn; see docs/performance.md)")
    model_dir = work / f"mlflow-{m.key}"
    menv = {k: v for k, v in env.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    menv["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    if not model_dir.exists():
        try:
            trusted = json.dumps(TRUSTED_TYPES if m.key == "rf" else [])
            subprocess.run([str(python), "-c", MLFLOW_SAVE, str(work / f"{m.key}.joblib"),
                            str(model_dir), trusted], env=menv, check=True,
                           capture_output=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace")
            return f"skipped: saving the model with mlflow failed: {detail[-200:] or exc}"
    port = free_port()
    body = json.dumps({"inputs": [m.rows[0]]}).encode()
    try:
        return start_server(
            f"mlflow-{m.key}-w{workers}",
            [str(python.parent / "mlflow"), "models", "serve", "-m", str(model_dir),
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)],
            menv, work, port=port, timeout=180,
            ready=http_ready("/invocations", "POST", body, {"Content-Type": "application/json"}))
    except BenchError as exc:
        return f"skipped: {exc}"[:300]


# -- the load generator -------------------------------------------------------------------


@dataclass
class LoadResult:
    latencies_ms: list[float]
    seconds: float
    statuses: Counter
    reconnects: int
    bodies: list[bytes] = field(default_factory=list)  # 200 answers, when kept
    # CPU seconds spent during the run by the server's process group, by PostgreSQL's
    # processes and by this process (the client threads); None where /proc is missing.
    cpu: dict[str, float] | None = None

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def p(self) -> tuple[float, float]:
        return percentiles(self.latencies_ms)


def cpu_by_process() -> dict[int, tuple[int, str, float]] | None:
    """pid -> (process group, command, CPU seconds used so far), from /proc."""
    if not Path("/proc/self/stat").exists():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        close = raw.rfind(")")
        rest = raw[close + 2:].split()
        found[int(entry.name)] = (int(rest[2]), raw[raw.find("(") + 1:close],
                                  (int(rest[11]) + int(rest[12])) / tick)
    return found


def cpu_used(before, after, server_group: int | None) -> dict[str, float] | None:
    """CPU seconds between two :func:`cpu_by_process` snapshots: the server's process
    group, PostgreSQL's processes, and this process."""
    if before is None or after is None:
        return None
    used = {"server": 0.0, "db": 0.0, "client": 0.0}
    for pid, (group, command, seconds) in after.items():
        spent = seconds - (before[pid][2] if pid in before else 0.0)
        if pid == os.getpid():
            used["client"] += spent
        elif server_group is not None and group == server_group:
            used["server"] += spent
        elif command == "postgres":
            used["db"] += spent
    return used


def load(port: int, path: str, bodies: list[bytes], headers: dict[str, str], *, requests: int,
         clients: int, keep_bodies: bool = False, server_group: int | None = None) -> LoadResult:
    """``requests`` POSTs split over ``clients`` threads, one keep-alive connection each;
    with ``server_group``, the CPU the server, PostgreSQL and the clients spent."""
    shares = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[Counter] = [Counter() for _ in range(clients)]
    kept: list[list[bytes]] = [[] for _ in range(clients)]
    reconnects = [0] * clients
    failures: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive", **headers}

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            barrier.wait()
            for i in range(shares[index]):
                body = bodies[(index * 7919 + i) % len(bodies)]
                for attempt in (1, 2):
                    started = time.perf_counter()
                    try:
                        conn.request("POST", path, body=body, headers=headers)
                        response = conn.getresponse()
                        data = response.read()
                        break
                    except (http.client.RemoteDisconnected, ConnectionResetError,
                            BrokenPipeError):
                        # An idle keep-alive connection closed by the server: reconnect once.
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                        reconnects[index] += 1
                        if attempt == 2:
                            raise
                latencies[index].append((time.perf_counter() - started) * 1000)
                statuses[index][response.status] += 1
                if keep_bodies and response.status == 200:
                    kept[index].append(data)
                if response.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    reconnects[index] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    cpu_before = cpu_by_process() if server_group is not None else None
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    cpu = cpu_used(cpu_before, cpu_by_process(), server_group) if cpu_before else None
    if failures:
        raise BenchError(f"load on port {port}: {failures[0].__class__.__name__}: {failures[0]}")
    return LoadResult([x for lat in latencies for x in lat], seconds,
                      sum(statuses, Counter()), sum(reconnects),
                      [b for k in kept for b in k], cpu)


@dataclass
class Row:
    model: str
    server: str
    one: Rounds | None = None
    many: Rounds | None = None
    note: str = ""


class Rounds:
    """One server's results over several rounds: medians of the per-round figures."""

    def __init__(self, results: list[LoadResult]) -> None:
        self.results = results
        self.statuses = sum((r.statuses for r in results), Counter())

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.results)

    def p(self) -> tuple[float, float]:
        per_round = [r.p() for r in self.results]
        return (statistics.median(p50 for p50, _ in per_round),
                statistics.median(p95 for _, p95 in per_round))

    def cpu_us(self, kind: str) -> float | None:
        """Median over rounds of ``kind``'s CPU per answered request, in µs."""
        per_round = [r.cpu[kind] / len(r.latencies_ms) * 1e6 for r in self.results
                     if r.cpu is not None and r.latencies_ms]
        return statistics.median(per_round) if per_round else None

    def spread(self, what: str) -> str:
        values = [r.rps for r in self.results] if what == "rps" else \
            [r.p()[0] for r in self.results]
        return f"{min(values):.0f}-{max(values):.0f}" if what == "rps" else \
            f"{min(values):.2f}-{max(values):.2f}"


@dataclass
class Target:
    """A server to measure: where to send what, and the row it fills."""

    server: Server
    path: str
    bodies: list[bytes]
    headers: dict[str, str]
    label: str
    profile: Callable[[], Any] | None = None
    ones: list[LoadResult] = field(default_factory=list)
    manys: list[LoadResult] = field(default_factory=list)


def measure_rounds(targets: list[Target], args: argparse.Namespace, model: str) -> list[Row]:
    """Warm every server, then measure them in turn, ``args.rounds`` times, rotating the
    order each round; one Row per target with the medians."""
    for t in targets:
        load(t.server.port, t.path, t.bodies, t.headers, requests=args.warmup,
             clients=min(args.clients, max(1, args.warmup // 10)))
    for round_ in range(args.rounds):
        turn = round_ % len(targets)
        for t in targets[turn:] + targets[:turn]:
            t.ones.append(load(t.server.port, t.path, t.bodies, t.headers,
                               requests=args.requests, clients=1))
            profiler = t.profile() if t.profile and round_ == 0 else None
            t.manys.append(load(t.server.port, t.path, t.bodies, t.headers,
                                requests=args.requests, clients=args.clients,
                                server_group=t.server.process.pid))
            if profiler is not None:
                profiler.wait(timeout=120)
    rows = []
    for t in targets:
        row = Row(model, t.label, Rounds(t.ones), Rounds(t.manys))
        bad = {s: n for s, n in (row.one.statuses + row.many.statuses).items() if s != 200}
        if bad:
            row.note = f"non-200 answers: {bad}; {t.server.tail()[-300:]!r}"
        elif args.rounds > 1:
            row.note = (f"rounds: p50 {row.one.spread('p50')} ms, "
                        f"{row.many.spread('rps')} req/s")
        reconnects = sum(r.reconnects for r in row.one.results + row.many.results)
        if reconnects:
            row.note += f"{'; ' if row.note else ''}{reconnects} reconnects"
        rows.append(row)
    return rows


def py_spy(server: Server, out: Path, seconds: float) -> subprocess.Popen | None:
    """Record one web server worker (a child of the master) for ``seconds``."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    children = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True,
                              text=True).stdout.split()
    if not children or not Path(spy).exists():
        return None
    return subprocess.Popen([spy, "record", "-p", children[0], "-d", str(max(1, int(seconds))),
                             "-r", "200", "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- batch --------------------------------------------------------------------------------


def batch_compare(m: BenchModel, args: argparse.Namespace, requester) -> dict:
    """Attest's batch chunk path against predict_proba + COPY, chunk by chunk, interleaved.

    Attest: ``inference.batches.runner.batch_chunks_run`` itself -- the loop a batch worker
    runs -- on records as the CSV reader yields them, for a job row created for the
    purpose (column-wise validation and OOD check, scoring, routing, row hashes, log
    rows and review items by COPY, the job's progress, one transaction per chunk; on
    PostgreSQL chunk k commits while chunk k+1 is prepared). The gap between two
    progress updates is what a person watching the job sees.
    """
    import numpy as np
    import orjson
    from django.db import connection, transaction
    from django.utils import timezone

    from inference.batches import runner
    from inference.models import BatchJob, BatchStatus, Prediction, ReviewItem
    from registry.loading import version_model_load

    version = m.version
    loaded = version_model_load(version=version, purpose="batch")
    labels = [str(c) for c in m.estimator.classes_]
    base = np.asarray(m.rows, dtype=float)
    job = BatchJob.objects.create(
        model=version.model, version=version, requester=requester, file_name="bench.csv",
        file_format="csv", input_sha256="0" * 64, input_key="bench", input_size=0,
        total_rows=args.batch_rows, chunk_size=args.chunk, chunk_seconds=args.chunk_seconds,
        queue="default",
        status=BatchStatus.RUNNING, started_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_plain (id bigserial PRIMARY KEY, input jsonb, "
                       "label text, score double precision, confidence double precision, "
                       "probabilities jsonb, created_at timestamptz) "
                       # no autovacuum of the baseline's 1M rows while Attest's run is timed
                       "WITH (autovacuum_enabled = false)")
    making = [0.0]  # time spent building the records (the CSV reader's part): not counted

    def records_of(start: int, n: int) -> list:
        t = time.perf_counter()
        matrix = base[np.arange(start, start + n) % len(base)]
        records = [(start + i, dict(zip(m.features, r, strict=True)), None)
                   for i, r in enumerate(matrix.tolist())]
        making[0] += time.perf_counter() - t
        return records

    def plain(chunks: list[tuple[int, int]]) -> float:
        """The baseline: the rows scored and inserted with nothing else (seconds)."""
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE bench_plain")
        spent = 0.0
        for start, n in chunks:
            records = records_of(start, n)
            matrix = np.asarray([list(r.values()) for _i, r, _p in records], dtype=float)
            t0 = time.perf_counter()
            proba = m.estimator.predict_proba(matrix)
            now = timezone.now()
            with transaction.atomic(), connection.cursor() as cursor, cursor.copy(
                    "COPY bench_plain (input, label, score, confidence, probabilities, "
                    "created_at) FROM STDIN") as copy:
                for (_i, record, _p), p in zip(records, proba.tolist(), strict=True):
                    k = max(range(len(p)), key=p.__getitem__)
                    copy.write_row((orjson.dumps(record).decode(), labels[k], p[-1], p[k],
                                    orjson.dumps(dict(zip(labels, p, strict=True))).decode(),
                                    now))
            spent += time.perf_counter() - t0
        return spent

    # The baseline runs once before Attest's run (in chunks of 20,000 rows) and once after
    # it (in Attest's chunks); their mean is the figure, so a drift of the machine's speed
    # during the minute or two this takes falls on both sides alike.
    plain_before = plain([(start, min(20_000, args.batch_rows - start))
                          for start in range(0, args.batch_rows, 20_000)])
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE bench_plain")

    # Attest: the worker's chunk loop itself, timed from the first chunk's records to the
    # last commit; each chunk's commit time is read from the job's progress.
    progress: list[float] = []
    original_commit = runner.batch_chunk_commit

    def commit(**kwargs) -> bool:
        done = original_commit(**kwargs)
        progress.append(time.perf_counter())
        return done

    runner.batch_chunk_commit = commit  # the loop below calls it through its module
    # Chunks cut as the worker's reader cuts them: each one's size asked of the job's sizer
    # when it is cut (batch_files.chunks), after the previous chunk was handed over.
    sizer = runner.ChunkSizer(args.chunk, args.chunk_seconds)
    starts: list[tuple[int, int]] = []

    def cut():
        start = 0
        while start < args.batch_rows:
            n = min(sizer(), args.batch_rows - start)
            starts.append((start, n))
            yield len(starts) - 1, (lambda start=start, n=n: records_of(start, n))
            start += n

    profiled = None
    if args.profile:
        import cProfile

        profiled = cProfile.Profile()
        profiled.enable()
    try:
        making[0] = 0.0  # the baseline's record building is not Attest's
        t0 = time.perf_counter()
        completed = runner.batch_chunks_run(job=job, loaded=loaded, chunks=cut(), sizer=sizer)
        attest_s = time.perf_counter() - t0 - making[0]
    finally:
        runner.batch_chunk_commit = original_commit
        if profiled is not None:
            profiled.disable()
            profiled.dump_stats(str(args.profile / f"batch-{m.key}.prof"))
    if not completed or len(progress) != len(starts):
        raise BenchError(f"the batch committed {len(progress)} of {len(starts)} chunks")
    gaps = [b - a for a, b in zip([t0, *progress], progress, strict=False)]
    # Baseline, after Attest's run: the same rows, in the same chunks -- once the 1M log
    # rows are vacuumed, so autovacuum does not run during the baseline either.
    with connection.cursor() as cursor:
        for table in (Prediction._meta.db_table, ReviewItem._meta.db_table):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    plain_after = plain(starts)
    job.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_plain")
        plain_rows = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_plain")
    logged = Prediction.objects.filter(batch=job).count()
    if logged != args.batch_rows or plain_rows != args.batch_rows \
            or job.rows_done != args.batch_rows or job.rows_failed:
        raise BenchError(f"batch logged {logged} rows ({job.rows_failed} failed) and wrote "
                         f"{plain_rows} plain rows, expected {args.batch_rows}")
    return {"attest_s": attest_s, "plain_s": (plain_before + plain_after) / 2,
            "plain_runs": (plain_before, plain_after), "rows": logged,
            "routed": job.rows_routed, "chunk_max_s": max(gaps), "chunks": len(gaps),
            "chunk_p50_s": sorted(gaps)[len(gaps) // 2],
            "chunk_rows": sorted(n for _s, n in starts)}


# -- report ---------------------------------------------------------------------------------










def postgres_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
        cursor.execute("SHOW fsync")
        fsync = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        sync = cursor.fetchone()[0]
    return f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync})"


def mlflow_version(args: argparse.Namespace) -> str:
    python = Path(args.mlflow_python)
    if args.skip_mlflow or not python.exists():
        return "mlflow not used"
    result = subprocess.run([str(python), "-c", "import mlflow, sklearn; print(mlflow.__version__, "
                             "sklearn.__version__)"], capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items()
                                 if k != "DJANGO_SETTINGS_MODULE"})
    words = result.stdout.split()
    return (f"mlflow {words[0]} (scikit-learn {words[1]}) in {python.parent.parent}"
            if len(words) == 2 else "mlflow not importable")


def machine(args: argparse.Namespace) -> list[str]:
    return [
        *header_lines(("Django", "djangorestframework", "gunicorn",
                       "psycopg", "scikit-learn", "onnxruntime", "skl2onnx", "numpy", "fastapi",
                       "uvicorn", "pydantic")),
        f"database: {postgres_version()} on loopback; {mlflow_version(args)}",
    ]



def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def http_table(rows: list[Row], clients: int) -> str:
    out = []
    for row in rows:
        if row.one is None or row.many is None:
            out.append([row.model, row.server, "-", "-", "-", "-", "-", "-", "-", "-",
                        row.note])
            continue
        b = next((r for r in rows if r.model == row.model and r.server.startswith("(b)")
                  and r.one is not None), None)
        p50, p95 = row.one.p()
        mp50, mp95 = row.many.p()
        ratio_lat = f"{p50 / b.one.p()[0]:.2f}x" if b else "-"
        ratio_rps = f"{row.many.rps / b.many.rps:.2f}x" if b else "-"
        cpu = [row.many.cpu_us(kind) for kind in ("server", "db", "client")]
        cpu_text = "-" if None in cpu else " / ".join(f"{v:.0f}" for v in cpu)
        out.append([row.model, row.server, fmt(p50), fmt(p95), ratio_lat,
                    f"{row.many.rps:.0f}", ratio_rps, fmt(mp50), fmt(mp95), cpu_text,
                    row.note])
    header = ["model", "server", "1 client p50 ms", "p95 ms", "p50 vs (b)",
              f"{clients} clients req/s", "req/s vs (b)", "p50 ms", "p95 ms",
              "CPU µs/req server / db / client", "note"]
    return table(header, out)


def full_path_targets(model: str, full: Row, b: Row | None, c: Row | None,
                      verdict: Callable[[bool], str]) -> list[str]:
    """The single-request targets for one (full) row: which web server it is is named."""
    lines = []
    name = f"[{model}, {full.server.removeprefix('(full) Attest, ').removesuffix(', PostgreSQL')}]"
    p50, p95 = full.one.p()
    if b is not None:
        ratio = p50 / b.one.p()[0]
        lines.append(f"{name} full-path p50 within {TARGET_P50_RATIO:.0f}x of (b): "
                     f"{p50:.2f} ms vs {b.one.p()[0]:.2f} ms = {ratio:.2f}x -> "
                     f"{verdict(ratio <= TARGET_P50_RATIO)}")
        lines.append(f"{name} full-path throughput with concurrent clients >= (b)'s: "
                     f"{full.many.rps:.0f} vs {b.many.rps:.0f} req/s = "
                     f"{full.many.rps / b.many.rps:.2f}x -> "
                     f"{verdict(full.many.rps >= b.many.rps)}")
        ours = [full.many.cpu_us(k) for k in ("server", "db")]
        theirs = [b.many.cpu_us(k) for k in ("server", "db")]
        if None not in ours and None not in theirs and sum(theirs) > 0:
            lines.append(f"{name} (what decides it) CPU per request, server + database, "
                         f"8 clients: {sum(ours):.0f} vs {sum(theirs):.0f} µs = "
                         f"{sum(ours) / sum(theirs):.2f}x")
    lines.append(f"{name} full-path p95 <= {TARGET_P95_MS:.0f} ms (1 client): {p95:.2f} ms "
                 f"-> {verdict(p95 <= TARGET_P95_MS)}")
    want = TARGET_VS_MLFLOW[model]
    if c is not None:
        ratio = full.many.rps / c.many.rps
        lines.append(f"{name} full-path throughput >= {want:.1f}x (c) "
                     f"(its fastest configuration, {c.server.removeprefix('(c) ')}): "
                     f"{full.many.rps:.0f} vs {c.many.rps:.0f} req/s = {ratio:.2f}x -> "
                     f"{verdict(ratio >= want)}")
    else:
        lines.append(f"{name} full-path throughput >= {want:.1f}x (c): not "
                     "measured (no mlflow row)")
    return lines


def targets(rows: list[Row], batches: dict[str, dict]) -> list[str]:
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    for model in dict.fromkeys(r.model for r in rows):
        measured = [r for r in rows if r.model == model and r.one is not None]
        b = next((r for r in measured if r.server.startswith("(b)")), None)
        # The fastest mlflow configuration: the comparison most favourable to mlflow.
        c = max((r for r in rows if r.model == model and r.server.startswith("(c)")
                 and r.many is not None), key=lambda r: r.many.rps, default=None)
        for full in (r for r in measured if r.server.startswith("(full)")):
            lines += full_path_targets(model, full, b, c, verdict)
        if model in batches:
            found = batches[model]
            ratio = found["attest_s"] / found["plain_s"]
            lines.append(f"[{model}] batch time <= {TARGET_BATCH_RATIO:.0f}x baseline: "
                         f"{ratio:.2f}x -> {verdict(ratio <= TARGET_BATCH_RATIO)}")
            lines.append(f"[{model}] batch progress advances at least every 2 s (slowest "
                         f"of {found['chunks']} chunks): "
                         f"{found['chunk_max_s']:.2f} s -> "
                         f"{verdict(found['chunk_max_s'] <= 2.0)}")
    return lines


def main(argv: list[str] | None = None) -> int:  # noqa: C901 - one linear script
    args = parse_args(argv)
    try:
        url = database_url(args)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="attest-bench-predict-"))
    except (BenchError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    servers: list[Server] = []
    db_name = None
    try:
        bench_url, db_name = create_database(url)
        env = base_env(work, bench_url)
        setup_django(env)
        print("\n".join(machine(args)))
        print(f"requests: {args.warmup} warm-up, then {args.rounds} round(s) of {args.requests} "
              f"measured per server with 1 client and again with {args.clients}; the servers "
              "of a model run side by side and are measured in turn, the order rotated each "
              "round; figures are medians over the rounds; clients are threads with "
              "keep-alive connections on 127.0.0.1 sharing the cores with the servers\n")
        models = build_models(args, work)
        released = release_models(models, work)
        token = released["token"]
        raw_rows: list[list[str]] = []
        http_rows: list[Row] = []
        batches: dict[str, dict] = {}
        for m in models:
            runtime = m.runtime or {"single": "?", "batch": "?"}
            print(f"## {m.key}: {m.title}; Attest serves it with {runtime['single']} (single) / "
                  f"{runtime['batch']} (batch); {len(m.rows)} held-out in-range rows cycled\n")
            for label, found in raw_latency(m, args.raw_calls).items():
                if isinstance(found, str):
                    raw_rows.append([m.key, label, "-", "-", found])
                else:
                    raw_rows.append([m.key, label, f"{found[0]:.1f}", f"{found[1]:.1f}", ""])
            p50, p95, cpu_us = app_in_process(
                m, token, args.raw_calls,
                args.profile / f"app-{m.key}.prof" if args.profile else None)
            raw_rows.append([m.key, "Attest's WSGI app (the whole predict path, logged), "
                             "called without a web server", f"{p50:.1f}", f"{p95:.1f}",
                             f"{cpu_us:.0f} µs CPU per call"])
        print(table(["model", "raw, in process, 1 row", "p50 µs", "p95 µs", "note"], raw_rows))
        print()
        webs = [start_web(args.web_shape, env, work)]
        servers += webs
        for m in models:
            bodies = [json.dumps({"inputs": dict(zip(m.features, r, strict=True))}).encode()
                      for r in m.rows]
            fastapi = start_fastapi(m, env, work)
            servers.append(fastapi)
            found = [Target(fastapi, "/predict", bodies, {},
                            "(b) FastAPI + pydantic, uvicorn 2 workers")]
            for shape, web in zip([args.web_shape], webs, strict=True):
                profile = None
                if args.profile:
                    out = args.profile / f"{web.name}-{m.key}.svg"
                    profile = lambda out=out, web=web: py_spy(web, out, 8)  # noqa: E731
                found.append(Target(web, f"/api/v1/models/{m.name}/predict/", bodies,
                                    {"Authorization": f"Bearer {token}"},
                                    f"(full) Attest, {shape.label}, PostgreSQL",
                                    profile))
            skipped: list[Row] = []
            mbodies = [json.dumps({"inputs": [r]}).encode() for r in m.rows]
            for workers in (2, 1):
                label = f"(c) mlflow models serve -w {workers}"
                mlflow = start_mlflow(m, args, env, work, workers)
                if isinstance(mlflow, str):
                    skipped.append(Row(m.key, label, note=mlflow))
                    break
                servers.append(mlflow)
                found.append(Target(mlflow, "/invocations", mbodies, {}, label))
            http_rows += measure_rounds(found, args, m.key) + skipped
            for t in found:
                if t.server not in webs:
                    t.server.stop()
        for web in webs:
            web.stop()
        print("## Over HTTP on 127.0.0.1 (one JSON row per request)\n")
        print(http_table(http_rows, args.clients))
        print("\nratios: p50 of the row / p50 of (b) for the same model; req/s of the row / "
              "req/s of (b). CPU µs/req: CPU time per answered request during the "
              f"{args.clients}-client run (median over rounds), spent by the server's process "
              "group, by PostgreSQL's processes and by the client threads (this process); "
              "with the cores saturated, throughput follows the sum\n")
        if args.batch_rows:
            batch_rows = []
            for m in models:
                found = batch_compare(m, args, released["users"]["clinician"])
                batches[m.key] = found
                batch_rows.append([m.key, "Attest: batch_chunks_run (validate, score, "
                                   "route, hash, COPY log rows + review items, progress)",
                                   f"{found['rows'] / found['attest_s']:.0f}",
                                   f"{found['attest_s']:.1f}",
                                   f"{found['attest_s'] / found['plain_s']:.2f}x",
                                   f"{found['routed']:,} routed to review; progress every "
                                   f"{found['chunk_p50_s']:.2f} s (p50), "
                                   f"{found['chunk_max_s']:.2f} s (max); {found['chunks']} "
                                   f"chunks of {found['chunk_rows'][0]:,}-"
                                   f"{found['chunk_rows'][-1]:,} rows (p50 "
                                   f"{found['chunk_rows'][len(found['chunk_rows']) // 2]:,})"])
                before, after = found["plain_runs"]
                batch_rows.append([m.key, "baseline: predict_proba + COPY into a plain table",
                                   f"{found['rows'] / found['plain_s']:.0f}",
                                   f"{found['plain_s']:.1f}", "1.00x",
                                   f"mean of {before:.1f} s before Attest's run and "
                                   f"{after:.1f} s after it"])
            sizing = (f"chunks sized to ~{args.chunk_seconds:g} s of work, the first "
                      f"{args.chunk:,} rows" if args.chunk_seconds else
                      f"{args.chunk:,} rows per chunk")
            print(f"## Batch: {args.batch_rows:,} rows; {sizing}; one transaction each\n")
            print(table(["model", "path", "rows/s", "seconds", "time vs baseline", "note"],
                        batch_rows))
            print()
        print("## Targets\n")
        for line in targets(http_rows, batches):
            print(f"- {line}")
        print(f"\nload average at end: {load_average()}")
        if args.keep:
            print(f"kept: database {db_name}, work dir {work}")
        return 0
    except BenchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BadArguments) else 1
    finally:
        for server in servers:
            server.stop()
        if db_name and not args.keep:
            try:
                drop_database(url, db_name)
            except Exception as exc:  # noqa: BLE001 - say so; never hide a leftover database
                print(f"{PROG}: could not drop database {db_name}: {exc}", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
