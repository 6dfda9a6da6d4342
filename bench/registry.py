"""Registry throughput: artifact upload (hash + store) and verified load.

Every Attest number is printed next to a baseline measured in the same run, on
the same machine and filesystem, interleaved run by run:

* plain copy   -- ``shutil.copyfile`` of the same file to a new path on the same
                  filesystem, then ``fsync`` (the artifact store fsyncs too);
* plain read   -- ``open(path, "rb").read()`` of the same bytes.

What is measured (median of ``--runs`` runs, after ``--warmup`` unmeasured runs):

1. the two baselines above;
2. the store path of a registration: ``spool_upload`` (copy the upload to a temp
   file, hashing it) + ``blob_put`` into the artifact store; the blob is deleted
   between runs so every run really stores it;
3. ``blob_read_verified`` (read + sha256 check), as every model load does;
4. a real skops RandomForest of about ``--model-mb`` MB through the steps of
   ``model_version_register`` one by one (spool, inspect, load, dry run, store)
   and of an uncached ``model_version_load`` (verified read, load), plus both
   services end to end against a throw-away SQLite database.

Backends: the local filesystem store always; S3 as well when ``ATTEST_S3_BUCKET``
and ``ATTEST_S3_ENDPOINT_URL`` are set (in the environment or in the file given
with ``--s3-env``, e.g. the ``DIR/env`` written by ``scripts/services.sh start``).

Nothing touches the repository: ``ATTEST_DATA_DIR`` (SQLite, local artifacts)
points into a temp directory that is deleted at the end, ``DATABASE_URL`` and
``CELERY_BROKER_URL`` are ignored, and every S3 object written is deleted again.

    .venv/bin/python bench/registry.py [--size-mb 50] [--runs 5] [--s3-env DIR/env]

Exit status: 0 done, 1 the benchmark failed, 2 bad arguments (one-line reason).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
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

PROG = "bench/registry.py"
MB = 1024 * 1024  # MB here means MiB, as in ATTEST_MAX_UPLOAD_MB
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
N_SAMPLES, N_FEATURES = 20_000, 20



def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n", 1)[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=50,
                        help="size of the raw artifact for the throughput table (MiB, default 50)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per operation (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured runs before the measured ones (default 1)")
    parser.add_argument("--model-mb", type=int, default=None,
                        help="target size of the skops model (MiB, default: --size-mb)")
    parser.add_argument("--skip-model", action="store_true",
                        help="skip the skops model (register/load split and end-to-end rows)")
    parser.add_argument("--skip-e2e", action="store_true",
                        help="skip the end-to-end services (they migrate a temp SQLite database)")
    parser.add_argument("--s3-env", type=Path, metavar="FILE",
                        help="read ATTEST_S3_* and AWS_* from this file of `export NAME=value` "
                             "lines (e.g. DIR/env from scripts/services.sh start DIR)")
    parser.add_argument("--local-only", action="store_true",
                        help="benchmark the local filesystem store only, even if S3 is configured")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="parent directory for the temp files (default: the system temp dir); "
                             "use the filesystem the artifact store lives on")
    parser.add_argument("--seed", type=int, default=0, help="seed for data and model (default 0)")
    args = parser.parse_args(argv)
    if not 1 <= args.size_mb <= 4096:
        parser.error(f"--size-mb must be between 1 and 4096, not {args.size_mb}")
    if not 1 <= args.runs <= 1000:
        parser.error(f"--runs must be between 1 and 1000, not {args.runs}")
    if not 0 <= args.warmup <= 100:
        parser.error(f"--warmup must be between 0 and 100, not {args.warmup}")
    if args.model_mb is None:
        args.model_mb = args.size_mb
    if not 1 <= args.model_mb <= 1024:
        parser.error(f"--model-mb must be between 1 and 1024, not {args.model_mb}")
    if args.s3_env is not None and args.local_only:
        parser.error("--s3-env and --local-only contradict each other")
    if args.s3_env is not None and not args.s3_env.is_file():
        parser.error(f"--s3-env {args.s3_env}: no such file")
    if args.work_dir is not None and not args.work_dir.is_dir():
        parser.error(f"--work-dir {args.work_dir}: not a directory")
    return args


# -- environment -----------------------------------------------------------------------------


def read_s3_env(path: Path) -> dict[str, str]:
    """The ATTEST_S3_* and AWS_* assignments of an env file (``export NAME=value`` lines)."""
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        if not sep or not name.startswith(("ATTEST_S3_", "AWS_")):
            continue
        words = shlex.split(value)
        found[name] = words[0] if words else ""
    if not found.get("ATTEST_S3_BUCKET"):
        raise BadArguments(f"--s3-env {path}: no ATTEST_S3_BUCKET in it")
    return found


def setup_django(data_dir: Path) -> None:
    """Embedded settings in a temp data dir: nothing outside it is written."""
    os.environ["ATTEST_DATA_DIR"] = str(data_dir)
    os.environ["ATTEST_LOG_LEVEL"] = "WARNING"
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "ATTEST_ARTIFACT_DIR",
                 "ATTEST_STATIC_ROOT", "ATTEST_UPLOAD_TEMP_DIR"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django_setup()
    import django.test.signals  # noqa: F401 - resets storages when override_settings changes them


@dataclass
class Backend:
    name: str
    config: dict[str, Any]
    where: str


def backends(work: Path, *, local_only: bool) -> list[Backend]:
    from django.conf import settings

    found = [Backend("local", {"BACKEND": "registry.storage.AtomicFileSystemStorage",
                               "OPTIONS": {"location": str(work / "artifacts")}},
                     f"AtomicFileSystemStorage in {work / 'artifacts'}")]
    if settings.S3_BUCKET and not local_only:
        options = settings.STORAGES["artifacts"]["OPTIONS"]
        if not options.get("endpoint_url"):
            raise BadArguments("ATTEST_S3_BUCKET is set without ATTEST_S3_ENDPOINT_URL: refusing to "
                             "benchmark against a real AWS bucket (point it at moto/MinIO, or "
                             "pass --local-only)")
        found.append(Backend("s3", settings.STORAGES["artifacts"],
                             f"S3Storage, bucket {options['bucket_name']} at "
                             f"{options['endpoint_url']}"))
    return found


@contextlib.contextmanager
def using(backend: Backend) -> Iterator[Any]:
    """Make ``storages["artifacts"]`` this backend (as configured in settings), warmed up."""
    from django.conf import settings
    from django.test import override_settings

    from registry.storage import artifact_storage

    with override_settings(STORAGES={**settings.STORAGES, "artifacts": backend.config}):
        store = artifact_storage()
        expected = backend.config["BACKEND"].rsplit(".", 1)[1]
        if type(store).__name__ != expected:
            raise BenchError(f"artifact storage is {type(store).__name__}, expected {expected}")
        try:
            # Opens the connection (S3) outside the timed code, as in a long-lived worker.
            store.exists("sha256/00/bench-probe")
        except Exception as exc:  # noqa: BLE001 - botocore raises many classes
            raise BenchError(f"the {backend.name} artifact store is not reachable ({backend.where}): "
                             f"{exc.__class__.__name__}: {exc}") from exc
        yield store


# -- measurements ----------------------------------------------------------------------------


@dataclass
class Series:
    operation: str
    backend: str
    nbytes: int
    baseline: str | None = None  # operation name of the baseline row, None for baselines
    note: str = ""
    seconds: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.seconds)

    def mbps(self, seconds: float | None = None) -> float:
        return self.nbytes / MB / (self.median() if seconds is None else seconds)


class Recorder:
    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        self.measuring = False

    def add(self, operation: str, backend: str, nbytes: int, seconds: float, *,
            baseline: str | None = None, note: str = "") -> None:
        if not self.measuring:
            return
        key = (operation, backend)
        if key not in self.series:
            self.series[key] = Series(operation, backend, nbytes, baseline, note)
        self.series[key].seconds.append(seconds)

    def find(self, operation: str) -> Series:
        return next(s for s in self.series.values() if s.operation == operation)


def clock() -> float:
    return time.perf_counter()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def plain_copy(src: Path, dst: Path) -> float:
    started = clock()
    shutil.copyfile(src, dst)
    fsync_path(dst)
    elapsed = clock() - started
    dst.unlink()
    return elapsed


def plain_read(path: Path, size: int) -> float:
    started = clock()
    with open(path, "rb") as handle:
        data = handle.read()
    elapsed = clock() - started
    if len(data) != size:
        raise BenchError(f"read {len(data)} bytes of {path}, expected {size}")
    return elapsed


def spool(src: Path) -> tuple[str, str, int]:
    """``spool_upload`` fed the way Django feeds it: a File with chunks()."""
    from django.conf import settings
    from django.core.files import File

    from registry.storage import spool_upload

    with open(src, "rb") as handle:
        return spool_upload(File(handle, name=src.name), limit=settings.ATTEST_MAX_UPLOAD_BYTES)


def store_spooled(path: str, sha: str) -> str:
    from registry.storage import blob_put

    with open(path, "rb") as handle:
        key, created = blob_put(handle, sha)
    if not created:
        raise BenchError(f"blob {key} was already stored: the measurement would be a no-op")
    return key


def throughput(args: argparse.Namespace, work: Path, targets: list[Backend], rec: Recorder) -> None:
    """Steps 1-3: copy/read baselines, spool + blob_put, blob_read_verified."""
    import numpy as np

    from registry.storage import blob_delete, blob_read_verified

    size = args.size_mb * MB
    src = work / "artifact.bin"
    data = np.random.default_rng(args.seed).bytes(size)
    src.write_bytes(data)
    fsync_path(src)
    sha = hashlib.sha256(data).hexdigest()
    copy_op, read_op = "plain copy (copyfile + fsync)", "plain read (open().read())"
    keys: dict[str, str] = {}
    raw: dict[str, tuple[Any, str, str]] = {}  # backend -> boto3 client, bucket, scratch key
    try:
        for run in range(args.warmup + args.runs):
            rec.measuring = run >= args.warmup
            rec.add(copy_op, "local fs", size, plain_copy(src, work / "copy.bin"))
            for backend in targets:
                with using(backend) as store:
                    started = clock()
                    path, got_sha, got_size = spool(src)
                    spooled = clock()
                    try:
                        key = store_spooled(path, got_sha)
                        stored = clock()
                    finally:
                        os.unlink(path)
                    blob_delete(key)  # the next run must store it again
                    if (got_sha, got_size) != (sha, size):
                        raise BenchError("spool_upload returned a different hash or size")
                    rec.add("spool_upload (sha256 + temp file)", backend.name, size,
                            spooled - started, baseline=copy_op)
                    rec.add("blob_put", backend.name, size, stored - spooled, baseline=copy_op)
                    rec.add("store = spool_upload + blob_put", backend.name, size,
                            stored - started, baseline=copy_op)
                    if backend.name == "s3":
                        if "s3" not in raw:
                            raw["s3"] = s3_raw(store)
                        client, bucket, raw_key = raw["s3"]
                        started = clock()
                        client.put_object(Bucket=bucket, Key=raw_key, Body=data)
                        rec.add("boto3 put_object (no Attest code)", "s3", size, clock() - started,
                                baseline=copy_op)
            hashed = clock()
            hashlib.sha256(data).hexdigest()
            rec.add("sha256 of bytes in memory", "cpu", size, clock() - hashed,
                    note="hashing alone, no I/O")
        # Step 3: one stored blob per backend, read back run by run.
        for backend in targets:
            with using(backend):
                path, _sha, _size = spool(src)
                try:
                    keys[backend.name] = store_spooled(path, sha)
                finally:
                    os.unlink(path)
        with using(targets[0]) as store:
            local_blob = Path(store.path(keys["local"]))
        for run in range(args.warmup + args.runs):
            rec.measuring = run >= args.warmup
            rec.add(read_op, "local fs", size, plain_read(local_blob, size),
                    note="page cache warm, like the read after a store")
            for backend in targets:
                with using(backend) as store:
                    started = clock()
                    got = blob_read_verified(keys[backend.name], sha)
                    rec.add("blob_read_verified (read + sha256)", backend.name, size,
                            clock() - started, baseline=read_op)
                    if len(got) != size:
                        raise BenchError("blob_read_verified returned the wrong number of bytes")
                    if backend.name == "s3":
                        client, bucket, raw_key = raw["s3"]
                        started = clock()
                        body = client.get_object(Bucket=bucket, Key=raw_key)["Body"].read()
                        rec.add("boto3 get_object().read() (no Attest code)", "s3", len(body),
                                clock() - started, baseline=read_op)
    finally:
        rec.measuring = False
        for backend in targets:
            if backend.name in keys:
                with using(backend):
                    blob_delete(keys[backend.name])
        for client, bucket, raw_key in raw.values():
            client.delete_object(Bucket=bucket, Key=raw_key)


def s3_raw(store: Any) -> tuple[Any, str, str]:
    """boto3 client, bucket and a scratch key beside the store's own keys."""
    prefix = (store.location or "").strip("/")
    key = f"{prefix}/bench/raw-{uuid.uuid4().hex}" if prefix else f"bench/raw-{uuid.uuid4().hex}"
    return store.connection.meta.client, store.bucket_name, key


