"""The one model loader: a version's model, verified, in the runtime chosen for it.

Predictions, batch jobs and explanations load models only through
``version_model_load``:

1. A draft serves its artifact as registered. From submit on, the serving
   evidence (``registry.onnx_evidence``, covered by the content hash) names the
   runtime per purpose (single rows, batches): the ONNX conversion where it was
   proved equivalent and measured faster, else the artifact itself.
2. Bytes are read through ``blob_read_verified``: a sha256 mismatch is recorded
   as an audit event (committed on its own) and raised as IntegrityFailure; such
   bytes are never loaded.
3. Loaded models stay in a per-process LRU cache keyed by the sha256 of the
   bytes they came from (and the purpose, for an ONNX conversion). A submitted
   version's cache key is remembered by (pk, content hash, purpose), which
   cannot change, so a warm prediction asks the database nothing about it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Literal

from audits.models import Action
from audits.services import audit_event_record
from core.errors import IntegrityFailure, ValidationFailed

from .models import ArtifactFormat, ModelVersion, ServingEngine, ServingRuntime, VersionState
from .runtime import LoadedModel, load_model
from .storage import blob_read_verified
from .trust import HOW_TO_ASK, trusted_type_names, untrusted_refusal

log = logging.getLogger(__name__)

Purpose = Literal["single", "batch"]
PURPOSES = ("single", "batch")


class ModelCache:
    """Loaded models per process, keyed by the sha256 of their bytes (bounded, thread-safe)."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> LoadedModel | None:
        with self._lock:
            model = self._items.get(key)
            if model is not None:
                self._items.move_to_end(key)
            return model

    def put(self, key: str, model: LoadedModel) -> None:
        with self._lock:
            self._items[key] = model
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


model_cache = ModelCache()
# (version pk, content hash, purpose) -> the model_cache key its model sits under.
_frozen_keys: dict[tuple[int, str, str], str] = {}
_FROZEN_KEYS_MAX = 256


def models_clear() -> None:
    """Forget every loaded model of this process (tests; a schema change of a draft)."""
    model_cache.clear()
    _frozen_keys.clear()


def _features(version: ModelVersion) -> list[str]:
    return [f["name"] for f in version.input_schema]


def _integrity_failure(version: ModelVersion, key: str, kind: str,
                       exc: IntegrityFailure) -> None:
    log.error("%s integrity failure for %s: %s", kind, version, exc.message)
    audit_event_record(action=Action.ARTIFACT_INTEGRITY_FAILED, obj=version,
                       model_id=version.model_id, model_name=version.model.name,
                       version_id=version.pk, version_label=version.label,
                       details={"key": key, "kind": kind, **exc.extra,
                                "problem": exc.items[0].code})


def artifact_read_verified(*, version: ModelVersion) -> bytes:
    """The version's artifact bytes, verified against its sha256; a mismatch is recorded
    (committed) and raised as IntegrityFailure."""
    try:
        return blob_read_verified(version.artifact_key, version.artifact_sha256)
    except IntegrityFailure as exc:
        _integrity_failure(version, version.artifact_key, "artifact", exc)
        raise


def artifact_model_load(*, version: ModelVersion) -> LoadedModel:
    """The artifact as registered, bound to the version's input schema."""
    # The allowlist is checked on every load, cached or not: a version stored with a
    # type an administrator has since removed (or that an older build let an uploader
    # trust) is not served. A version with no types beyond skops' own costs no query.
    if version.trusted_types:
        refused = untrusted_refusal(list(version.trusted_types), trusted_type_names())
        if refused:
            raise ValidationFailed(
                f"{version} holds types that are not on the trusted model types: "
                + ", ".join(refused[:20]) + f". It is not loaded. {HOW_TO_ASK}",
                code="untrusted_types", field="artifact", extra={"untrusted_types": refused})
    names = _features(version)
    cached = model_cache.get(version.artifact_sha256)
    if cached is not None and cached.feature_names == names:
        return cached
    data = artifact_read_verified(version=version)
    loaded = load_model(data, artifact_format=version.artifact_format,
                        trusted_types=version.trusted_types, feature_names=names)
    model_cache.put(version.artifact_sha256, loaded)
    return loaded


def artifact_model_remember(*, version: ModelVersion, loaded: LoadedModel) -> None:
    """Keep a model just loaded from the version's bytes (at registration), so its first
    prediction does not load it again."""
    model_cache.put(version.artifact_sha256, loaded)


def _evidence_model_load(version: ModelVersion, runtime: ServingRuntime | None,
                         purpose: Purpose) -> tuple[LoadedModel, str]:
    names = _features(version)
    engine = None if runtime is None else (
        runtime.single_runtime if purpose == "single" else runtime.batch_runtime)
    if (runtime is None or engine != ServingEngine.ONNXRUNTIME or not runtime.onnx_key
            or runtime.feature_names != names):
        # No evidence, scikit-learn chosen, or a native ONNX artifact: the artifact itself.
        return artifact_model_load(version=version), version.artifact_sha256
    cache_key = f"{runtime.onnx_sha256}:{purpose}"
    cached = model_cache.get(cache_key)
    if cached is not None and cached.feature_names == names:
        return cached, cache_key
    try:
        data = blob_read_verified(runtime.onnx_key, runtime.onnx_sha256)
    except IntegrityFailure as exc:
        _integrity_failure(version, runtime.onnx_key, "serving_onnx", exc)
        raise
    loaded = load_model(data, artifact_format=ArtifactFormat.ONNX, trusted_types=[],
                        feature_names=names)
    loaded.details["serving"] = {"status": runtime.status, "purpose": purpose,
                                 "onnx_sha256": runtime.onnx_sha256,
                                 "max_abs_diff": runtime.max_abs_diff}
    model_cache.put(cache_key, loaded)
    return loaded, cache_key


def version_model_load(*, version: ModelVersion, purpose: Purpose = "single") -> LoadedModel:
    """The model that serves ``version`` for ``purpose`` (see the module's steps)."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, not {purpose!r}")
    if version.state == VersionState.DRAFT or not version.content_hash:
        return artifact_model_load(version=version)
    frozen = (version.pk, version.content_hash, purpose)
    key = _frozen_keys.get(frozen)
    if key is not None:
        cached = model_cache.get(key)
        if cached is not None and cached.feature_names == _features(version):
            return cached
    runtime = ServingRuntime.objects.filter(version=version).first()
    loaded, key = _evidence_model_load(version, runtime, purpose)
    if len(_frozen_keys) >= _FROZEN_KEYS_MAX:
        _frozen_keys.clear()
    _frozen_keys[frozen] = key
    return loaded
