from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from audits.models import Action, AuditEvent
from core.errors import Conflict, IntegrityFailure
from registry import services
from registry.loading import artifact_model_load, model_cache, version_model_load
from registry.models import ServingRuntime, VersionState
from registry.onnx_evidence import serving_runtime_build
from registry.reference import reference_sample
from registry.storage import artifact_storage, blob_read_verified

from ..artifacts import (
    FEATURES_SMALL,
    breast_cancer_frame,
    csv_bytes,
    onnx_bytes,
    skops_bytes,
    tree_model_bytes,
)
from .helpers import register_dataset, register_version

pytestmark = pytest.mark.django_db

TREE_TYPES = ["sklearn.tree._tree.Tree"]


@pytest.fixture
def dataset(personas):
    return register_dataset(personas.owner)


def _build(version):
    loaded = artifact_model_load(version=version)
    data = blob_read_verified(version.artifact_key, version.artifact_sha256)
    return serving_runtime_build(version=version, data=data, loaded=loaded)


def _assert_choice_follows_timings(runtime: ServingRuntime) -> None:
    """Per purpose, the faster runtime among those allowed (ONNX only when equivalent)."""
    eligible = {"equivalent": ["sklearn", "onnxruntime"], "native_onnx": ["onnxruntime"]}.get(
        runtime.status, ["sklearn"])
    timings = runtime.timings
    assert runtime.single_runtime == min(eligible, key=lambda e: timings[e]["single_p50_us"])
    assert runtime.batch_runtime == max(eligible, key=lambda e: timings[e]["batch_rows_per_s"])
    for engine in eligible:
        t = timings[engine]
        assert 0 < t["single_p50_us"] <= t["single_p95_us"]
        assert t["single_calls"] >= 20 and t["batch_rows"] >= 500 and t["batch_rows_per_s"] > 0


def test_the_logistic_pipeline_is_served_from_an_equivalent_onnx_model(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset)
    runtime = _build(version)

    assert runtime.status == "equivalent"
    assert runtime.tolerance == 1e-5 and 0 <= runtime.max_abs_diff <= 1e-5
    assert runtime.sample_rows == 500 and runtime.feature_names == FEATURES_SMALL
    assert runtime.converter.startswith("skl2onnx ")
    assert runtime.source_sha256 == version.artifact_sha256
    assert blob_read_verified(runtime.onnx_key, runtime.onnx_sha256)  # stored, hash intact
    _assert_choice_follows_timings(runtime)
    assert set(runtime.timings) == {"sklearn", "onnxruntime", "environment"}
    assert ServingRuntime.objects.get(version=version) == runtime

    rows = reference_sample(version.input_schema, dataset.profile, n=50, seed=7)
    sklearn_scores = artifact_model_load(version=version).predict_proba(rows)
    for purpose, engine in (("single", runtime.single_runtime), ("batch", runtime.batch_runtime)):
        served = version_model_load(version=_frozen(version), purpose=purpose)
        assert served.runtime == engine
        assert np.max(np.abs(served.predict_proba(rows) - sklearn_scores)) <= 1e-5
    # The ONNX model is cached per hash and purpose.
    if runtime.single_runtime == "onnxruntime":
        assert model_cache.get(f"{runtime.onnx_sha256}:single") is not None


def test_the_random_forest_converts_and_its_status_follows_the_tolerance(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset, data=tree_model_bytes(),
                               trusted_types=TREE_TYPES)
    runtime = _build(version)

    assert runtime.status in ("equivalent", "not_equivalent")
    assert runtime.max_abs_diff is not None
    assert (runtime.status == "equivalent") == (runtime.max_abs_diff <= runtime.tolerance)
    assert bool(runtime.onnx_key) == (runtime.status == "equivalent")
    _assert_choice_follows_timings(runtime)


def test_a_model_with_a_tight_tolerance_is_not_equivalent_and_served_by_sklearn(
        personas, dataset, settings):
    settings.ATTEST_ONNX_TOLERANCE = 0.0  # float32 ONNX never matches float64 exactly here
    version = register_version(personas.owner, personas.model, dataset)
    runtime = _build(version)

    assert runtime.status == "not_equivalent" and runtime.max_abs_diff > 0
    assert runtime.onnx_key == "" and runtime.onnx_sha256  # compared, not stored
    assert runtime.single_runtime == runtime.batch_runtime == "sklearn"
    assert "tolerance" in runtime.detail
    assert version_model_load(version=_frozen(version), purpose="single").runtime == "sklearn"


def test_an_unconvertible_pipeline_is_unsupported_and_served_by_sklearn(personas, dataset):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    frame = breast_cancer_frame()
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=500))
    model.fit(frame[FEATURES_SMALL], frame["diagnosis"])
    version = register_version(personas.owner, personas.model, dataset, data=skops_bytes(model))
    runtime = _build(version)

    assert runtime.status == "unsupported"
    assert "FunctionTransformer" in runtime.detail
    assert runtime.onnx_key == "" and runtime.max_abs_diff is None
    assert runtime.single_runtime == runtime.batch_runtime == "sklearn"
    assert set(runtime.timings) == {"sklearn", "environment"}
    for purpose in ("single", "batch"):
        assert version_model_load(version=_frozen(version), purpose=purpose).runtime == "sklearn"


def test_a_native_onnx_version_is_served_as_registered(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset, data=onnx_bytes(),
                               name="model.onnx",
                               output_schema={"labels": ["benign", "malignant"]})
    runtime = _build(version)

    assert runtime.status == "native_onnx" and runtime.converter == ""
    assert runtime.single_runtime == runtime.batch_runtime == "onnxruntime"
    assert runtime.onnx_key == "" and runtime.max_abs_diff is None
    _assert_choice_follows_timings(runtime)
    served = version_model_load(version=_frozen(version), purpose="batch")
    assert served.runtime == "onnxruntime" and served.artifact_format == "onnx"


