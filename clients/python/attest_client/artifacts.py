"""Model files: refuse pickles, save estimators with skops, convert to ONNX, score locally.

Attest accepts skops and ONNX files only: a pickle or joblib file runs arbitrary code
when it is loaded, on the server and on every reviewer's machine. The client refuses
one before sending it (by content, whatever its name), with the same advice the
server gives.

Scoring here mirrors how the server scores (``registry.runtime.LoadedModel``): an
estimator fitted on a DataFrame gets a DataFrame with the schema's columns, any
other a float matrix in schema order; an ONNX graph gets one float matrix or one
tensor per feature. The reproducibility record compares exactly these scores.
"""

from __future__ import annotations

import bz2
import io
import lzma
import pickletools
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from .errors import PickleRefused, UnconvertibleModel, UsageError

CONVERT_HINT = (
    "Pickle and joblib files can run arbitrary code when loaded, so Attest refuses them. "
    "Load the model where it was trained and save it safely instead: with skops "
    "(`import skops.io as sio; sio.dump(model, 'model.skops')`) or as ONNX (`from skl2onnx "
    "import to_onnx`), or let `attest_client.register(model=..., X_train=...)` do it from "
    "your notebook."
)
ONNX_TOLERANCE = 1e-4  # float32 graphs against float64 estimators


def _looks_like_pickle(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    # Protocols 0 and 1 have no magic number: decode (never execute) a few opcodes.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ops = [op.name for op, _a, _p in islice(pickletools.genops(io.BytesIO(head)), 6)]
    except Exception:  # noqa: BLE001 - not decodable as a pickle
        return False
    return len(ops) >= 3 and ops[0] in {"PROTO", "FRAME", "MARK", "GLOBAL", "STACK_GLOBAL",
                                        "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "INST",
                                        "OBJ", "SHORT_BINUNICODE"}


def detect_pickle(data: bytes) -> str | None:
    """Describe pickle-like content (plain, joblib-compressed, or a zip holding one), or None."""
    if _looks_like_pickle(data[:4096]):
        return "a Python pickle"
    inner = None
    try:
        if data[:2] == b"\x1f\x8b":
            inner = "gzip", zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:65536], 512)
        elif data[:3] == b"BZh":
            inner = "bz2", bz2.BZ2Decompressor().decompress(data[:65536])[:512]
        elif data[:6] == b"\xfd7zXZ\x00":
            inner = "xz", lzma.LZMADecompressor().decompress(data[:65536], 512)
        elif data[:2] in (b"x\x9c", b"x\x01", b"x\xda", b"x^"):
            inner = "zlib", zlib.decompressobj().decompress(data[:65536], 512)
        elif data[:4] == b"ZF0x":
            inner = "joblib-zlib", zlib.decompressobj().decompress(data[16:65536], 512)
        elif data[:4] == b"\x04\x22\x4d\x18":
            inner = "lz4", b""
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError):
        inner = None
    if inner is not None and (not inner[1] or _looks_like_pickle(inner[1])):
        return f"a {inner[0]}-compressed pickle (as joblib writes)"
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name in archive.namelist():
                    if name.endswith((".pkl", ".pickle", ".joblib")):
                        return f"a zip archive holding a pickle ({name})"
        except zipfile.BadZipFile:
            return None
    return None


def refuse_pickle(data: bytes, name: str) -> None:
    found = detect_pickle(data)
    if found:
        raise PickleRefused(f"{name} is {found}. {CONVERT_HINT}", code="pickle_refused")


def artifact_format(name: str, data: bytes, declared: str | None = None) -> str:
    """skops or onnx, from ``declared``, the file's suffix, or its content."""
    if declared:
        return declared
    lowered = name.lower()
    if lowered.endswith(".skops"):
        return "skops"
    if lowered.endswith(".onnx"):
        return "onnx"
    if data[:4] == b"PK\x03\x04":
        return "skops"
    raise UsageError(f"cannot tell the format of {name}: name it *.skops or *.onnx, or pass "
                     "--format skops|onnx")


# -- skops --------------------------------------------------------------------------------

def untrusted_types(data: bytes) -> list[str]:
    """The types in a skops file beyond skops' defaults (what the server must trust)."""
    import skops.io as sio

    if data[:4] != b"PK\x03\x04":
        raise UsageError("not a skops file (a skops file is a zip archive): save the model with "
                         "skops.io.dump(model, 'model.skops')")
    try:
        return sorted(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in many ways
        raise UsageError(f"the skops file cannot be read ({exc.__class__.__name__}: "
                         f"{str(exc)[:200]})") from None


@dataclass
class Serialized:
    data: bytes
    artifact_format: str
    trusted_types: list[str] = field(default_factory=list)
    onnx_check: dict | None = None


def skops_serialize(estimator: Any) -> Serialized:
    """Save ``estimator`` with skops and load it back with exactly its listed types.

    Loading back proves the file restores a model (skops refuses some objects only
    at load time); the types are what the user is shown and the server is asked to
    trust.
    """
    import skops.io as sio

    name = type(estimator).__name__
    try:
        data = sio.dumps(estimator)
    except Exception as exc:  # noqa: BLE001 - skops raises TypeError, PicklingError, ...
        raise UnconvertibleModel(
            f"skops cannot save this {name} ({exc.__class__.__name__}: {str(exc)[:200]}). "
            "Replace lambdas and locally defined functions with importable ones, or convert "
            "the model to ONNX (format='onnx').", code="unconvertible") from None
    types = untrusted_types(data)
    local = [t for t in types if t.split(".", 1)[0] in ("__main__", "__mp_main__")]
    if local:
        raise UnconvertibleModel(
            f"this {name} uses {', '.join(local)}, defined in this notebook or script: the server "
            "cannot import it. Move the class or function into an installed module (the same "
            "on the server), or convert the model to ONNX (format='onnx').",
            code="unconvertible")
    try:
        sio.loads(data, trusted=types)
    except Exception as exc:  # noqa: BLE001
        raise UnconvertibleModel(
            f"this {name} saved with skops does not load back ({exc.__class__.__name__}: "
            f"{str(exc)[:200]}); convert it to ONNX instead (format='onnx').",
            code="unconvertible") from None
    return Serialized(data, "skops", types)


def skops_load(data: bytes, trusted: list[str]) -> Any:
    import skops.io as sio

    try:
        return sio.loads(data, trusted=list(trusted))
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"the skops file does not load ({exc.__class__.__name__}: "
                         f"{str(exc)[:200]})") from None


