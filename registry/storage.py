"""Artifact storage: content-addressed blobs in the configured Django storage.

Keys are ``sha256/<2 hex>/<64 hex>``: the same bytes always land on the same
key, so a second upload of an artifact costs nothing and a blob can never be
overwritten with different content. Writes to the local filesystem go to a temp
file in the target directory and are renamed into place, so a crash never
leaves a half-written blob under a real key (S3 puts are atomic already).
"""

from __future__ import annotations

import os
import tempfile
from typing import IO

from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages

from core.errors import IntegrityFailure
from core.hashing import CHUNK


class AtomicFileSystemStorage(FileSystemStorage):
    def get_available_name(self, name, max_length=None):
        return name  # content-addressed: an existing key already holds these bytes

    def _save(self, name, content):
        full = self.path(name)
        directory = os.path.dirname(full)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                if hasattr(content, "seek"):
                    content.seek(0)
                for chunk in content.chunks(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, full)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return name


def artifact_storage():
    return storages["artifacts"]


def blob_key(sha256: str, *, kind: str = "sha256") -> str:
    return f"{kind}/{sha256[:2]}/{sha256}"


def blob_put(local: IO[bytes], sha256: str) -> tuple[str, bool]:
    """Store the stream under its hash; returns (key, created)."""
    store = artifact_storage()
    key = blob_key(sha256)
    if store.exists(key):
        return key, False
    local.seek(0)
    store.save(key, File(local, name=key))
    return key, True


def blob_delete(key: str) -> None:
    store = artifact_storage()
    if store.exists(key):
        store.delete(key)


def blob_read_verified(key: str, sha256: str) -> bytes:
    """Read a blob and prove it still has the recorded hash; refuse otherwise."""
    import hashlib

    store = artifact_storage()
    try:
        with store.open(key, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError) as exc:
        raise IntegrityFailure(f"The stored artifact {key} cannot be read ({exc.__class__.__name__}); "
                               "refusing to serve it.", code="artifact_missing") from exc
    except Exception as exc:  # S3 errors (botocore) surface as various classes
        raise IntegrityFailure(f"The stored artifact {key} cannot be read; refusing to serve it.",
                               code="artifact_missing") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityFailure(
            f"The stored artifact's sha256 is {actual[:12]}…, but {sha256[:12]}… was recorded at "
            "registration: the bytes changed in storage. Refusing to serve it.",
            code="artifact_hash_mismatch", extra={"expected_sha256": sha256, "actual_sha256": actual})
    return data


def spool_upload(upload, *, limit: int) -> tuple[str, str, int]:
    """Copy an uploaded file to a private temp file, hashing as it goes.

    Returns (path, sha256, size). The caller deletes the path. Refuses past
    ``limit`` bytes, deleting what was written.
    """
    import hashlib

    from core.errors import PayloadTooLarge

    digest = hashlib.sha256()
    size = 0
    fd, path = tempfile.mkstemp(prefix="attest-upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            chunks = upload.chunks(CHUNK) if hasattr(upload, "chunks") else iter(
                lambda: upload.read(CHUNK), b"")
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"The upload is larger than this server's limit of {limit // 1048576} MB.",
                        code="too_large")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path, digest.hexdigest(), size
