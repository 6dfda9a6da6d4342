"""The embedded shape's scheduler: Celery beat's schedule, run in the web process.

Without a broker there is no beat and no worker, yet the prediction log still needs
anchoring, the audit chain its signed checkpoints, raw inputs their purge, stale batch
jobs their resumption and monitoring its runs. ``start()`` (called by ``portal.wsgi``,
which both ``runserver`` and gunicorn load) starts one daemon thread that runs each entry
of ``CELERY_BEAT_SCHEDULE`` in-process when it falls due. One process per data directory
runs it: the thread holds an exclusive lock on ``DATA_DIR/scheduler.lock`` (the others
keep trying, so when that process exits another takes over). When each entry last ran
is kept in ``DATA_DIR/scheduler.json``, so a restart does not re-run a daily job.

``manage.py run_schedule --once`` runs whatever is due and exits (for cron, or to
catch up by hand); ``--all`` runs every entry now.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger("attest.scheduler")

TICK_SECONDS = 5.0
_started = threading.Event()


def _state_path() -> Path:
    return Path(settings.DATA_DIR) / "scheduler.json"


def _load_state() -> dict[str, float]:
    try:
        data = json.loads(_state_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)} \
        if isinstance(data, dict) else {}


def _save_state(state: dict[str, float]) -> None:
    path = _state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".scheduler-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _interval(entry: dict) -> float:
    schedule = entry["schedule"]
    return float(schedule.total_seconds() if hasattr(schedule, "total_seconds") else schedule)


def due(state: dict[str, float], now: float) -> list[str]:
    """The schedule's entries due at ``now`` (never run, or their interval has passed)."""
    return [name for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
            if now - state.get(name, 0.0) >= _interval(entry)]


def run_entry(name: str) -> tuple[bool, str]:
    """Run one schedule entry's task here and now; (succeeded, a one-line outcome)."""
    from portal.celery import app

    app.loader.import_default_modules()
    entry = settings.CELERY_BEAT_SCHEDULE[name]
    task = app.tasks[entry["task"]]
    started = time.monotonic()
    try:
        result = task.apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}),
                            throw=True)
        outcome = f"{name}: ok in {time.monotonic() - started:.2f} s"
        ok = result.successful()
    except Exception as exc:  # a failing job must not stop the others
        logger.exception("scheduled job %s failed", name)
        outcome, ok = f"{name}: failed ({type(exc).__name__}: {str(exc)[:200]})", False
    return ok, outcome


def run_due(*, now: float | None = None, everything: bool = False) -> list[tuple[bool, str]]:
    """Run what is due (or everything), recording when each entry ran."""
    state = _load_state()
    now = time.time() if now is None else now
    names = list(settings.CELERY_BEAT_SCHEDULE) if everything else due(state, now)
    outcomes = []
    for name in names:
        outcomes.append(run_entry(name))
        state[name] = now
        _save_state(state)
    return outcomes


def _loop() -> None:
    lock_path = Path(settings.DATA_DIR) / "scheduler.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:  # another process of this deployment runs it
                time.sleep(60)
        logger.info("embedded scheduler running in process %s", os.getpid())
        while True:
            try:
                for ok, outcome in run_due():
                    (logger.info if ok else logger.warning)("scheduled %s", outcome)
            except Exception:  # the state file, say: log, and try again next tick
                logger.exception("embedded scheduler tick failed")
            finally:
                close_old_connections()  # this thread's own; a broken one is reopened
            time.sleep(TICK_SECONDS)


def start() -> bool:
    """Start the scheduler thread in this process, once, when the embedded shape wants it."""
    from celery import current_app

    if not settings.ATTEST_EMBEDDED_SCHEDULER or not current_app.conf.task_always_eager:
        return False
    if _started.is_set():
        return False
    _started.set()
    threading.Thread(target=_loop, name="attest-scheduler", daemon=True).start()
    return True