# -- the skops model ---------------------------------------------------------------------------


@dataclass
class ModelFile:
    path: Path
    size: int
    trees: int
    fit_seconds: float
    feature_names: list[str]
    csv: Path


def build_model(target_mb: int, seed: int, work: Path) -> ModelFile:
    """A RandomForest on synthetic data, sized (by tree count) to about ``target_mb``."""
    import numpy as np
    import pandas as pd
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_SAMPLES, N_FEATURES))
    signal = x[:, 0] + 0.5 * x[:, 1] - 0.25 * x[:, 2] + rng.normal(scale=1.5, size=N_SAMPLES)
    y = np.where(signal > 0, "positive", "negative")
    names = [f"f{i:02d}" for i in range(N_FEATURES)]
    jobs = os.cpu_count() or 1
    probe = RandomForestClassifier(n_estimators=4, random_state=seed, n_jobs=jobs).fit(x, y)
    per_tree = len(sio.dumps(probe)) / 4  # fully grown trees on noisy labels: ~constant size
    trees = max(1, round(target_mb * MB / per_tree))
    started = clock()
    model = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=jobs).fit(x, y)
    fit_seconds = clock() - started
    data = sio.dumps(model)
    path = work / "model.skops"
    path.write_bytes(data)
    fsync_path(path)
    frame = pd.DataFrame(x, columns=names)
    frame["outcome"] = y
    csv = work / "train.csv"
    frame.to_csv(csv, index=False)
    return ModelFile(path, len(data), trees, fit_seconds, names, csv)


