"""Attest settings, read from environment variables.

With nothing set, Attest runs in its embedded shape: SQLite and local-file
artifacts under ``ATTEST_DATA_DIR`` (default ``./var``) and Celery tasks run
in-process. Setting ``DATABASE_URL``, ``CELERY_BROKER_URL`` and
``ATTEST_S3_BUCKET`` switches each part to its production counterpart.
See docs/operations.md for the full list.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from core.env import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_path,
    env_rate,
    env_str,
    refuse_placeholder,
    url_password,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("ATTEST_DATA_DIR", BASE_DIR / "var")
DEBUG = env_bool("ATTEST_DEBUG", False)


# The deployment says it is production (compose sets it): no generated secret, and the
# defaults below are those of a site served over HTTPS only.
_PRODUCTION = env_bool("ATTEST_REQUIRE_SECRET_KEY", False)


def _secret_key() -> str:
    key = env_str("ATTEST_SECRET_KEY")
    if key:
        refuse_placeholder("ATTEST_SECRET_KEY", key)
        if len(key) < 32:
            raise ImproperlyConfigured("ATTEST_SECRET_KEY must be at least 32 characters")
        return key
    if _PRODUCTION:
        raise ImproperlyConfigured("ATTEST_SECRET_KEY is required in this deployment")
    # Embedded shape: a random key kept beside the SQLite file, so sessions
    # survive restarts without anyone having to invent a secret.
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
# Keys being retired: sessions and signatures made with them stay valid until they expire
# (comma-separated), so rotating ATTEST_SECRET_KEY does not sign everyone out at once.
SECRET_KEY_FALLBACKS = env_list("ATTEST_SECRET_KEY_FALLBACKS", [])
for _old in SECRET_KEY_FALLBACKS:
    refuse_placeholder("ATTEST_SECRET_KEY_FALLBACKS", _old)
    if len(_old) < 32:
        raise ImproperlyConfigured("each of ATTEST_SECRET_KEY_FALLBACKS must be at least "
                                   "32 characters")
ALLOWED_HOSTS = env_list("ATTEST_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("ATTEST_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "audits",
    "registry",
    "explain",
    "inference",
    "monitoring",
    "dossier",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # refuses an over-limit body before the CSRF check or a view reads it
    "core.middleware.RequestSizeMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.SecurityHeadersMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.navigation",
                "portal.context_processors.monitoring_banner",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------
_database_url = env_str("DATABASE_URL")
if _database_url:
    _db = database_from_url(_database_url)
    refuse_placeholder("The DATABASE_URL password (POSTGRES_APP_PASSWORD, or POSTGRES_PASSWORD "
                       "for migrate, in compose)", _db.get("PASSWORD"))
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "attest.sqlite3")}
if _db["ENGINE"].endswith("sqlite3"):
    # IMMEDIATE transactions take the write lock at BEGIN, which serializes
    # appends to the audit hash chain; WAL lets readers run beside a writer.
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    # A persistent connection per worker thread: opening one per request
    # dominated a measured Django endpoint (5.9 ms vs 2.5 ms p50).
    _db["CONN_MAX_AGE"] = env_int("ATTEST_DB_CONN_MAX_AGE", 300, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
    _db["ATOMIC_REQUESTS"] = False
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache: what DRF's throttles count in (the token exchange rate, the audit rates) ------
# Without ATTEST_CACHE_URL each process counts for itself (so a limit is per process);
# with it (redis://…, compose: the broker's Redis, another database) they count together.
_cache_url = env_str("ATTEST_CACHE_URL")
if _cache_url:
    if not _cache_url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured("ATTEST_CACHE_URL must be a redis:// (or rediss://) URL")
    refuse_placeholder("The ATTEST_CACHE_URL password (REDIS_PASSWORD in compose)",
                       url_password(_cache_url))
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": _cache_url, "KEY_PREFIX": "attest"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- artifact storage -----------------------------------------------------------
S3_BUCKET = env_str("ATTEST_S3_BUCKET")
if S3_BUCKET:
    _artifacts = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env_str("ATTEST_S3_ENDPOINT_URL"),
            "region_name": env_str("ATTEST_S3_REGION", "us-east-1"),
            "access_key": env_str("AWS_ACCESS_KEY_ID"),
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY"),
            "location": env_str("ATTEST_S3_PREFIX", ""),
            "file_overwrite": True,  # keys are content hashes: same key, same bytes
            "default_acl": None,
            "querystring_auth": True,
            "addressing_style": env_str("ATTEST_S3_ADDRESSING_STYLE", "path"),
        },
    }
else:
    _artifacts = {
        "BACKEND": "registry.storage.AtomicFileSystemStorage",
        "OPTIONS": {"location": str(env_path("ATTEST_ARTIFACT_DIR", DATA_DIR / "artifacts"))},
    }
refuse_placeholder("AWS_SECRET_ACCESS_KEY", env_str("AWS_SECRET_ACCESS_KEY"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(DATA_DIR / "media")}},
    "artifacts": _artifacts,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
                    if not DEBUG else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- uploads ----------------------------------------------------------------------
ATTEST_MAX_UPLOAD_BYTES = env_int("ATTEST_MAX_UPLOAD_MB", 512, minimum=1) * 1024 * 1024
# A skops file is a zip: its members are checked against these, from the headers, before
# anything is decompressed (registry.artifacts.check_zip_limits).
ATTEST_SKOPS_MAX_MEMBER_BYTES = env_int("ATTEST_SKOPS_MAX_MEMBER_MB", 512, minimum=1) * 1024 * 1024
ATTEST_SKOPS_MAX_EXPANDED_BYTES = env_int("ATTEST_SKOPS_MAX_EXPANDED_MB", 2048,
                                          minimum=1) * 1024 * 1024
ATTEST_SKOPS_MAX_SCHEMA_BYTES = env_int("ATTEST_SKOPS_MAX_SCHEMA_MB", 16, minimum=1) * 1024 * 1024
ATTEST_SKOPS_MAX_RATIO = env_int("ATTEST_SKOPS_MAX_RATIO", 100, minimum=2)
ATTEST_SKOPS_MAX_MEMBERS = env_int("ATTEST_SKOPS_MAX_MEMBERS", 100_000, minimum=10)
# The first inspection, load and dry run of an upload, and its ONNX conversion, run in a
# forked child without database connection, secrets or environment, under these limits
# (registry.sandbox). Memory is what the child may map beyond what the parent already had.
ATTEST_SANDBOX = env_bool("ATTEST_SANDBOX", True)
ATTEST_SANDBOX_CPU_SECONDS = env_int("ATTEST_SANDBOX_CPU_SECONDS", 120, minimum=1)
ATTEST_SANDBOX_MEMORY_MB = env_int("ATTEST_SANDBOX_MEMORY_MB", 4096, minimum=64)
ATTEST_SANDBOX_TIMEOUT_SECONDS = env_int("ATTEST_SANDBOX_TIMEOUT_SECONDS", 300, minimum=1)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = env_str("ATTEST_UPLOAD_TEMP_DIR")
FILE_UPLOAD_HANDLERS = [
    "core.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- auth and security --------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["portal.backends.ThrottledModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# In production (ATTEST_REQUIRE_SECRET_KEY) cookies are HTTPS-only, plain HTTP is redirected
# and browsers are told to use HTTPS for a year; each stays overridable. /healthz/ is not
# redirected: container health checks call it over plain HTTP.
SECURE_COOKIES = env_bool("ATTEST_SECURE_COOKIES", _PRODUCTION)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("ATTEST_SESSION_HOURS", 8, minimum=1) * 3600
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("ATTEST_SSL_REDIRECT", _PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SECURE_HSTS_SECONDS = env_int("ATTEST_HSTS_SECONDS", 31_536_000 if _PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("ATTEST_HSTS_INCLUDE_SUBDOMAINS", _PRODUCTION)
if env_bool("ATTEST_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# X-Forwarded-For is believed only when the direct peer is one of these.
ATTEST_TRUSTED_PROXIES = env_list("ATTEST_TRUSTED_PROXIES", [])
ATTEST_TOKEN_DAYS = env_int("ATTEST_TOKEN_DAYS", 90, minimum=1)
# Sign-in throttling (audits.throttling): wrong passwords within the window, per username
# and per client address; past the allowance each further attempt waits, from the last
# failure, the back-off (doubled per further failure, at most the window). An address's
# count does not hold back a username that signed in from it within the familiar days.
ATTEST_LOGIN_MAX_FAILURES = env_int("ATTEST_LOGIN_MAX_FAILURES", 5, minimum=1)
ATTEST_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("ATTEST_LOGIN_MAX_FAILURES_PER_ADDRESS", 25,
                                                minimum=1)
ATTEST_LOGIN_WINDOW_MINUTES = env_int("ATTEST_LOGIN_WINDOW_MINUTES", 15, minimum=1)
ATTEST_LOGIN_BACKOFF_SECONDS = env_int("ATTEST_LOGIN_BACKOFF_SECONDS", 60, minimum=1)
ATTEST_LOGIN_FAMILIAR_DAYS = env_int("ATTEST_LOGIN_FAMILIAR_DAYS", 30, minimum=0)

# --- audit trail anchoring ---------------------------------------------------------
# Ed25519 private key (PEM) that signs audit checkpoints, as text or a file path.
ATTEST_AUDIT_SIGNING_KEY = env_str("ATTEST_AUDIT_SIGNING_KEY")
ATTEST_AUDIT_SIGNING_KEY_FILE = env_str("ATTEST_AUDIT_SIGNING_KEY_FILE")
# Without either, the embedded shape generates a key into the data directory;
# set this where a generated key would be a mistake.
ATTEST_REQUIRE_SIGNING_KEY = env_bool("ATTEST_REQUIRE_SIGNING_KEY", False)
# Public keys (PEM text or file paths) of retired signing keys, so checkpoints
# signed before a rotation still verify.
ATTEST_AUDIT_TRUSTED_PUBLIC_KEYS = env_list("ATTEST_AUDIT_TRUSTED_PUBLIC_KEYS", [])
# Processes that verify a long audit chain at once on PostgreSQL (this one plus helpers;
# each takes a consecutive range of events). 1 walks the chain in one process.
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
ATTEST_AUDIT_VERIFY_PROCESSES = env_int("ATTEST_AUDIT_VERIFY_PROCESSES", min(_CPUS or 1, 4),
                                        minimum=1)

# Requests per user to the costly audit endpoints (each verifies the whole chain), API
# and pages alike; the scheduler's own runs are not counted.
ATTEST_AUDIT_VERIFY_RATE = env_rate("ATTEST_AUDIT_VERIFY_RATE", "20/hour")
ATTEST_AUDIT_CHECKPOINT_RATE = env_rate("ATTEST_AUDIT_CHECKPOINT_RATE", "6/hour")

# --- ONNX runtime evidence (registry/onnx_evidence.py) -------------------------------------------
# Largest |sklearn - onnxruntime| probability difference on the reference sample for
# the ONNX conversion to be served.
ATTEST_ONNX_TOLERANCE = env_float("ATTEST_ONNX_TOLERANCE", 1e-5, minimum=0.0)

# --- REST API -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.StrictJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # ?format= is ours (audit export), not DRF's renderer override
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Attest API",
    "DESCRIPTION": "Model registry and audit portal for clinical-research ML. "
                   "Errors are always {\"errors\": [{\"field\", \"code\", \"message\"}]}.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # approve/reject: a version's sign-off and a dossier's (both Signature decisions)
    "ENUM_NAME_OVERRIDES": {"SignoffDecisionEnum": ["approve", "reject"]},
}

# --- Celery ----------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
refuse_placeholder("The CELERY_BROKER_URL password (REDIS_PASSWORD in compose)",
                   url_password(CELERY_BROKER_URL))
CELERY_TASK_ALWAYS_EAGER = env_bool("ATTEST_CELERY_EAGER", CELERY_BROKER_URL is None)
if CELERY_BROKER_URL is None:
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
# Without a broker (eager), batch jobs run in a thread of the web process rather than
# inside the upload request; tests turn this off to run them synchronously.
ATTEST_BATCH_EAGER_THREAD = env_bool("ATTEST_BATCH_EAGER_THREAD", True)
# Four eyes on the review queue: whoever requested a prediction may not decide its
# review item (a one-person deployment may allow it).
ATTEST_REVIEW_OWN_PREDICTIONS = env_bool("ATTEST_REVIEW_OWN_PREDICTIONS", False)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE = {
    "verify-audit-chain": {"task": "audits.verify_chain",
                           "schedule": env_int("ATTEST_AUDIT_VERIFY_SECONDS", 3600, minimum=60)},
    "audit-checkpoint": {"task": "audits.checkpoint",
                         "schedule": env_int("ATTEST_AUDIT_CHECKPOINT_SECONDS", 86400,
                                             minimum=60)},
    "anchor-predictions": {"task": "inference.anchor_predictions",
                           "schedule": env_int("ATTEST_ANCHOR_SECONDS", 300, minimum=60)},
    "purge-inputs": {"task": "inference.purge_inputs",
                     "schedule": env_int("ATTEST_PURGE_SECONDS", 86400, minimum=3600)},
    "resume-stale-batches": {"task": "inference.resume_stale_batches", "schedule": 60},
    "resume-stale-explanations": {"task": "explain.resume_stale_jobs", "schedule": 60},
    "resume-stale-dossiers": {"task": "dossier.resume_stale", "schedule": 60},
    # Monitoring: count new prediction-log rows into drift bins, then (less often) compute
    # every monitored version's figures, health table and alerts (monitoring/tasks.py).
    "monitoring-aggregate": {"task": "monitoring.aggregate",
                             "schedule": env_int("ATTEST_MONITORING_AGGREGATE_SECONDS", 300,
                                                 minimum=30)},
    "monitoring-evaluate": {"task": "monitoring.evaluate",
                            "schedule": env_int("ATTEST_MONITORING_EVALUATE_SECONDS", 3600,
                                                minimum=60)},
}
# verify_predictions fails when prediction-log rows older than this are still not
# anchored in the audit chain (the anchor job runs every ATTEST_ANCHOR_SECONDS and leaves
# the newest 30 s for transactions still in flight).
ATTEST_ANCHOR_WINDOW_SECONDS = env_int("ATTEST_ANCHOR_WINDOW_SECONDS",
                                       3 * env_int("ATTEST_ANCHOR_SECONDS", 300, minimum=60),
                                       minimum=120)
# The embedded shape (no broker) runs the schedule above in a thread of the web process
# (portal/scheduler.py; one process per data directory, by a file lock).
ATTEST_EMBEDDED_SCHEDULER = env_bool("ATTEST_EMBEDDED_SCHEDULER", CELERY_TASK_ALWAYS_EAGER)
# Monitoring: the price of one CPU-hour (US dollars) for the inference-cost signal; a
# model's monitoring policy may set its own.
ATTEST_MONITORING_CPU_HOUR_PRICE = env_float("ATTEST_MONITORING_CPU_HOUR_PRICE", 0.05,
                                             minimum=0.0, maximum=1000.0)
# Batch jobs: rows of a job's first chunk and the seconds of work each later chunk is
# sized to (one transaction each; progress advances per chunk; 0 s keeps the first size),
# the GPU queue (ONNX versions' batches; SHAP explanation jobs and explained batches,
# explain.services.explain_queue), and when a job without progress is resumed.
ATTEST_BATCH_CHUNK_ROWS = env_int("ATTEST_BATCH_CHUNK_ROWS", 5000, minimum=100)
ATTEST_BATCH_CHUNK_SECONDS = env_float("ATTEST_BATCH_CHUNK_SECONDS", 1.0, minimum=0.0,
                                        maximum=60.0)
ATTEST_GPU_QUEUE_ENABLED = env_bool("ATTEST_GPU_QUEUE_ENABLED", False)
ATTEST_BATCH_STALE_SECONDS = env_int("ATTEST_BATCH_STALE_SECONDS", 120, minimum=30)

# --- explanations (explain/) ---------------------------------------------------------------
# SHAP answered inline when its estimated cost per row is at most
# this (tree and linear explainers; the rest run as jobs), when a running job without
# progress is re-queued, and (embedded shape, no broker) jobs run in a thread of the web
# process rather than inside the request (tests turn it off).
ATTEST_EXPLAIN_INLINE_MS = env_float("ATTEST_EXPLAIN_INLINE_MS", 25.0, minimum=0.0,
                                     maximum=10000.0)
# A batch may ask for the SHAP contributions of every row (tree or linear explainers) when
# their estimated time (explain.choice) is at most this many seconds of a worker's time.
ATTEST_BATCH_EXPLAIN_MAX_SECONDS = env_float("ATTEST_BATCH_EXPLAIN_MAX_SECONDS", 1800.0,
                                             minimum=0.0, maximum=86400.0)
ATTEST_EXPLAIN_STALE_SECONDS = env_int("ATTEST_EXPLAIN_STALE_SECONDS", 120, minimum=30)
ATTEST_EXPLAIN_EAGER_THREAD = env_bool("ATTEST_EXPLAIN_EAGER_THREAD", True)
# A submitted version's global importance and explanation reliability are computed in the
# background (about a minute of a worker's time for a 200-tree forest).
ATTEST_EXPLAIN_ON_SUBMIT = env_bool("ATTEST_EXPLAIN_ON_SUBMIT", True)

# --- compliance dossiers (dossier/) ---------------------------------------------------------
# A running build without progress for this long is re-queued; (embedded shape, no broker)
# builds run in a thread of the web process rather than inside the request (tests turn it
# off).
ATTEST_DOSSIER_STALE_SECONDS = env_int("ATTEST_DOSSIER_STALE_SECONDS", 300, minimum=60)
ATTEST_DOSSIER_EAGER_THREAD = env_bool("ATTEST_DOSSIER_EAGER_THREAD", True)

# --- email (sign-off notifications) ------------------------------------------------------
EMAIL_BACKEND = env_str("ATTEST_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("ATTEST_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("ATTEST_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("ATTEST_EMAIL_USER", "") or ""
EMAIL_HOST_PASSWORD = env_str("ATTEST_EMAIL_PASSWORD", "") or ""
refuse_placeholder("ATTEST_EMAIL_PASSWORD", EMAIL_HOST_PASSWORD)
EMAIL_USE_TLS = env_bool("ATTEST_EMAIL_STARTTLS", False)
EMAIL_USE_SSL = env_bool("ATTEST_EMAIL_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set at most one of ATTEST_EMAIL_STARTTLS and ATTEST_EMAIL_SSL")
EMAIL_TIMEOUT = env_int("ATTEST_EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("ATTEST_EMAIL_FROM", "attest@localhost")

# --- i18n / static -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("ATTEST_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env_path("ATTEST_STATIC_ROOT", DATA_DIR / "static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on a missing directory
# Serve from the app directories too, so a plain `runserver` without collectstatic
# still has its stylesheet (collected files win when present).
WHITENOISE_USE_FINDERS = True
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("ATTEST_LOG_LEVEL", "INFO")},
    # shap logs its KernelExplainer's internals at INFO
    # WeasyPrint logs every layout step at INFO (weasyprint.progress); its warnings stay.
    "loggers": {"django.request": {"level": "ERROR"}, "shap": {"level": "WARNING"},
                "weasyprint": {"level": "WARNING"}, "fontTools": {"level": "WARNING"}},
}
