"""Reading a local MLflow model directory, without MLflow and without loading the model.

For teams leaving an inherited MLflow stack: ``attest import-mlflow PATH`` reads the
directory's ``MLmodel`` file (its flavours, signature, input example, creation
record) and environment files (``requirements.txt``, ``python_env.yaml``,
``conda.yaml``), and registers the model with its schema and environment.

Two flavours are imported as they are: ``onnx``, and ``sklearn`` saved with
``serialization_format: skops`` (mlflow 3's default). Every other flavour either
pickles its model (``sklearn`` with pickle or cloudpickle, ``pyfunc`` python models,
``pytorch``, ...) — loading that runs arbitrary code, so it is refused with the
conversion hint and the file is never opened — or stores a format Attest does not
serve; both are refused before anything is sent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .artifacts import CONVERT_HINT, detect_pickle
from .errors import PickleRefused, UnconvertibleModel, UsageError

# MLflow column types -> Attest feature types.
COLUMN_TYPES = {"double": "number", "float": "number", "long": "integer", "integer": "integer",
                "boolean": "boolean", "string": "category"}
PICKLE_FLAVOURS = {"sklearn", "pytorch", "keras", "statsmodels", "h2o", "spark", "fastai",
                   "lightgbm", "catboost", "prophet", "pmdarima", "diviner", "paddle",
                   "spacy", "sentence_transformers", "langchain", "transformers"}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


@dataclass
class MlflowModel:
    path: Path
    artifact: Path
    artifact_format: str
    features: list[dict] = field(default_factory=list)  # [{name, type, required}]
    labels: list[str] | None = None
    input_example: list[dict] | None = None
    training_environment: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # mlflow_version, run_id, model_uuid, created

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]

    def code_reference(self) -> str:
        run = self.info.get("run_id")
        return f"mlflow run {run}" if run else f"mlflow model {self.info.get('model_uuid', '')}"


def _load_mlmodel(directory: Path) -> dict:
    mlmodel = directory / "MLmodel"
    if not directory.exists():
        raise UsageError(f"MLflow model directory not found: {directory}")
    if not mlmodel.is_file():
        raise UsageError(f"{directory} is not an MLflow model directory (no MLmodel file)")
    try:
        data = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read {mlmodel}: {exc.__class__.__name__}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise UsageError(f"{mlmodel} lists no flavours")
    return data


def _refuse(flavors: dict, directory: Path) -> None:
    names = sorted(flavors)
    pickled = sorted(set(names) & PICKLE_FLAVOURS)
    pyfunc = flavors.get("python_function") or {}
    loader = str(pyfunc.get("loader_module") or "")
    if pickled or loader in ("mlflow.pyfunc.model", "mlflow.sklearn"):
        flavour = pickled[0] if pickled else "python_function"
        stored = (flavors.get(flavour) or {}).get("pickled_model") or pyfunc.get("model_path") \
            or pyfunc.get("data") or "its model file"
        raise PickleRefused(
            f"the MLflow model in {directory} uses the '{flavour}' flavour, which stores the "
            f"model as a pickle ({stored}); Attest does not load it. {CONVERT_HINT} From MLflow: "
            "`model = mlflow.sklearn.load_model(PATH)` in the environment that trained it, then "
            "save it with skops or log it with mlflow.onnx.", code="pickle_refused")
    raise UnconvertibleModel(
        f"the MLflow model in {directory} has the flavours {', '.join(names)}; Attest serves "
        "ONNX and skops models: convert it to ONNX (e.g. with skl2onnx or onnxmltools) and "
        "log it with mlflow.onnx, or save it with skops.", code="unsupported_flavour")


def _signature(data: dict) -> tuple[list[dict], list[str] | None]:
    signature = data.get("signature") or {}
    raw = signature.get("inputs")
    features: list[dict] = []
    if raw:
        try:
            columns = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise UsageError("the MLmodel signature's inputs are not valid JSON") from None
        for column in columns or []:
            if column.get("type") == "tensor" or "name" not in column:
                return [], None  # tensor signatures name no columns
            features.append({"name": str(column["name"]),
                             "type": COLUMN_TYPES.get(str(column.get("type")), "category"),
                             "required": bool(column.get("required", True))})
    return features, None


def _input_example(directory: Path, data: dict) -> list[dict] | None:
    info = data.get("saved_input_example_info") or {}
    name = info.get("artifact_path") or "input_example.json"
    path = directory / name
    if not path.is_file():
        return None
    try:
        example = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(example, dict) and "dataframe_split" in example:
        example = example["dataframe_split"]
    if isinstance(example, dict) and "columns" in example and "data" in example:
        return [dict(zip(example["columns"], row, strict=False)) for row in example["data"]]
    if isinstance(example, dict) and "inputs" in example and isinstance(example["inputs"], dict):
        columns = example["inputs"]
        n = max((len(v) for v in columns.values() if isinstance(v, list)), default=0)
        return [{k: v[i] for k, v in columns.items()} for i in range(n)]
    if isinstance(example, list) and all(isinstance(r, dict) for r in example):
        return example
    return None


def _environment(directory: Path, data: dict) -> dict:
    env: dict[str, Any] = {"source": "mlflow", "packages": {}}
    pyfunc = (data.get("flavors") or {}).get("python_function") or {}
    if pyfunc.get("python_version"):
        env["python"] = str(pyfunc["python_version"])
    python_env = directory / "python_env.yaml"
    if python_env.is_file():
        try:
            parsed = yaml.safe_load(python_env.read_text(encoding="utf-8")) or {}
            if parsed.get("python"):
                env["python"] = str(parsed["python"])
        except yaml.YAMLError:
            pass
    requirements = directory / "requirements.txt"
    if requirements.is_file():
        lines = requirements.read_text(encoding="utf-8", errors="replace").splitlines()
        env["requirements"] = [line.strip() for line in lines if line.strip()
                               and not line.lstrip().startswith("#")][:500]
        for line in lines:
            match = _REQUIREMENT.match(line)
            if match:
                env["packages"][match.group(1).lower()] = match.group(2)
    return env


def read_mlflow_model(path: str | Path) -> MlflowModel:
    """Read the directory; refuse anything but an ONNX flavour (see the module doc)."""
    directory = Path(path).expanduser()
    data = _load_mlmodel(directory)
    flavors = data["flavors"]
    onnx, sklearn = flavors.get("onnx"), flavors.get("sklearn")
    if isinstance(onnx, dict):
        artifact, fmt = directory / str(onnx.get("data") or "model.onnx"), "onnx"
    elif isinstance(sklearn, dict) and sklearn.get("serialization_format") == "skops":
        artifact, fmt = directory / str(sklearn.get("pickled_model") or "model.skops"), "skops"
    else:
        _refuse(flavors, directory)
    if not artifact.is_file():
        raise UsageError(f"the MLmodel file names {artifact.name}, which is not in {directory}")
    head = artifact.read_bytes()[:65536]
    if detect_pickle(head):
        raise PickleRefused(f"{artifact} is a pickle, not a {fmt} file. {CONVERT_HINT}",
                            code="pickle_refused")
    features, labels = _signature(data)
    example = _input_example(directory, data)
    if not features and example:
        features = [{"name": str(k), "type": "number", "required": True} for k in example[0]]
    info = {k: data.get(k) for k in ("mlflow_version", "run_id", "model_uuid", "utc_time_created")
            if data.get(k)}
    return MlflowModel(path=directory, artifact=artifact, artifact_format=fmt,
                       features=features, labels=labels,
                       input_example=example, training_environment=_environment(directory, data),
                       info=info)