def register_split(args: argparse.Namespace, model: ModelFile, targets: list[Backend],
                   rec: Recorder) -> None:
    """Step 4: the steps of model_version_register and model_version_load, timed one by one."""
    from registry.artifacts import inspect_artifact
    from registry.models import ArtifactFormat
    from registry.runtime import bind_features, dry_run, load_model
    from registry.sandbox import sandbox_run
    from registry.storage import blob_delete, blob_read_verified

    schema = [{"name": n, "type": "number"} for n in model.feature_names]
    size = model.size
    for run in range(args.warmup + args.runs):
        rec.measuring = run >= args.warmup
        for backend in targets:
            with using(backend):
                t0 = clock()
                path, sha, _size = spool(model.path)
                t1 = clock()
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                    t2 = clock()
                    info = inspect_artifact(data, artifact_format=ArtifactFormat.SKOPS,
                                            allowed=frozenset(TRUSTED_TYPES))
                    t3 = clock()
                    loaded = load_model(data, artifact_format=ArtifactFormat.SKOPS,
                                        trusted_types=info.untrusted_types)
                    t4 = clock()
                    bind_features(loaded, model.feature_names)
                    dry = dry_run(loaded, schema, {}, n_labels=2)
                    t5 = clock()
                    key = store_spooled(path, sha)
                    t6 = clock()

                    def first_contact(data=data):
                        found = inspect_artifact(data, artifact_format=ArtifactFormat.SKOPS,
                                                 allowed=frozenset(TRUSTED_TYPES))
                        model_ = load_model(data, artifact_format=ArtifactFormat.SKOPS,
                                            trusted_types=found.untrusted_types)
                        bind_features(model_, model.feature_names)
                        return dry_run(model_, schema, {}, n_labels=2)["ok"]

                    t6a = clock()
                    sandboxed_ok = sandbox_run(first_contact, what="benchmark model")
                    t6b = clock()
                finally:
                    os.unlink(path)
                del data, loaded
                if not dry["ok"] or not sandboxed_ok:
                    raise BenchError("the dry run of the benchmark model failed")
                try:
                    t7 = clock()
                    data = blob_read_verified(key, sha)
                    t8 = clock()
                    load_model(data, artifact_format=ArtifactFormat.SKOPS,
                               trusted_types=info.untrusted_types,
                               feature_names=model.feature_names)
                    t9 = clock()
                    del data
                finally:
                    blob_delete(key)  # the next run must store it again
            for step, seconds in (
                ("register: spool_upload (sha256 + temp file)", t1 - t0),
                ("register: read spooled file", t2 - t1),
                ("register: inspect_artifact", t3 - t2),
                ("register: load_model (skops)", t4 - t3),
                ("register: bind + dry run", t5 - t4),
                ("register: blob_put", t6 - t5),
                ("register: sandboxed inspect+load+dry run (fork)", t6b - t6a),
                ("load: blob_read_verified", t8 - t7),
                ("load: load_model (skops)", t9 - t8),
            ):
                rec.add(step, backend.name, size, seconds)
    rec.measuring = False


