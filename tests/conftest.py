from __future__ import annotations

import os
import re
import uuid

import pytest
from django.conf import settings as django_settings
from django.test import Client
from rest_framework.test import APIClient

from explain.caches import explain_caches_clear
from registry.loading import models_clear
from registry.selectors import frozen_versions_clear

from .personas import make_personas
from .registry.helpers import register_dataset, register_version

APPEND_ONLY_TABLES = ("audits_auditevent", "registry_signature")

# Keep numerical libraries to one thread: two pytest workers share two cores.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")


@pytest.fixture(scope="session", autouse=True)
def _broker_per_test_process():
    """One Redis database per pytest-xdist process, for the test and the Celery workers it
    starts: two processes' workers on one queue would take each other's messages (a job of
    one test database run against the other's)."""
    from celery import current_app

    url = django_settings.CELERY_BROKER_URL or ""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    match = re.fullmatch(r"(redis://[^/]+)/(\d+)", url)
    if not (match and worker.startswith("gw") and worker[2:].isdigit()):
        yield
        return
    isolated = f"{match.group(1)}/{int(match.group(2)) + 1 + int(worker[2:])}"
    previous = os.environ.get("CELERY_BROKER_URL")
    django_settings.CELERY_BROKER_URL = isolated
    current_app.conf.broker_url = isolated
    os.environ["CELERY_BROKER_URL"] = isolated  # inherited by worker subprocesses
    yield
    if previous is not None:
        os.environ["CELERY_BROKER_URL"] = previous


@pytest.fixture(autouse=True)
def _isolated_artifact_store(settings, tmp_path):
    """Each test gets its own artifact location (a directory, or an S3 key prefix)."""
    storages = {**django_settings.STORAGES}
    artifacts = {**storages["artifacts"], "OPTIONS": {**storages["artifacts"]["OPTIONS"]}}
    if artifacts["BACKEND"].endswith("S3Storage"):
        artifacts["OPTIONS"]["location"] = f"tests/{uuid.uuid4().hex}"
    else:
        artifacts["OPTIONS"]["location"] = str(tmp_path / "artifacts")
    storages["artifacts"] = artifacts
    settings.STORAGES = storages
    # Argon2 is the production hasher (see test_settings); tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Serving evidence times each runtime at submit; tests need the choice, not the precision.
    settings.ATTEST_SERVING_TIMING_SCALE = 0.02
    # Eager batch jobs run inside the request in tests (the embedded shape uses a thread).
    settings.ATTEST_BATCH_EAGER_THREAD = False
    settings.ATTEST_EMBEDDED_SCHEDULER = False
    # Explanation jobs too; a version's explanation figures (a minute of work) are computed
    # at submit only in the tests of explain that ask for them.
    settings.ATTEST_EXPLAIN_EAGER_THREAD = False
    settings.ATTEST_EXPLAIN_ON_SUBMIT = False
    models_clear()
    frozen_versions_clear()
    explain_caches_clear()
    from django.core.cache import cache

    cache.clear()  # DRF's throttles count in the cache; each test starts afresh
    yield
    models_clear()
    frozen_versions_clear()


@pytest.fixture
def personas(db):
    return make_personas()


@pytest.fixture
def api():
    return APIClient()


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def owner_api(personas):
    return api_as(personas.owner)


@pytest.fixture(autouse=True)
def _audit_triggers(request):
    """Keep the append-only triggers in place on SQLite around transactional tests.

    Django empties tables between transactional tests; on SQLite it does so with
    DELETE, which the triggers refuse (as they should). So after such a test we
    drop them just before Django's flush, and every database test re-installs
    them first. PostgreSQL flushes with TRUNCATE, which row triggers do not see.
    """
    names = set(request.fixturenames)
    transactional = bool({"transactional_db", "live_server"} & names)
    if not transactional and "db" not in names:
        yield
        return
    request.getfixturevalue("transactional_db" if transactional else "db")
    from django.db import connection

    from audits.triggers import run
    from inference.triggers import run as run_prediction_triggers

    if connection.vendor == "sqlite":
        for table in APPEND_ONLY_TABLES:
            run(connection, install=True, table=table)
        run_prediction_triggers(connection, install=True)
    _trusted_types_reseed()
    yield
    if transactional and connection.vendor == "sqlite":
        for table in APPEND_ONLY_TABLES:
            run(connection, install=False, table=table)
        run_prediction_triggers(connection, install=False)


def _trusted_types_reseed() -> None:
    """Put back the skops allowlist's seed rows (migration 0006) when a transactional
    test's flush emptied the table, as a fresh installation has them."""
    from registry.models import TrustedType
    from registry.trust import DEFAULT_TRUSTED_TYPES

    if not TrustedType.objects.exists():
        TrustedType.objects.bulk_create(
            [TrustedType(name=n, reason=r) for n, r in DEFAULT_TRUSTED_TYPES.items()])


# -- page tests' fixtures (helpers in tests/pages.py); a module's own fixture of the
# same name wins ------------------------------------------------------------------------

@pytest.fixture
def client_as(personas):
    def make(name: str, **kwargs) -> Client:
        client = Client(**kwargs)
        client.force_login(personas.get(name))
        return client

    return make


@pytest.fixture
def dataset(personas):
    return register_dataset(personas.owner)


@pytest.fixture
def version(personas, dataset):
    return register_version(
        personas.owner, personas.model, dataset, model_card="# Card\n\nIntended use: triage.",
        metrics={"overall": {"auc": 0.97}})