def _frozen(version):
    """The version as the loader sees it once submitted (evidence is built at submit;
    these tests build it on the draft directly)."""
    version.state = VersionState.IN_REVIEW
    return version


def test_a_draft_is_served_as_registered_even_with_evidence(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset)
    assert _build(version).status == "equivalent"
    for purpose in ("single", "batch"):
        assert version_model_load(version=version, purpose=purpose).runtime == "sklearn"


def test_a_tampered_onnx_blob_is_refused_and_recorded(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset)
    runtime = _build(version)
    assert runtime.status == "equivalent"
    store = artifact_storage()
    store.delete(runtime.onnx_key)
    store.save(runtime.onnx_key, ContentFile(b"not the converted model"))
    model_cache.clear()
    # Whichever runtime the timings chose, serve single rows with ONNX for this check
    # (an equivalent conversion may be chosen; the constraint allows it).
    ServingRuntime.objects.filter(pk=runtime.pk).update(single_runtime="onnxruntime")
    purpose = "single"

    with pytest.raises(IntegrityFailure):
        version_model_load(version=_frozen(version), purpose=purpose)
    event = AuditEvent.objects.filter(action=Action.ARTIFACT_INTEGRITY_FAILED).get()
    assert event.details["kind"] == "serving_onnx" and event.details["key"] == runtime.onnx_key


def test_a_draft_rebuild_replaces_its_row_but_frozen_evidence_stays(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset)
    first = _build(version)
    second = _build(version)
    assert ServingRuntime.objects.filter(version=version).get().pk == second.pk != first.pk

    version.state = "in_review"
    with pytest.raises(Conflict):
        _build(version)


def test_a_model_with_category_and_boolean_features_converts_with_one_input_each(personas):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = breast_cancer_frame()[["mean radius", "mean texture", "diagnosis"]].copy()
    rng = np.random.default_rng(0)
    frame["site"] = rng.choice(["north", "south", "east"], len(frame), p=[0.6, 0.3, 0.1])
    frame["smoker"] = rng.random(len(frame)) < 0.25
    dataset = services.dataset_version_register(
        user=personas.owner, name="mixed-cohort", version="1", source="synthetic",
        data_file=SimpleUploadedFile("mixed.csv", csv_bytes(frame)))
    features = ["mean radius", "mean texture", "site", "smoker"]
    model = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["mean radius", "mean texture", "smoker"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["site"])]),
        LogisticRegression(max_iter=500))
    model.fit(frame[features], frame["diagnosis"])
    data = skops_bytes(model)
    version = register_version(personas.owner, personas.model, dataset, data=data,
                               input_schema=features,
                               trusted_types=sio.get_untrusted_types(data=data))
    runtime = _build(version)

    assert runtime.status == "equivalent", runtime.detail
    assert runtime.feature_names == features
    served = version_model_load(version=_frozen(version), purpose="single")
    rows = [{"mean radius": 14.0, "mean texture": 19.0, "site": "south", "smoker": True}]
    expected = artifact_model_load(version=version).predict_proba(rows)
    assert np.max(np.abs(served.predict_proba(rows) - expected)) <= 1e-5


def test_the_reference_sample_is_reproducible_and_stays_in_the_schema():
    schema = [
        {"name": "age", "type": "integer", "min": 18, "max": 90},
        {"name": "lactate", "type": "number", "min": 0.5, "max": 4.0},
        {"name": "no_profile", "type": "number", "min": -1.0, "max": 1.0},
        {"name": "site", "type": "category", "categories": ["a", "b"]},
        {"name": "smoker", "type": "boolean"},
    ]
    profile = {"columns": {
        "age": {"type": "integer", "quantiles": [10.0, 40.0, 70.0, 100.0],
                "bin_frequencies": [0.2, 0.5, 0.3]},
        "lactate": {"type": "number", "quantiles": [0.1, 1.0, 2.0, 9.0],
                    "bin_frequencies": [0.1, 0.8, 0.1]},
        # "c" was seen in training but the schema no longer allows it.
        "site": {"type": "category", "categories": {"a": 0.9, "b": 0.05, "c": 0.05}},
        "smoker": {"type": "boolean", "categories": {"true": 0.2, "false": 0.8}},
    }}
    rows = reference_sample(schema, profile, n=2000, seed=3)

    assert rows == reference_sample(schema, profile, n=2000, seed=3)
    assert rows != reference_sample(schema, profile, n=2000, seed=4)
    assert len(rows) == 2000 and set(rows[0]) == {f["name"] for f in schema}
    ages = [r["age"] for r in rows]
    assert all(isinstance(a, int) and 18 <= a <= 90 for a in ages)
    lactate = np.array([r["lactate"] for r in rows])
    assert lactate.min() >= 0.5 and lactate.max() <= 4.0
    assert 0.7 < np.mean((lactate >= 1.0) & (lactate < 2.0)) < 0.9  # the heavy middle bin
    assert all(-1.0 <= r["no_profile"] <= 1.0 for r in rows)
    sites = [r["site"] for r in rows]
    assert set(sites) == {"a", "b"} and sites.count("a") > 0.85 * len(rows)
    smokers = [r["smoker"] for r in rows]
    assert all(isinstance(s, bool) for s in smokers)
    assert 0.15 < sum(smokers) / len(smokers) < 0.25