def end_to_end(args: argparse.Namespace, model: ModelFile, targets: list[Backend],
               rec: Recorder) -> None:
    """model_version_register and an uncached model_version_load, DB and audit events included."""
    from django.contrib.auth import get_user_model
    from django.core.files import File
    from django.core.management import call_command

    from registry import services
    from registry.runtime import model_cache
    from registry.storage import blob_delete

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_superuser("bench", "bench@example.org", None)
    registered = services.registered_model_create(user=user, name="bench-forest")
    with open(model.csv, "rb") as handle:
        dataset = services.dataset_version_register(
            user=user, name="bench-cohort", version="1", source="synthetic (bench/registry.py)",
            data_file=File(handle, name="train.csv"))
    meta = {"dataset": dataset.pk, "trusted_types": TRUSTED_TYPES,
            "input_schema": model.feature_names}
    for run in range(args.warmup + args.runs):
        rec.measuring = run >= args.warmup
        for backend in targets:
            with using(backend):
                model_cache.clear()
                with open(model.path, "rb") as handle:
                    started = clock()
                    version = services.model_version_register(
                        user=user, model=registered, artifact=File(handle, name="model.skops"),
                        metadata=meta)
                    registered_s = clock() - started
                try:
                    model_cache.clear()
                    started = clock()
                    services.model_version_load(version=version)
                    loaded_s = clock() - started
                    model_cache.clear()
                finally:
                    blob_delete(version.artifact_key)  # the next run must store it again
            rec.add("model_version_register (end to end)", backend.name, model.size, registered_s)
            rec.add("model_version_load (uncached, end to end)", backend.name, model.size, loaded_s)
    rec.measuring = False


