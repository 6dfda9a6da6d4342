"""The row builder shared by single predictions and batch chunks."""

from __future__ import annotations

import time
import uuid

import pytest

from inference import services
from inference.log import ROW_FIELDS, ROW_FIELDS_WHEN_SET, row_hash
from inference.validation import check_input
from registry.loading import version_model_load

from .helpers import released_version

pytestmark = pytest.mark.django_db


def test_uuid4_texts_are_random_version_4_uuids():
    texts = services.uuid4_texts(500)
    assert len(set(texts)) == 500
    for text in texts:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert services.uuid4_texts(0) == []


def test_each_row_hash_is_log_row_hash_of_the_row(personas):
    version = released_version(personas)
    schema, profile = version.input_schema, version.dataset.profile
    row = {f["name"]: (f.get("min", 0) + f.get("max", 1)) / 2 for f in schema}
    checked = [check_input(dict(row), schema=schema, profile=profile),
               check_input({**row, schema[0]["name"]: 1e9}, schema=schema, profile=profile)]
    loaded = version_model_load(version=version, purpose="batch")
    rows = services.score_rows(model=version.model, version=version, checked=checked,
                               loaded=loaded, requester=personas.clinician,
                               started=time.perf_counter(), row_indices=[0, 1])
    assert [r.review for r in rows] == [rows[0].values["routing"] == "review", True]
    for r in rows:
        # cpu_ms is recorded beside the hashed fields, not in them; imputed is hashed
        assert set(r.values) - {"row_hash", "cpu_ms"} == {*ROW_FIELDS, *ROW_FIELDS_WHEN_SET}
        assert r.values["row_hash"] == row_hash(r.values)
        assert r.input_json == services.canonical_bytes(r.input)


def test_each_row_records_its_share_of_the_threads_cpu_time(personas):
    version = released_version(personas)
    schema, profile = version.input_schema, version.dataset.profile
    row = {f["name"]: (f.get("min", 0) + f.get("max", 1)) / 2 for f in schema}
    checked = [check_input(dict(row), schema=schema, profile=profile) for _ in range(4)]
    loaded = version_model_load(version=version, purpose="batch")
    cpu_started = time.thread_time()
    spin = time.thread_time() + 0.02
    while time.thread_time() < spin:  # 20 ms of this thread's CPU before scoring
        pass
    rows = services.score_rows(model=version.model, version=version, checked=checked,
                               loaded=loaded, requester=personas.clinician,
                               started=time.perf_counter(), cpu_started=cpu_started)
    shares = {r.values["cpu_ms"] for r in rows}
    assert len(shares) == 1 and 20 / 4 <= shares.pop() < 1000  # 20 ms over 4 rows, at least
    unmeasured = services.score_rows(model=version.model, version=version, checked=checked,
                                     loaded=loaded, requester=personas.clinician,
                                     started=time.perf_counter())
    assert {r.values["cpu_ms"] for r in unmeasured} == {None}


def test_the_columns_written_once_per_chunk_are_the_same_for_every_row(personas):
    from inference.batches.logwrite import _LOG_CONSTANT

    version = released_version(personas)
    schema, profile = version.input_schema, version.dataset.profile
    row = {f["name"]: (f.get("min", 0) + f.get("max", 1)) / 2 for f in schema}
    checked = [check_input({**row, schema[0]["name"]: schema[0]["min"] + i * 0.01},
                           schema=schema, profile=profile) for i in range(20)]
    rows = services.score_rows(model=version.model, version=version, checked=checked,
                               loaded=version_model_load(version=version, purpose="batch"),
                               requester=personas.clinician, started=time.perf_counter(),
                               row_indices=list(range(20)))
    for name in _LOG_CONSTANT:
        assert len({repr(r.values[name]) for r in rows}) == 1, name
