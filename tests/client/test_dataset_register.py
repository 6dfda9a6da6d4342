"""`attest dataset register FILE`: hash and profile only by default; the file itself only with
--upload, then kept by the server under its sha256."""

from __future__ import annotations

import hashlib

import pytest
from attest_client import errors

from registry.models import DatasetVersion
from registry.storage import artifact_storage, blob_key

from ..artifacts import training_csv


@pytest.fixture
def train(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(training_csv())
    return path


def _register(attest, path, version: str, *extra: str):
    return attest("dataset", "register", str(path), "--name", "sepsis-cohort", "--version",
                  version, "--source", "EHR extract, site A", *extra)


def test_upload_keeps_the_file_itself_on_the_server(attest, logged_in, train):
    logged_in("owner")
    local_sha256 = hashlib.sha256(train.read_bytes()).hexdigest()

    result = _register(attest, train, "2024.1", "--upload")
    assert result.status == 0, result.err
    assert "the file itself will be kept on the server" in result.err

    stored = DatasetVersion.objects.get(name="sepsis-cohort", version="2024.1")
    assert stored.file_key == blob_key(local_sha256)
    store = artifact_storage()
    assert store.exists(stored.file_key)
    with store.open(stored.file_key, "rb") as handle:
        kept = handle.read()
    assert hashlib.sha256(kept).hexdigest() == local_sha256 == stored.sha256
    assert stored.file_size == len(kept) == train.stat().st_size
    assert stored.row_count == 569  # profiled by the server, from the file it received


def test_without_upload_only_the_hash_and_profile_are_sent(attest, logged_in, train):
    logged_in("owner")
    local_sha256 = hashlib.sha256(train.read_bytes()).hexdigest()

    result = _register(attest, train, "2024.2", "--json")
    assert result.status == 0, result.err
    assert result.json["file_stored"] is False

    stored = DatasetVersion.objects.get(name="sepsis-cohort", version="2024.2")
    assert stored.sha256 == local_sha256 and stored.row_count == 569
    assert stored.file_key == "" and stored.file_size is None
    assert not artifact_storage().exists(blob_key(local_sha256))


def test_upload_of_a_missing_file_sends_nothing(attest, logged_in, tmp_path):
    logged_in("owner")
    result = _register(attest, tmp_path / "nope.csv", "1", "--upload")
    assert result.status == errors.EXIT_USAGE
    assert "not found" in result.error_line()
    assert not DatasetVersion.objects.exists()
