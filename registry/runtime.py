"""Artifact bytes into a model that scores rows.

``load_model`` turns verified bytes into a ``LoadedModel`` with one interface,
``predict_proba(rows)``, whatever the format. ``dry_run`` proves at
registration that an artifact accepts the declared input schema. Loading a
*version* (reading and verifying its bytes, choosing its runtime, the process
cache) is ``registry.loading``'s job.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ValidationFailed

from .models import ArtifactFormat
from .reference import reference_row


@dataclass
class LoadedModel:
    artifact_format: str
    feature_names: list[str]
    classes: list[str]
    runtime: str
    estimator: Any = None
    session: Any = None
    details: dict = field(default_factory=dict)
    _onnx_inputs: list[tuple[str, str]] = field(default_factory=list)
    _onnx_proba: str | None = None
    _onnx_zipmap: bool = False
    _frame_input: bool = False

    def predict_proba(self, rows: list[dict]) -> np.ndarray:
        if self.artifact_format == ArtifactFormat.SKOPS:
            return np.asarray(self.estimator.predict_proba(self._sk_input(rows)), dtype=float)
        return self._onnx_predict(rows)

    def predict_proba_matrix(self, matrix: np.ndarray) -> np.ndarray | None:
        """Score a float64 matrix (rows x ``feature_names``, NaN for missing) without
        building one dict per row; None when this model needs per-row input (one ONNX
        input per feature, or a type it cannot take as a float matrix). Gives what ``predict_proba``
        gives for the same rows (scikit-learn converts either to the same float array)."""
        if self.artifact_format == ArtifactFormat.SKOPS:
            if self._frame_input:  # fitted on a frame: the same columns, numeric
                import pandas as pd

                matrix = pd.DataFrame(matrix, columns=self.feature_names)
            return np.asarray(self.estimator.predict_proba(matrix), dtype=float)
        if len(self._onnx_inputs) != 1:
            return None
        name, kind = self._onnx_inputs[0]
        dtype = _ONNX_DTYPES.get(kind)
        if dtype is None:
            return None
        outputs = self.session.run([self._onnx_proba], {name: matrix.astype(dtype)})[0]
        if self._onnx_zipmap:
            keys = list(outputs[0].keys())
            return np.array([[item[k] for k in keys] for item in outputs], dtype=float)
        return np.asarray(outputs, dtype=float)

    # -- scikit-learn -------------------------------------------------------------
    def _sk_input(self, rows: list[dict]):
        if self._frame_input:
            import pandas as pd

            # A boolean reaches the estimator as 0/1, as in the matrix and ONNX paths
            # (_as_float): a training file's 0/1 column was fitted as numbers, and a bool
            # column would be left out by a numeric column selector.
            return pd.DataFrame([[_numeric_bool(row.get(n)) for n in self.feature_names]
                                 for row in rows], columns=self.feature_names)
        return np.array([[_as_float(row.get(n)) for n in self.feature_names] for row in rows],
                        dtype=float)

    # -- ONNX ----------------------------------------------------------------------
    def _onnx_predict(self, rows: list[dict]) -> np.ndarray:
        feeds = {}
        if len(self._onnx_inputs) == 1:
            name, kind = self._onnx_inputs[0]
            matrix = [[row.get(n) for n in self.feature_names] for row in rows]
            feeds[name] = _tensor(matrix, kind)
        else:
            for (name, kind), feature in zip(self._onnx_inputs, self.feature_names, strict=True):
                feeds[name] = _tensor([[row.get(feature)] for row in rows], kind)
        outputs = self.session.run([self._onnx_proba], feeds)[0]
        if self._onnx_zipmap:
            keys = list(outputs[0].keys())
            return np.array([[item[k] for k in keys] for item in outputs], dtype=float)
        return np.asarray(outputs, dtype=float)


def _numeric_bool(value):
    return int(value) if isinstance(value, bool) else value


def _as_float(value) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value)


_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def _tensor(matrix, kind: str):
    if kind == "tensor(string)":
        return np.array([[("" if v is None else str(v)) for v in row] for row in matrix], dtype=object)
    dtype = _ONNX_DTYPES.get(kind)
    if dtype is None:
        raise ValidationFailed(f"ONNX input type {kind} is not supported.", code="unsupported_input")
    return np.array([[_as_float(v) for v in row] for row in matrix], dtype=np.float64).astype(dtype)


def onnx_providers() -> list[str]:
    """CUDA when onnxruntime has it (a gpu-queue worker), else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    preferred = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return preferred or available


