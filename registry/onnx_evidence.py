"""Serving runtime: convert skops models to ONNX where that is provably safe.

One scikit-learn call for one row costs 0.4–13 ms; the same model in
onnxruntime costs tens of microseconds. At submit, ``serving_runtime_build``
converts the model with skl2onnx, checks on the reference sample that both
runtimes give the same scores, times both, and records the choice (per purpose:
single rows, batches) with its evidence in a ``ServingRuntime`` row. ONNX is
only ever chosen when the scores matched within ``ATTEST_ONNX_TOLERANCE``.
``registry.loading`` serves the chosen runtime, verifying the ONNX bytes' hash
on every load as it does for artifacts. The reference sample is
``registry.reference.reference_sample``.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import io
import logging
import math
import os
import time
from typing import Any, Literal

import numpy as np
from django.conf import settings
from django.db import transaction

from core.errors import Conflict, ValidationFailed

from .models import (
    ArtifactFormat,
    ModelVersion,
    ServingEngine,
    ServingRuntime,
    ServingStatus,
    VersionState,
)
from .reference import SAMPLE_SEED, reference_sample
from .runtime import LoadedModel, bind_features, load_model
from .sandbox import sandbox_run
from .storage import blob_put

log = logging.getLogger(__name__)

Purpose = Literal["single", "batch"]
PURPOSES = ("single", "batch")

# Opset 17 / ai.onnx.ml 3: supported by every onnxruntime this project accepts (>= 1.18).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
SINGLE_CALLS = 200
MIN_SINGLE_CALLS = 20
SINGLE_BUDGET_S = 1.0  # per runtime; a 13 ms forest stops after ~75 calls
BATCH_ROWS = 20_000
BATCH_BUDGET_S = 2.0
BATCH_REPEATS = 3
DETAIL_LIMIT = 600


# -- building the runtime at submit ---------------------------------------------------------

def serving_runtime_build(*, version: ModelVersion, data: bytes,
                          loaded: LoadedModel) -> ServingRuntime:
    """Decide how ``version`` is served and save the evidence; no audit event.

    ``data`` are the version's verified artifact bytes and ``loaded`` the model
    loaded from them. Steps:

    1. Draw the reference sample from the training profile.
    2. Native ONNX: nothing to convert; time onnxruntime, serve with it.
    3. skops: convert with skl2onnx (one float tensor for a numeric schema, else
       one input per feature, strings for categories). A converter error means
       ``unsupported`` with its message, served by scikit-learn.
    4. Score the sample with both runtimes; ``equivalent`` iff the largest
       absolute difference in any class probability is within the tolerance.
    5. Time both runtimes (single rows: p50/p95 over up to 200 calls; batch:
       rows/s on up to 20,000 rows). Per purpose, choose the faster *eligible*
       runtime; ONNX is eligible only when equivalent.
    6. Store the ONNX bytes (content-addressed) when equivalent, then save the
       row. A draft's earlier row (a submit that failed after the build) is
       replaced; any other version's evidence is never rewritten.

    Takes a second or two for small models (longer for slow ones, bounded by the
    timing budgets); call it outside a transaction that holds locks.
    """
    sha = hashlib.sha256(data).hexdigest()
    if sha != version.artifact_sha256:
        raise ValueError("serving_runtime_build got bytes that are not this version's artifact")
    names = [f["name"] for f in version.input_schema]
    if loaded.feature_names != names:
        bind_features(loaded, names)
    tolerance = float(getattr(settings, "ATTEST_ONNX_TOLERANCE", 1e-5))
    sample = reference_sample(version.input_schema, version.dataset.profile)
    fields: dict[str, Any] = {
        "source_sha256": sha, "feature_names": names, "tolerance": tolerance,
        "sample_rows": len(sample), "sample_seed": SAMPLE_SEED,
    }
    if version.artifact_format == ArtifactFormat.ONNX:
        timings = {ServingEngine.ONNXRUNTIME: _time_registered(loaded, sample)}
        fields.update(status=ServingStatus.NATIVE_ONNX, single_runtime=ServingEngine.ONNXRUNTIME,
                      batch_runtime=ServingEngine.ONNXRUNTIME,
                      timings=_with_environment(timings))
        return _save(version, fields)

    timings = {ServingEngine.SKLEARN: _time_registered(loaded, sample)}
    converted, converter, problem = _convert_sandboxed(loaded.estimator, version.input_schema,
                                                       sample)
    fields["converter"] = converter
    onnx_model = None
    if converted is not None:
        fields.update(onnx_sha256=hashlib.sha256(converted).hexdigest(), onnx_size=len(converted))
        try:
            onnx_model = load_model(converted, artifact_format=ArtifactFormat.ONNX,
                                    trusted_types=[], feature_names=names)
            diff = _max_abs_diff(loaded, onnx_model, sample)
        except Exception as exc:  # noqa: BLE001 - a converted graph that cannot score is unsupported
            onnx_model, problem = None, "The converted model could not score the reference " \
                                        f"sample: {_describe(exc)}"
    if onnx_model is None:
        fields.update(status=ServingStatus.UNSUPPORTED, detail=problem[:DETAIL_LIMIT],
                      single_runtime=ServingEngine.SKLEARN, batch_runtime=ServingEngine.SKLEARN,
                      timings=_with_environment(timings))
        return _save(version, fields)

    equivalent = diff <= tolerance
    timings[ServingEngine.ONNXRUNTIME] = _time_runtime(onnx_model, sample)
    eligible = [ServingEngine.SKLEARN] + ([ServingEngine.ONNXRUNTIME] if equivalent else [])
    single = min(eligible, key=lambda e: timings[e]["single_p50_us"])
    batch = max(eligible, key=lambda e: timings[e]["batch_rows_per_s"])
    fields.update(max_abs_diff=diff, single_runtime=single, batch_runtime=batch,
                  timings=_with_environment(timings))
    if equivalent:
        key, _created = blob_put(io.BytesIO(converted), fields["onnx_sha256"])
        fields.update(status=ServingStatus.EQUIVALENT, onnx_key=key)
    else:
        fields.update(status=ServingStatus.NOT_EQUIVALENT,
                      detail=f"The ONNX scores differ from scikit-learn's by up to {diff:.3g} "
                             f"(tolerance {tolerance:g}); serving with scikit-learn.")
    return _save(version, fields)


def _time_registered(loaded: LoadedModel, sample: list[dict]) -> dict:
    """Time the registered model; it failing on its own reference sample refuses the build."""
    try:
        return _time_runtime(loaded, sample)
    except ValidationFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any estimator error is the artifact's problem
        raise ValidationFailed(
            "The model fails on rows drawn from its training profile (the reference sample): "
            f"{_describe(exc)}", code="reference_sample_failed", field="artifact") from exc


def _save(version: ModelVersion, fields: dict) -> ServingRuntime:
    with transaction.atomic():
        existing = ServingRuntime.objects.select_for_update().filter(version=version).first()
        if existing is not None:
            if version.state != VersionState.DRAFT:
                raise Conflict(f"{version} already has its serving evidence; it is not rebuilt.",
                               code="serving_runtime_exists")
            existing.delete()
        return ServingRuntime.objects.create(version=version, **fields)


def _final_estimator(estimator):
    while hasattr(estimator, "steps"):  # Pipeline, possibly nested
        estimator = estimator.steps[-1][1]
    return estimator


def _convert_sandboxed(estimator, schema: list[dict],
                       sample: list[dict]) -> tuple[bytes | None, str, str]:
    """``_convert`` in a limited child process (registry.sandbox); the graph comes back
    as data (base64 in JSON) and is then checked here like any uploaded ONNX file."""
    def convert() -> dict:
        onx, converter, problem = _convert(estimator, schema, sample)
        return {"onnx": base64.b64encode(onx).decode() if onx is not None else None,
                "converter": converter, "problem": problem}

    try:
        answer = sandbox_run(convert, what="ONNX conversion")
    except ValidationFailed as exc:
        return None, "", exc.message
    onx = answer.get("onnx") if isinstance(answer, dict) else None
    return (base64.b64decode(onx) if isinstance(onx, str) else None,
            str(answer.get("converter") or ""), str(answer.get("problem") or ""))


def _convert(estimator, schema: list[dict], sample: list[dict]) -> tuple[bytes | None, str, str]:
    """(ONNX bytes or None, converter name, why not). Tries one tensor, then one input per feature.

    A pipeline that picks columns by name (a ColumnTransformer) or one with
    category features cannot take a single float tensor; per-feature inputs
    (named after the features, in schema order) serve both.
    """
    try:
        import skl2onnx
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    except ImportError as exc:
        return None, "", f"skl2onnx is not installed ({exc})."
    converter = f"skl2onnx {skl2onnx.__version__}"
    final = _final_estimator(estimator)
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    names = [f["name"] for f in schema]
    attempts = []
    if all(f["type"] != "category" for f in schema):
        matrix = np.array([[_as_number(row[n]) for n in names] for row in sample[:1]],
                          dtype=np.float32)
        attempts.append({"X": matrix})
    attempts.append({"initial_types": [
        (name, StringTensorType([None, 1]) if f["type"] == "category"
         else FloatTensorType([None, 1])) for name, f in zip(names, schema, strict=True)]})
    problems = []
    for kwargs in attempts:
        try:
            onx = to_onnx(estimator, options=options, target_opset=TARGET_OPSET, **kwargs)
            return onx.SerializeToString(), converter, ""
        except Exception as exc:  # noqa: BLE001 - skl2onnx raises many kinds for "cannot convert"
            problems.append(_describe(exc))
    # The first attempt's message is the informative one for numeric schemas.
    return None, converter, f"{converter} cannot convert {type(estimator).__name__}: {problems[0]}"


def _as_number(value) -> float:
    return math.nan if value is None else float(value)


def _describe(exc: BaseException) -> str:
    """Class and first line of an error (skl2onnx may dump whole tree attributes)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text[:300]}"
    if exc.__cause__ is not None:
        text += f" (caused by {_describe(exc.__cause__)})"
    return text


