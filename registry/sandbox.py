"""First contact with an uploaded model happens in a child process.

The skops allowlist (``registry.trust``) decides which types a file may hold;
this is the second wall behind it. The first inspection, load and dry run of a
new upload, and the skl2onnx conversion at submit, run in a forked child that

- has no database connection (every inherited file descriptor except its result
  pipe and stdin/stdout/stderr is closed, and Django's connections are dropped
  with their credentials and cannot reconnect) and an empty environment, with the
  settings' secrets blanked;
- runs under CPU-time and address-space limits (``ATTEST_SANDBOX_CPU_SECONDS``,
  ``ATTEST_SANDBOX_MEMORY_MB`` above what the parent already maps) and a
  wall-clock timeout;
- answers with JSON only (never a pickle: a child that ran hostile code must
  not get to run code in the parent through its answer) and ends with
  ``os._exit``, so no inherited finalizer (a database client's goodbye on a
  shared socket, say) runs.

Only when the child passed does the web or worker process load the artifact
itself.

What a fork does not give: the child is a copy of the parent's memory, so a
secret held somewhere Attest does not know to scrub (a library's cached
credentials) is still readable by code that runs there, and the child may write
files as the server's user. A separate user, a seccomp filter or a fresh
interpreter would close that; see docs/operations.md, "Trust boundaries". A fork costs a few milliseconds; a fresh interpreter would cost the
1-2 s of importing scikit-learn again on every upload.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from django.conf import settings

from core.errors import ErrorItem, ValidationFailed

log = logging.getLogger(__name__)

_SECRET_SETTINGS = ("SECRET_KEY", "SECRET_KEY_FALLBACKS", "ATTEST_AUDIT_SIGNING_KEY",
                    "AWS_SECRET_ACCESS_KEY", "EMAIL_HOST_PASSWORD", "DATABASES", "STORAGES",
                    "CELERY_BROKER_URL")
_MAX_ANSWER = 64 * 1024 * 1024


def _limits() -> tuple[int, int, float]:
    cpu = int(getattr(settings, "ATTEST_SANDBOX_CPU_SECONDS", 120))
    memory = int(getattr(settings, "ATTEST_SANDBOX_MEMORY_MB", 4096)) * 1024 * 1024
    timeout = float(getattr(settings, "ATTEST_SANDBOX_TIMEOUT_SECONDS", cpu * 2 + 10))
    return cpu, memory, timeout


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * resource.getpagesize()
    except OSError:
        return 0


# The child's copies of the parent's database connections: kept referenced so that no
# finalizer writes a goodbye to a descriptor number the child may have reused.
_KEPT: list = []


def _no_database(*args, **kwargs):
    raise RuntimeError("the sandbox has no database")


def _cut_off_databases() -> None:
    """Drop every Django connection and its credentials; any query in the child fails.

    Closing the descriptors cuts network connections, but an in-memory SQLite
    database (tests) lives in the process's memory, and a dropped connection would
    otherwise be reopened from the credentials the wrapper still holds.
    """
    from django.db import connections

    for alias in connections:
        conn = connections[alias]
        if conn.connection is not None:
            _KEPT.append(conn.connection)
        conn.connection = None
        conn.settings_dict = {**conn.settings_dict, "NAME": "", "USER": "", "PASSWORD": "",
                              "HOST": "", "PORT": "", "OPTIONS": {}}
        conn.connect = _no_database
        conn.get_new_connection = _no_database


def _child(write_fd: int, fn: Callable[[], Any], cpu: int, memory: int) -> None:
    """In the child: drop what it must not have, set limits, run, answer, exit."""
    code = 0
    try:
        keep = {0, 1, 2, write_fd}
        for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        for name in _SECRET_SETTINGS:
            if hasattr(settings, name):
                setattr(settings, name, None)
        _cut_off_databases()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        limit = _mapped_bytes() + memory
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:
            answer = {"ok": True, "value": fn()}
        except ValidationFailed as exc:
            answer = {"ok": False, "error": {"items": [i.as_dict() for i in exc.items],
                                             "extra": exc.extra}}
        except MemoryError:
            answer = {"ok": False, "limit": "memory"}
        except BaseException as exc:  # noqa: BLE001 - anything else is reported, not raised
            answer = {"ok": False, "crash": f"{exc.__class__.__name__}: {str(exc)[:300]}"}
        payload = json.dumps(answer, default=str).encode()
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view):]
    except BaseException:  # noqa: BLE001 - the parent reports a child that said nothing
        code = 70
    finally:
        os._exit(code)


def sandbox_run(fn: Callable[[], Any], *, what: str) -> Any:
    """Run ``fn`` in a limited child process; return its JSON-able value.

    ``fn`` is a closure over data already in memory (fork shares it). A
    ValidationFailed in the child is raised here as the same error; a child
    killed by a limit, a timeout or a crash is refused as ``sandbox_refused``
    with ``what`` in the message. Where the platform cannot fork, ``fn`` runs
    in this process (development on other systems; Linux servers always fork).
    """
    if not hasattr(os, "fork") or not getattr(settings, "ATTEST_SANDBOX", True):
        return fn()
    cpu, memory, timeout = _limits()
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # Python warns that forking a threaded process may deadlock the child: the
        # child only runs fn (no locks of other threads are needed) and the
        # timeout below ends a child that did hang.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        os.close(read_fd)
        _child(write_fd, fn, cpu, memory)
    os.close(write_fd)
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > _MAX_ANSWER:
                timed_out = True  # an answer this large is not one of ours
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _pid, status = os.waitpid(pid, 0)
    if timed_out:
        raise _refused(what, f"it did not finish within {timeout:g} s")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        why = (f"it used more than {cpu} s of CPU time" if sig in (signal.SIGXCPU, signal.SIGKILL)
               else f"the checking process was ended by signal {signal.Signals(sig).name}")
        raise _refused(what, why)
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        raise _refused(what, "the checking process ended without an answer") from None
    if not isinstance(answer, dict):
        raise _refused(what, "the checking process gave no usable answer")
    if answer.get("ok"):
        return answer.get("value")
    if answer.get("limit") == "memory":
        raise _refused(what, f"it needed more than {memory // (1024 * 1024)} MB of memory")
    error = answer.get("error")
    if isinstance(error, dict):
        items = [ErrorItem(str(i.get("code") or "invalid"), str(i.get("message") or ""),
                           str(i["field"]) if i.get("field") is not None else None)
                 for i in error.get("items") or [] if isinstance(i, dict)]
        extra = error.get("extra")
        raise ValidationFailed(items=items, extra=extra if isinstance(extra, dict) else None)
    log.warning("sandboxed %s crashed: %s", what, answer.get("crash"))
    raise _refused(what, f"checking it failed ({str(answer.get('crash', ''))[:200]})")


def _refused(what: str, why: str) -> ValidationFailed:
    return ValidationFailed(f"The {what} was refused: {why}. The limits are set by the "
                            "administrators (ATTEST_SANDBOX_CPU_SECONDS, ATTEST_SANDBOX_MEMORY_MB).",
                            code="sandbox_refused", field="artifact")