def load_model(data: bytes, *, artifact_format: str, trusted_types: list[str],
               feature_names: list[str] | None = None) -> LoadedModel:
    """Load verified bytes; with ``feature_names``, also check they fit the model.

    Raises ValidationFailed when the artifact cannot be loaded or cannot serve
    the schema.
    """
    if artifact_format == ArtifactFormat.SKOPS:
        model = _load_skops(data, trusted_types)
    elif artifact_format == ArtifactFormat.ONNX:
        model = _load_onnx(data)
    else:
        raise ValidationFailed(f"Unknown artifact format {artifact_format!r}.",
                               code="unsupported_format")
    if feature_names is not None:
        bind_features(model, feature_names)
    return model


def declared_features(model: LoadedModel) -> list[str] | None:
    """Feature names the artifact itself records, if any (sklearn's feature_names_in_)."""
    if model.artifact_format == ArtifactFormat.SKOPS and model._frame_input:
        return [str(n) for n in model.estimator.feature_names_in_]
    if model.artifact_format == ArtifactFormat.ONNX and len(model._onnx_inputs) > 1:
        return [name for name, _kind in model._onnx_inputs]
    return None


def bind_features(model: LoadedModel, feature_names: list[str]) -> None:
    """Check the schema's features fit the artifact, then fix the column order."""
    n = len(feature_names)
    if model.artifact_format == ArtifactFormat.SKOPS:
        estimator = model.estimator
        if model._frame_input:
            expected = [str(x) for x in estimator.feature_names_in_]
            if sorted(expected) != sorted(feature_names):
                missing = sorted(set(expected) - set(feature_names))
                extra = sorted(set(feature_names) - set(expected))
                raise ValidationFailed(
                    "The input schema does not match the features the model was fitted on"
                    + (f"; missing from the schema: {', '.join(missing)}" if missing else "")
                    + (f"; not known to the model: {', '.join(extra)}" if extra else "") + ".",
                    code="schema_mismatch", field="metadata.input_schema")
        else:
            n_expected = getattr(estimator, "n_features_in_", None)
            if n_expected is not None and n_expected != n:
                raise ValidationFailed(
                    f"The model expects {n_expected} input features but the input schema "
                    f"declares {n}.", code="schema_mismatch", field="metadata.input_schema")
    else:
        inputs = model._onnx_inputs
        if len(inputs) == 1:
            width = model.details.get("input_width")
            if isinstance(width, int) and width != n:
                raise ValidationFailed(
                    f"The ONNX model takes {width} features in its input '{inputs[0][0]}' but "
                    f"the input schema declares {n}.", code="schema_mismatch",
                    field="metadata.input_schema")
        elif len(inputs) != n:
            raise ValidationFailed(
                f"The ONNX model has {len(inputs)} inputs but the input schema declares {n} "
                "features.", code="schema_mismatch", field="metadata.input_schema")
        elif sorted(name for name, _ in inputs) == sorted(feature_names):
            # One input per feature: feed them by name, in schema order.
            model._onnx_inputs = sorted(inputs, key=lambda i: feature_names.index(i[0]))
    model.feature_names = list(feature_names)