def _max_abs_diff(reference: LoadedModel, candidate: LoadedModel, sample: list[dict]) -> float:
    expected = reference.predict_proba(sample)
    actual = candidate.predict_proba(sample)
    if expected.shape != actual.shape:
        raise ValueError(f"ONNX returned shape {actual.shape}, scikit-learn {expected.shape}")
    return float(np.max(np.abs(expected - actual)))


# -- timing -----------------------------------------------------------------------------------

def _time_runtime(model: LoadedModel, sample: list[dict]) -> dict:
    """Single-row latency (p50/p95, µs) and batch throughput, bounded in time.

    Timed through ``LoadedModel.predict_proba`` with dict rows, so the cost of
    building the input (a DataFrame for scikit-learn, tensors for onnxruntime)
    is counted as it is in serving. As ``timeit`` does, the garbage collector is
    paused while timing and the batch figure is the best of up to three runs:
    on a shared machine a single run mostly measures the neighbours.
    """
    model.predict_proba(sample[:1])  # warm-up: first-call allocations, lazy imports
    # Tests shrink the budgets (ATTEST_SERVING_TIMING_SCALE); the choice logic is the same.
    scale = float(getattr(settings, "ATTEST_SERVING_TIMING_SCALE", 1.0))
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        durations = []
        deadline = time.perf_counter() + SINGLE_BUDGET_S * scale
        for i in range(SINGLE_CALLS):
            row = [sample[i % len(sample)]]
            started = time.perf_counter_ns()
            model.predict_proba(row)
            durations.append((time.perf_counter_ns() - started) / 1000)
            if len(durations) >= MIN_SINGLE_CALLS and time.perf_counter() > deadline:
                break
        # Probe with the whole sample, then size the batch to fit the budget.
        started = time.perf_counter()
        model.predict_proba(sample)
        probe_rate = len(sample) / max(time.perf_counter() - started, 1e-9)
        n = int(min(BATCH_ROWS * scale,
                    max(len(sample), probe_rate * BATCH_BUDGET_S * scale / BATCH_REPEATS)))
        n = max(n, len(sample))
        batch = (sample * math.ceil(n / len(sample)))[:n]
        runs = []
        deadline = time.perf_counter() + BATCH_BUDGET_S * scale
        while len(runs) < BATCH_REPEATS and (not runs or time.perf_counter() < deadline):
            started = time.perf_counter()
            model.predict_proba(batch)
            runs.append(max(time.perf_counter() - started, 1e-9))
    finally:
        if was_enabled:
            gc.enable()
    best = min(runs)
    return {
        "single_calls": len(durations),
        "single_p50_us": round(float(np.percentile(durations, 50)), 1),
        "single_p95_us": round(float(np.percentile(durations, 95)), 1),
        "batch_rows": n,
        "batch_runs": len(runs),
        "batch_seconds": round(best, 4),
        "batch_rows_per_s": round(n / best, 1),
    }


def _with_environment(timings: dict) -> dict:
    import platform

    import onnxruntime
    import sklearn

    return {**{str(k): v for k, v in timings.items()},
            "environment": {"python": platform.python_version(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count(), "scikit-learn": sklearn.__version__,
                            "onnxruntime": onnxruntime.__version__}}
