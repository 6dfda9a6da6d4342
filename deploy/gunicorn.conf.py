"""Gunicorn settings: Attest's one web server (the Docker image's default command,
``gunicorn -c deploy/gunicorn.conf.py``).

Tuning comes from these environment variables, read here and not by Django:

  WEB_CONCURRENCY            worker processes (default 2). Each worker loads models
                             lazily into its own cache, so memory grows with
                             workers x models in use.
  GUNICORN_THREADS           threads per worker (default 4). With PostgreSQL each
                             thread keeps its own connection for
                             ATTEST_DB_CONN_MAX_AGE seconds: plan for
                             workers x threads connections per web container.
  GUNICORN_TIMEOUT           seconds a worker may go silent before it is killed
                             and restarted (default 120).
  GUNICORN_GRACEFUL_TIMEOUT  seconds in-flight requests get on shutdown or
                             restart (default 30; keep compose's
                             stop_grace_period above it).
  GUNICORN_MAX_REQUESTS      recycle a worker after this many requests
                             (default 0 = never; each recycle reloads models).
"""

import os


def _int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be >= {minimum}, got {value}")
    return value


wsgi_app = "portal.wsgi:application"
bind = "0.0.0.0:8000"

worker_class = "gthread"
workers = _int("WEB_CONCURRENCY", 2, 1)
threads = _int("GUNICORN_THREADS", 4, 1)

# Each worker imports the app itself and fills its own model cache on first
# use; nothing heavy is loaded in the master before fork.
preload_app = False

timeout = _int("GUNICORN_TIMEOUT", 120, 1)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30, 1)
keepalive = 5
max_requests = _int("GUNICORN_MAX_REQUESTS", 0, 0)
max_requests_jitter = max_requests // 10

# Worker heartbeat files on tmpfs: an overlay filesystem can stall them.
# (gunicorn creates them with mkstemp and unlinks them at once.)
worker_tmp_dir = "/dev/shm"  # noqa: S108

# Logs to stdout/stderr for `docker compose logs`. The access line carries the
# client address the proxy reports, the request id the app echoes in X-Request-ID
# (it matches the audit events of that request) and the duration in milliseconds.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("ATTEST_LOG_LEVEL", "info").strip().lower() or "info"
access_log_format = (
    '%(h)s xff="%({x-forwarded-for}i)s" %(t)s "%(r)s" %(s)s %(b)s '
    '"%(f)s" "%(a)s" rid=%({x-request-id}o)s %(M)sms'
)