def _load_skops(data: bytes, trusted_types: list[str]) -> LoadedModel:
    import sklearn
    import skops.io as sio

    try:
        estimator = sio.loads(data, trusted=list(trusted_types))
    except Exception as exc:  # noqa: BLE001 - skops raises UntrustedTypesFoundException etc.
        raise ValidationFailed(f"The skops file could not be loaded ({exc.__class__.__name__}: "
                               f"{exc}).", code="load_failed", field="artifact") from exc
    if not hasattr(estimator, "predict_proba"):
        raise ValidationFailed(
            f"The artifact holds a {type(estimator).__name__}, which has no predict_proba. Attest "
            "serves classifiers that report class probabilities.", code="not_a_classifier",
            field="artifact")
    classes = [str(c) for c in getattr(estimator, "classes_", [])]
    return LoadedModel(ArtifactFormat.SKOPS, [], classes, runtime="sklearn",
                       estimator=estimator, _frame_input=hasattr(estimator, "feature_names_in_"),
                       details={"estimator": f"{type(estimator).__module__}."
                                             f"{type(estimator).__name__}",
                                "framework": "scikit-learn",
                                "framework_version": sklearn.__version__})


def _load_onnx(data: bytes) -> LoadedModel:
    import onnxruntime as ort

    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(data, sess_options=options, providers=onnx_providers())
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph
        raise ValidationFailed(f"onnxruntime cannot load the model ({exc.__class__.__name__}).",
                               code="load_failed", field="artifact") from exc
    inputs = session.get_inputs()
    width = None
    if len(inputs) == 1 and len(inputs[0].shape) >= 2 and isinstance(inputs[0].shape[-1], int):
        width = inputs[0].shape[-1]
    proba_name, zipmap = None, False
    for out in session.get_outputs():
        if out.type.startswith("seq(map("):
            proba_name, zipmap = out.name, True
            break
        if out.type in ("tensor(float)", "tensor(double)") and len(out.shape) == 2:
            proba_name = out.name
    if proba_name is None:
        raise ValidationFailed("The ONNX model has no class-probability output (a float tensor "
                               "[N, classes] or a ZipMap).", code="not_a_classifier",
                               field="artifact")
    return LoadedModel(ArtifactFormat.ONNX, [], [], runtime="onnxruntime",
                       session=session, _onnx_inputs=[(i.name, i.type) for i in inputs],
                       _onnx_proba=proba_name, _onnx_zipmap=zipmap,
                       details={"framework": "onnx", "framework_version": ort.__version__,
                                "providers": session.get_providers(), "input_width": width})


def dry_run(model: LoadedModel, input_schema: list[dict], profile: dict,
            n_labels: int | None) -> dict:
    """Score one reference row; raise ValidationFailed unless the output is sane."""
    row = reference_row(input_schema, profile)
    started = time.perf_counter()
    try:
        proba = model.predict_proba([row])
    except ValidationFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any estimator error is the artifact's problem
        raise ValidationFailed(
            f"The dry-run prediction failed: {exc.__class__.__name__}: {str(exc)[:300]}",
            code="dry_run_failed", field="artifact", extra={"dry_run_input": row}) from exc
    took_ms = (time.perf_counter() - started) * 1000
    if proba.ndim != 2 or proba.shape[0] != 1:
        raise ValidationFailed(f"The dry run returned shape {proba.shape}, expected (1, classes).",
                               code="dry_run_failed", field="artifact")
    if n_labels is not None and proba.shape[1] != n_labels:
        raise ValidationFailed(
            f"The model returns {proba.shape[1]} class probabilities but the output schema "
            f"lists {n_labels} labels.", code="schema_mismatch", field="metadata.output_schema")
    if not np.all(np.isfinite(proba)) or abs(float(proba.sum()) - 1.0) > 1e-3:
        raise ValidationFailed("The dry run returned probabilities that are not finite or do not "
                               "sum to 1.", code="dry_run_failed", field="artifact")
    return {"ok": True, "input": row, "probabilities": [round(float(p), 6) for p in proba[0]],
            "runtime": model.runtime, "took_ms": round(took_ms, 3)}
