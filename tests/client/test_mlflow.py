"""`attest import-mlflow` on model directories written by mlflow itself
(tests/client/fixtures/make_mlflow_models.py says how they were made)."""

from __future__ import annotations

import shutil

import pytest
from attest_client import errors
from attest_client.mlflow_import import read_mlflow_model

from registry.models import ModelVersion

from ..artifacts import FEATURES_SMALL
from ..registry.helpers import register_dataset
from .conftest import FIXTURES

MLFLOW = FIXTURES / "mlflow"
MODEL = "sepsis-risk"


def test_it_reads_the_onnx_flavour_its_signature_and_environment():
    model = read_mlflow_model(MLFLOW / "onnx-model")
    assert model.artifact_format == "onnx" and model.artifact.name == "model.onnx"
    assert model.feature_names == FEATURES_SMALL
    assert {f["type"] for f in model.features} == {"number"}
    assert len(model.input_example) == 3 and set(model.input_example[0]) == set(FEATURES_SMALL)
    env = model.training_environment
    assert env["python"] == "3.12.1" and env["packages"]["numpy"] == "2.5.5"
    assert "mlflow==3.17.2" in env["requirements"]
    assert model.info["mlflow_version"] == "3.17.2" and model.info["model_uuid"]


def test_a_skops_sklearn_flavour_is_read_as_skops():
    model = read_mlflow_model(MLFLOW / "sklearn-skops-model")
    assert model.artifact_format == "skops" and model.artifact.name == "model.skops"


def test_a_pickled_flavour_is_refused_with_the_conversion_hint(attest):
    with pytest.raises(errors.PickleRefused) as caught:
        read_mlflow_model(MLFLOW / "sklearn-pickle-model")
    assert "'sklearn' flavour" in caught.value.message and "model.pkl" in caught.value.message
    result = attest("import-mlflow", str(MLFLOW / "sklearn-pickle-model"), "--model", MODEL,
                    "--dataset", "x@1")
    assert result.status == errors.EXIT_USAGE
    line = result.error_line()
    assert "stores the model as a pickle" in line and "mlflow.sklearn.load_model" in line


def test_what_is_not_an_mlflow_model(attest, tmp_path):
    result = attest("import-mlflow", str(tmp_path), "--model", MODEL, "--dataset", "x@1")
    assert result.status == 2 and "no MLmodel file" in result.error_line()
    copy = tmp_path / "broken"
    shutil.copytree(MLFLOW / "onnx-model", copy)
    (copy / "model.onnx").unlink()
    result = attest("import-mlflow", str(copy), "--model", MODEL, "--dataset", "x@1")
    assert result.status == 2 and "names model.onnx, which is not in" in result.error_line()
    (copy / "MLmodel").write_text("flavors:\n  xgboost: {data: model.xgb}\n")
    result = attest("import-mlflow", str(copy), "--model", MODEL, "--dataset", "x@1")
    assert result.status == 2 and "convert it to ONNX" in result.error_line()


@pytest.mark.parametrize("directory, fmt", [("onnx-model", "onnx"),
                                            ("sklearn-skops-model", "skops")])
def test_it_registers_the_version_with_its_schema_and_environment(
        attest, logged_in, personas, directory, fmt):
    logged_in("owner")
    dataset = register_dataset(personas.owner)
    result = attest("import-mlflow", str(MLFLOW / directory), "--model", MODEL, "--dataset",
                    f"{dataset.name}@{dataset.version}", "--yes", "--json")
    assert result.status == 0, result.err
    version = ModelVersion.objects.get(model__name=MODEL)
    assert version.artifact_format == fmt
    assert [f["name"] for f in version.input_schema] == FEATURES_SMALL
    assert version.code_reference.startswith("mlflow model ")
    assert "mlflow 3.17.2" in version.description and "numpy 2.5.5" in version.description
    record = version.reproducibility
    assert record["status"] == "reproduced"
    assert record["owner_environment"]["training"]["packages"]["numpy"] == "2.5.5"
