"""The integration layer: PostgreSQL, Redis (Celery) and an S3-compatible store.

These run only in the test command's second layer, where scripts/services.sh
has started the services and exported their URLs. A missing service fails
here; it is never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction

from audits.chain import verify_chain
from audits.models import Action, AuditEvent
from audits.services import audit_event_record
from registry.loading import artifact_model_load, models_clear
from registry.models import ModelVersion
from registry.storage import artifact_storage, blob_key

from ..registry.helpers import register_dataset, register_version

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _s3():
    options = settings.STORAGES["artifacts"]["OPTIONS"]
    return boto3.client("s3", endpoint_url=options["endpoint_url"],
                        region_name=options["region_name"],
                        aws_access_key_id=options["access_key"],
                        aws_secret_access_key=options["secret_key"])


def test_the_database_is_postgresql(db):
    assert connection.vendor == "postgresql", "the integration layer must run on PostgreSQL"


def test_postgresql_triggers_refuse_update_and_delete(db):
    audit_event_record(action=Action.MODEL_UPDATED, object_type="t", object_id=1)
    for sql in ("UPDATE audits_auditevent SET reason = 'x'", "DELETE FROM audits_auditevent"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditEvent.objects.count() == 1


def test_artifacts_live_in_the_s3_store_and_tampering_is_caught(personas):
    assert settings.STORAGES["artifacts"]["BACKEND"].endswith("S3Storage")
    dataset = register_dataset(personas.owner)
    version = register_version(personas.owner, personas.model, dataset)
    store = artifact_storage()
    key = f"{store.location}/{blob_key(version.artifact_sha256)}"
    bucket = settings.STORAGES["artifacts"]["OPTIONS"]["bucket_name"]
    client = _s3()
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == version.artifact_size
    # Change the bytes behind the registry's back.
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=body[:-4] + b"evil")

    models_clear()
    from core.errors import IntegrityFailure

    with pytest.raises(IntegrityFailure):
        artifact_model_load(version=ModelVersion.objects.get(pk=version.pk))
    assert AuditEvent.objects.filter(action=Action.ARTIFACT_INTEGRITY_FAILED).exists()


def test_concurrent_appends_never_fork_the_chain(transactional_db):
    """8 threads x 500 appends on PostgreSQL: one unbroken chain of 4,000 events."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(500):
                audit_event_record(action=Action.MODEL_UPDATED, object_type="t",
                                   object_id=f"{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    result = verify_chain()
    assert result.ok and result.checked == 4000
    assert AuditEvent.objects.values("prev_hash").distinct().count() == 4000  # no fork


def test_a_celery_worker_on_redis_runs_the_scheduled_chain_check(transactional_db):
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert not settings.CELERY_TASK_ALWAYS_EAGER
    audit_event_record(action=Action.MODEL_UPDATED, object_type="t", object_id=1)
    db = connection.settings_dict
    env = {**os.environ,
           "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/"
                           f"{db['NAME']}"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=solo", "-Q", "default",
         "--loglevel=WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        from audits.tasks import verify_audit_chain

        verify_audit_chain.apply_async(queue="default")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            event = AuditEvent.objects.filter(action=Action.AUDIT_VERIFIED).first()
            if event is not None:
                break
            assert worker.poll() is None, worker.stdout.read().decode()[-2000:]
            time.sleep(0.2)
        else:
            pytest.fail("the worker did not run the task within 60 s")
        assert event.details["ok"] is True and event.details["checked"] == 1
        assert event.via == "task"
        assert verify_chain().ok
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_two_concurrent_promotes_leave_exactly_one_in_production(transactional_db):
    """Two owners promote two approved versions at the same instant, on PostgreSQL."""
    from registry.models import ModelVersion
    from registry.release import signoff_record, version_promote
    from registry.services import model_version_submit

    from ..personas import PASSWORD, make_personas

    personas = make_personas()
    dataset = register_dataset(personas.owner)
    versions = []
    for _ in range(2):
        version = register_version(personas.owner, personas.model, dataset)
        model_version_submit(user=personas.owner, version=version)
        for who, meaning in (("pi", "pi_approval"), ("irb", "irb_approval")):
            signoff_record(user=personas.get(who), version=version, meaning=meaning,
                           decision="approve", password=PASSWORD)
        versions.append(version)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def promote(version) -> None:
        try:
            barrier.wait()
            version_promote(user=personas.owner, version=version)
        except BaseException as exc:  # noqa: BLE001 - collected and checked below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    states = sorted(ModelVersion.objects.filter(model=personas.model).values_list("state",
                                                                                  flat=True))
    assert states == ["production", "superseded"]
    assert verify_chain().ok