# -- report ------------------------------------------------------------------------------------




def filesystem_of(path: Path) -> str:
    """Mount point and type of the filesystem holding ``path`` (Linux /proc/mounts)."""
    target = path.resolve()
    best = ("", "?")
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            parts = line.split()
            if len(parts) < 3:
                continue
            mount = Path(parts[1])
            if (target == mount or mount in target.parents) and len(parts[1]) >= len(best[0]):
                best = (parts[1], parts[2])
    return f"{best[1]} on {best[0] or '?'}"








def machine(work: Path, targets: list[Backend]) -> list[str]:
    lines = [
        *header_lines(("Django", "django-storages", "boto3", "scikit-learn", "skops", "numpy",
                       "moto")),
        f"work dir: {work} ({filesystem_of(work)}); spool dir: {tempfile.gettempdir()} "
        f"({filesystem_of(Path(tempfile.gettempdir()))})",
    ]
    lines += [f"backend {b.name}: {b.where}" for b in targets]
    return lines



def throughput_table(rec: Recorder) -> str:
    rows = []
    for series in rec.series.values():
        if series.operation.startswith(("register:", "load:", "model_version")):
            continue
        speeds = sorted(series.mbps(s) for s in series.seconds)
        if series.baseline is not None:
            base = rec.find(series.baseline)
            ratio, against = f"{series.mbps() / base.mbps():.2f}x", series.baseline.split(" (")[0]
        elif series.backend == "cpu":
            ratio, against = "-", series.note
        else:
            ratio, against = "1.00x", "baseline" + (f"; {series.note}" if series.note else "")
        rows.append([series.operation, series.backend, f"{series.mbps():.0f}",
                     f"{speeds[0]:.0f}-{speeds[-1]:.0f}", ratio, against,
                     str(len(series.seconds))])
    header = ["operation", "backend", "MB/s (median)", "MB/s range", "ratio vs baseline",
              "baseline", "runs"]
    return table(header, rows)


