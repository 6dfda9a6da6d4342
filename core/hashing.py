"""Canonical JSON and streaming sha256: the two primitives every hash in Attest uses."""

from __future__ import annotations

import hashlib
from typing import IO, Any

import orjson

CHUNK = 1024 * 1024
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def canonical_bytes(value: Any) -> bytes:
    """Serialize deterministically: sorted keys, no whitespace, UTF-8 as is.

    Produced by orjson (about six times faster than the json module, which
    matters when verifying millions of audit events); apart from float exponents
    (``1e-7``, not ``1e-07``) the bytes equal ``json.dumps(value, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)``. Hashes are computed over
    these bytes, so equal values hash alike whichever database stored them
    (PostgreSQL's jsonb reorders keys). NaN and infinities become null.
    """
    return orjson.dumps(value, option=_OPTIONS, default=str)


def canonical_json(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


def _portable(value: Any) -> Any:
    """Numbers as PostgreSQL's jsonb gives them back, so a stored value re-hashes alike.

    jsonb keeps numbers as decimals: -0.0 comes back as 0, and a whole float written
    in exponent form (1e16 and up) comes back as an integer.
    """
    if isinstance(value, float):
        if value == 0.0:
            return 0.0
        if value.is_integer() and 1e16 <= abs(value) < 2**63:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    return value


def normalize_json(value: Any) -> Any:
    """Round-trip through canonical JSON, so what is stored is exactly what was hashed."""
    return _portable(orjson.loads(canonical_bytes(value)))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def sha256_stream(stream: IO[bytes]) -> tuple[str, int]:
    """Hash a binary stream in chunks; returns (hex digest, byte count)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