# -- ONNX ---------------------------------------------------------------------------------

def _numeric(frame: Any) -> bool:
    import pandas as pd

    return all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
               for t in frame.dtypes)


def onnx_convert(estimator: Any, X: Any) -> bytes:
    """Convert with skl2onnx: one float input [N, features] for numeric data, else one
    input per column. Class probabilities as a plain tensor (no ZipMap)."""
    try:
        from skl2onnx import to_onnx
    except ImportError:
        raise UsageError("ONNX conversion needs skl2onnx and onnxruntime: pip install "
                         "'attest-client[onnx]'") from None
    import pandas as pd

    name = type(estimator).__name__
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
    sample = (frame.iloc[:1].to_numpy(dtype=np.float32) if _numeric(frame)
              else frame.iloc[:1])
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = to_onnx(estimator, sample, options={id(final): {"zipmap": False}},
                            target_opset={"": 17, "ai.onnx.ml": 3})
    except Exception as exc:  # noqa: BLE001 - skl2onnx raises many kinds for the unsupported
        raise UnconvertibleModel(
            f"skl2onnx cannot convert this {name} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); register it as skops "
            "instead (format='skops').", code="unconvertible") from None
    return graph.SerializeToString()


class OnnxScorer:
    """Scores rows with onnxruntime the way the server feeds its ONNX models."""

    def __init__(self, data: bytes, features: list[str]) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError("scoring an ONNX model here needs onnxruntime: pip install "
                             "'attest-client[onnx]'") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(data, sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.features = features
        self.inputs = [(i.name, i.type) for i in self.session.get_inputs()]
        if len(self.inputs) > 1 and sorted(n for n, _ in self.inputs) == sorted(features):
            self.inputs.sort(key=lambda i: features.index(i[0]))
        outputs = self.session.get_outputs()
        self.proba = next((o.name for o in outputs if o.type.startswith("seq(map(")), None) or \
            next((o.name for o in outputs if o.type in ("tensor(float)", "tensor(double)")
                  and len(o.shape) == 2), None)
        if self.proba is None:
            raise UsageError("the ONNX model has no class-probability output")

    def predict_proba(self, rows: list[dict]) -> np.ndarray:
        dtypes = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                  "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}
        feeds = {}
        if len(self.inputs) == 1:
            name, kind = self.inputs[0]
            matrix = [[row.get(f) for f in self.features] for row in rows]
            feeds[name] = _tensor(matrix, kind, dtypes)
        else:
            for (name, kind), feature in zip(self.inputs, self.features, strict=True):
                feeds[name] = _tensor([[row.get(feature)] for row in rows], kind, dtypes)
        out = self.session.run([self.proba], feeds)[0]
        if isinstance(out, list) and out and isinstance(out[0], dict):
            keys = list(out[0])
            return np.array([[item[k] for k in keys] for item in out], dtype=float)
        return np.asarray(out, dtype=float)


def _tensor(matrix: list, kind: str, dtypes: dict) -> np.ndarray:
    if kind == "tensor(string)":
        return np.array([["" if v is None else str(v) for v in row] for row in matrix],
                        dtype=object)
    return np.array([[np.nan if v is None else float(v) for v in row] for row in matrix],
                    dtype=np.float64).astype(dtypes.get(kind, np.float32))


def onnx_check(data: bytes, estimator: Any, X: Any, features: list[str],
               rows: int = 1000) -> dict:
    """Score up to ``rows`` rows of X (here, on this machine) with both; the largest gap."""
    import pandas as pd

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=features)
    sample = frame.iloc[:rows]
    records = sample.to_dict("records")
    ours = OnnxScorer(data, features).predict_proba(records)
    theirs = np.asarray(estimator.predict_proba(sample if hasattr(estimator,
                                                                  "feature_names_in_")
                                                else sample.to_numpy()), dtype=float)
    gap = float(np.abs(ours - theirs).max()) if ours.shape == theirs.shape else float("inf")
    return {"rows": len(records), "max_abs_diff": gap, "tolerance": ONNX_TOLERANCE,
            "equal": gap <= ONNX_TOLERANCE}


# -- scoring rows as the server does --------------------------------------------------------

def predict_rows(model: Any, rows: list[dict], features: list[str]) -> np.ndarray:
    """Class probabilities for JSON-like rows, fed as the server feeds ``model``."""
    if isinstance(model, OnnxScorer):
        return model.predict_proba(rows)
    if hasattr(model, "feature_names_in_"):
        import pandas as pd

        matrix = pd.DataFrame([[row.get(n) for n in features] for row in rows], columns=features)
    else:
        matrix = np.array([[np.nan if row.get(n) is None else float(row.get(n))
                            for n in features] for row in rows], dtype=float)
    return np.asarray(model.predict_proba(matrix), dtype=float)