def split_table(rec: Recorder, names: list[str]) -> str:
    rows = []
    for backend in names:
        for prefix, total_name in (("register:", "register steps"), ("load:", "load steps")):
            steps = [s for s in rec.series.values()
                     if s.backend == backend and s.operation.startswith(prefix)]
            if not steps:
                continue
            total = sum(s.median() for s in steps)
            for s in steps:
                rows.append([s.operation, backend, f"{s.median():.3f}", f"{100 * s.median() / total:.0f}%",
                             f"{s.mbps():.0f}", str(len(s.seconds))])
            rows.append([f"**{total_name}, sum of medians**", backend, f"**{total:.3f}**", "100%",
                         f"{steps[0].nbytes / MB / total:.0f}", ""])
        for s in rec.series.values():
            if s.backend == backend and s.operation.startswith("model_version"):
                rows.append([s.operation, backend, f"{s.median():.3f}", "", f"{s.mbps():.0f}",
                             str(len(s.seconds))])
    header = ["step", "backend", "seconds (median)", "share", "artifact MB/s", "runs"]
    return table(header, rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.s3_env is not None:
            os.environ.update(read_s3_env(args.s3_env))
        work = Path(tempfile.mkdtemp(prefix="attest-bench-", dir=args.work_dir))
    except (BenchError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        setup_django(work / "data")
        from django.conf import settings

        if args.size_mb * MB > settings.ATTEST_MAX_UPLOAD_BYTES:
            raise BadArguments(f"--size-mb {args.size_mb} is above the upload limit "
                             f"(ATTEST_MAX_UPLOAD_MB={settings.ATTEST_MAX_UPLOAD_BYTES // MB})")
        targets = backends(work, local_only=args.local_only)
        names = [b.name for b in targets]
        print("\n".join(machine(work, targets)))
        print(f"runs: {args.runs} measured (+{args.warmup} warm-up) per operation, interleaved "
              "with the baselines; MB = MiB\n")
        rec = Recorder()
        throughput(args, work, targets, rec)
        print(f"## Artifact throughput, {args.size_mb} MB of random bytes\n")
        print(throughput_table(rec))
        print("\nratio = MB/s of the operation / MB/s of its baseline in this run "
              "(1.00x = as fast as the plain file operation; lower is slower)\n")
        if not args.skip_model:
            model = build_model(args.model_mb, args.seed, work)
            print(f"## Registration split, skops RandomForestClassifier: {model.size / MB:.1f} MB, "
                  f"{model.trees} trees, {N_SAMPLES} x {N_FEATURES} synthetic rows "
                  f"(fit {model.fit_seconds:.1f} s, not measured)\n")
            split = Recorder()
            register_split(args, model, targets, split)
            if not args.skip_e2e:
                end_to_end(args, model, targets, split)
            print(split_table(split, names))
            print("\nregister steps run in model_version_register's order"
                  + ("" if args.skip_e2e else "; end-to-end rows add the SQLite transaction and "
                     "audit events (throw-away database)"))
        print(f"\nload average at end: {load_average()}")
        return 0
    except BenchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BadArguments) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
