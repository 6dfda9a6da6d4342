"""Start the Attest web service (the Docker image's default command).

    python deploy/web.py [--bind HOST:PORT] [--print]

``ATTEST_WEB_SERVER`` picks the HTTP server; all three serve ``portal.wsgi:application``
(the predict fast lane included) and all three run the same load test:

  uwsgi (default)     uWSGI's HTTP/1.1 socket (HTTP parsed in C, each thread keeps its
                      client's connection alive between requests): the least CPU per
                      request of the three, so the most predictions per second on a
                      given machine (docs/performance.md). WEB_CONCURRENCY worker
                      processes x UWSGI_THREADS threads (default 2 x 4). A thread
                      serves one kept-alive connection at a time and lets it go after
                      5 idle seconds, so it belongs behind the TLS-terminating proxy
                      (docs/operations.md, "Choosing the web server"): a connection
                      per request, or an idle upstream pool of at most half of
                      workers x threads.
                      UWSGI_HARAKIRI (default 120): seconds a request may run before
                      its worker is killed and replaced; UWSGI_MAX_REQUESTS (default
                      0 = never): recycle a worker after that many requests;
                      WEB_GRACEFUL_TIMEOUT (default 30): seconds in-flight requests
                      get on SIGTERM. uWSGI reads any other UWSGI_<OPTION> variable
                      itself (--strict: an unknown one stops it at start-up). The app
                      writes the access line (ATTEST_APP_ACCESS_LOG) and closes the
                      socket's HTTP gaps (portal/uwsgi_http.py).
  gunicorn            ``deploy/gunicorn.conf.py``: WEB_CONCURRENCY worker processes x
                      GUNICORN_THREADS gthread threads; its GUNICORN_* variables apply.
  granian             granian's WSGI interface (HTTP parsing and sockets in Rust, off the
                      GIL): WEB_CONCURRENCY worker processes x GRANIAN_BLOCKING_THREADS
                      threads running the app (default 2, the fastest measured on 2
                      cores; see docs/performance.md). granian reads its other
                      GRANIAN_* variables itself (e.g. GRANIAN_WORKERS_LIFETIME,
                      GRANIAN_WORKERS_MAX_RSS); a failed worker is started again.
                      granian's own access log is off: the app writes gunicorn's line
                      (ATTEST_APP_ACCESS_LOG, portal.access_log.AppAccessLog), which
                      carries the request id granian's cannot see.
                      WEB_GRACEFUL_TIMEOUT (default 30): seconds in-flight requests
                      get on shutdown.

``--bind`` defaults to 0.0.0.0:8000. ``--print`` prints the command instead of
running it. A bad setting exits with status 2 and a one-line reason.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = "portal.wsgi:application"
SERVERS = ("uwsgi", "gunicorn", "granian")
# uWSGI: seconds a kept-alive connection may stay idle (and hold its thread), and the
# longest pause allowed while reading a request or writing an answer.
UWSGI_SOCKET_TIMEOUT = 5


class BadSetting(Exception):
    pass


def _int(env: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadSetting(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise BadSetting(f"{name} must be >= {minimum}, got {value}")
    return value


def _bind(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadSetting(f"--bind must be HOST:PORT, got {raw!r}")
    return host.strip("[]"), int(port)


def command(env: dict[str, str], bind: str = "0.0.0.0:8000"  # noqa: S104
            ) -> tuple[list[str], dict[str, str]]:
    """The argv that serves the app as ``env`` asks, and the variables to add to its
    environment (no side effects)."""
    server = env.get("ATTEST_WEB_SERVER", "").strip().lower() or "uwsgi"
    if server not in SERVERS:
        raise BadSetting(f"ATTEST_WEB_SERVER must be one of {', '.join(SERVERS)}, got {server!r}")
    host, port = _bind(bind)
    if server == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "--config", str(HERE / "gunicorn.conf.py"),
                "--bind", f"{host}:{port}" if ":" not in host else f"[{host}]:{port}", APP], {}
    workers = _int(env, "WEB_CONCURRENCY", 2, 1)
    graceful = _int(env, "WEB_GRACEFUL_TIMEOUT", 30, 1)
    if server == "uwsgi":
        return _uwsgi(env, host, port, workers, graceful), {"ATTEST_APP_ACCESS_LOG": "true"}
    threads = _int(env, "GRANIAN_BLOCKING_THREADS", 2, 1)
    level = env.get("ATTEST_LOG_LEVEL", "").strip().lower() or "info"
    if level not in ("critical", "error", "warning", "info", "debug"):
        raise BadSetting(f"ATTEST_LOG_LEVEL must be a log level, got {level!r}")
    return [sys.executable, "-m", "granian", "--interface", "wsgi",
            "--host", host, "--port", str(port),
            "--workers", str(workers), "--blocking-threads", str(threads),
            "--respawn-failed-workers", "--workers-kill-timeout", str(graceful),
            "--log-level", level, "--no-access-log", APP], {"ATTEST_APP_ACCESS_LOG": "true"}


def _uwsgi(env: dict[str, str], host: str, port: int, workers: int, graceful: int) -> list[str]:
    threads = _int(env, "UWSGI_THREADS", 4, 1)
    harakiri = _int(env, "UWSGI_HARAKIRI", 120, 1)
    max_requests = _int(env, "UWSGI_MAX_REQUESTS", 0, 0)
    argv = [
        # the `uwsgi` script pyuwsgi installs beside this Python (it re-executes itself
        # from its own argv[0] on a reload)
        str(Path(sys.executable).parent / "uwsgi"),
        "--strict", "--master", "--need-app",
        "--http11-socket", f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "--module", APP, "--lazy-apps", "--single-interpreter",
        "--processes", str(workers), "--threads", str(threads), "--enable-threads",
        "--thunder-lock", "--socket-timeout", str(UWSGI_SOCKET_TIMEOUT),
        "--harakiri", str(harakiri),
        # request headers up to 32 KiB (uWSGI's default is 4 KiB)
        "--buffer-size", "32768",
        # SIGTERM (docker stop) lets in-flight requests finish, up to the graceful timeout
        "--die-on-term", "--hook-master-start", "unix_signal:15 gracefully_kill_them_all",
        "--worker-reload-mercy", str(graceful), "--reload-mercy", str(graceful),
        # the app writes the access line; a client that hangs up is not an error
        "--disable-logging", "--ignore-sigpipe", "--ignore-write-errors",
        "--disable-write-exception",
    ]
    if max_requests:
        argv += ["--max-requests", str(max_requests)]
    return argv


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    show = "--print" in args
    args = [a for a in args if a != "--print"]
    bind = "0.0.0.0:8000"  # noqa: S104 - in a container; compose publishes it on loopback
    if args[:1] == ["--bind"] and len(args) == 2:
        bind = args[1]
    elif args:
        print(f"web: unexpected arguments {' '.join(args)!r} (usage: web.py [--bind HOST:PORT] "
              "[--print])", file=sys.stderr)
        return 2
    try:
        argv_, extra = command(dict(os.environ), bind)
    except BadSetting as exc:
        print(f"web: {exc}", file=sys.stderr)
        return 2
    if show:
        print(shlex.join([*(f"{k}={v}" for k, v in extra.items()), *argv_]))
        return 0
    os.environ.update(extra)
    os.chdir(HERE.parent)  # the app's import root
    os.execv(argv_[0], argv_)  # noqa: S606 - replaces this process, signals reach the server
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
