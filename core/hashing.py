"""Canonical JSON and streaming sha256: the two primitives every hash in Attest uses."""

from __future__ import annotations

import hashlib
import json
from typing import IO, Any

CHUNK = 1024 * 1024


def canonical_json(value: Any) -> str:
    """Serialize deterministically: sorted keys, no whitespace, UTF-8 kept as is.

    Hashes are computed over this text, so two equal values always hash alike,
    whichever database stored them (PostgreSQL's jsonb reorders keys).
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


def normalize_json(value: Any) -> Any:
    """Round-trip through canonical JSON, so what is stored is exactly what was hashed."""
    return json.loads(canonical_json(value))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_text(canonical_json(value))


def sha256_stream(stream: IO[bytes]) -> tuple[str, int]:
    """Hash a binary stream in chunks; returns (hex digest, byte count)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
