"""The explainers on real models: choice, additivity, determinism, the ONNX path."""

from __future__ import annotations

import numpy as np
import pytest

from core.hashing import canonical_bytes
from explain.choice import explainer_choose
from explain.compute import explanation_compute, sigmoid
from explain.services import explanation_parameters
from explain.space import FeatureSpace

from ..artifacts import FEATURES_SMALL, breast_cancer_frame, logistic_model, onnx_bytes
from ..inference.helpers import typical_input
from ..registry.helpers import register_version
from .helpers import boosting, draft_of, forest, knn

pytestmark = pytest.mark.django_db


def _rows(n: int = 5) -> list[dict]:
    frame = breast_cancer_frame()
    return [{k: float(v) for k, v in r.items()} for r in
            frame[FEATURES_SMALL].iloc[[0, 13, 100, 250, 400][:n]].to_dict("records")]


def _shap(version, row, **params):
    _, parameters = explanation_parameters("shap", params)
    return explanation_compute(version=version, inputs=row, method="shap", parameters=parameters)


def _frame(row: dict):
    import pandas as pd

    return pd.DataFrame([row], columns=FEATURES_SMALL)


def _total(content) -> float:
    return content["base_value"] + sum(c["contribution"] for c in content["contributions"])


def test_a_forest_gets_exact_treeshap_in_probability_that_adds_up(personas, dataset):
    version = draft_of(personas, dataset, forest())
    choice = explainer_choose(version=version)
    assert choice.kind == "tree" and choice.units == "probability" and choice.inline
    assert choice.cost["trees"] == 30 and choice.cost["max_depth"] <= 4
    model = forest()
    for row in _rows():
        computed = _shap(version, row)
        content = computed.content
        assert computed.explainer == "tree" and computed.background_source == "tree_paths"
        expected = model.predict_proba(_frame(row))[0, list(model.classes_).index("malignant")]
        assert abs(content["output_value"] - expected) < 1e-9
        assert abs(_total(content) - content["output_value"]) < 1e-6


def test_gradient_boosting_adds_up_in_log_odds_with_the_conversion(personas, dataset):
    version = draft_of(personas, dataset, boosting())
    model = boosting()
    positive = list(model.classes_).index("malignant")
    for row in _rows():
        content = _shap(version, row).content
        assert content["units"] == "log_odds" and content["conversion"].startswith("probability")
        assert abs(_total(content) - content["output_value"]) < 1e-6
        frame = _frame(row)
        assert abs(sigmoid(content["output_value"])
                   - model.predict_proba(frame)[0, positive]) < 1e-9


def test_a_scaled_logistic_pipeline_is_explained_in_original_units(personas, dataset):
    """The chain rule through the scaler: contribution = coef/scale * (x - mean)."""
    version = draft_of(personas, dataset)
    choice = explainer_choose(version=version)
    assert choice.kind == "linear" and choice.prefix is not None
    pipeline = logistic_model()
    scaler, lr = pipeline[0], pipeline[-1]
    sign = 1.0 if list(lr.classes_).index("malignant") == 1 else -1.0
    for row in _rows():
        computed = _shap(version, row)
        content = computed.content
        assert abs(_total(content) - content["output_value"]) < 1e-6
        frame = _frame(row)
        assert abs(content["output_value"] - sign * pipeline.decision_function(frame)[0]) < 1e-9
        per_unit = {c["feature"]: c["log_odds_per_unit"]
                    for c in content["coefficients_per_unit"]}
        for j, name in enumerate(FEATURES_SMALL):
            assert abs(per_unit[name] - sign * lr.coef_[0, j] / scaler.scale_[j]) < 1e-9
        # contribution_j = per_unit_j * (x_j - mean of x_j over the background set)
        space = FeatureSpace.of(version)
        from explain.space import background_for

        mean = np.nanmean(background_for(version, space).matrix, axis=0)
        for j, c in enumerate(content["contributions"]):
            assert abs(c["contribution"] - per_unit[c["feature"]] * (row[c["feature"]] - mean[j])) \
                < 1e-6
        assert computed.background_source == "synthetic_profile"
        assert len(computed.background_sha256) == 64


def test_other_estimators_take_the_seeded_permutation_path_which_adds_up(personas, dataset):
    version = draft_of(personas, dataset, knn())
    assert explainer_choose(version=version).kind == "permutation"
    row = _rows(1)[0]
    first, again = _shap(version, row, seed=3), _shap(version, row, seed=3)
    assert first.explainer == "permutation" and first.seed == 3 and first.samples > 0
    assert abs(_total(first.content) - first.content["output_value"]) < 1e-6
    assert canonical_bytes(first.content) == canonical_bytes(again.content)


def test_an_onnx_only_version_is_explained_through_the_model_agnostic_path(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset, data=onnx_bytes(),
                               name="model.onnx")
    choice = explainer_choose(version=version)
    assert choice.kind == "permutation" and "ONNX" in choice.reason
    row = typical_input(version)
    computed = _shap(version, row)
    assert computed.explainer == "permutation"
    assert abs(_total(computed.content) - computed.content["output_value"]) < 1e-5
    # the output is the ONNX model's own probability of the positive class
    from registry.loading import version_model_load

    proba = version_model_load(version=version).predict_proba([row])[0]
    labels = version.output_schema["labels"]
    assert abs(computed.content["output_value"]
               - proba[labels.index(version.output_schema["positive_label"])]) < 1e-9


def test_lime_repeated_in_one_process_gives_the_same_answer(personas, dataset):
    version = draft_of(personas, dataset, forest())
    _, params = explanation_parameters("lime", {"samples": 1000})
    row = _rows(1)[0]
    runs = [explanation_compute(version=version, inputs=row, method="lime", parameters=params)
            for _ in range(3)]
    assert len({canonical_bytes(r.content) for r in runs}) == 1
    other = explanation_compute(version=version, inputs=row, method="lime",
                                parameters={**params, "seed": 7})
    assert canonical_bytes(other.content) != canonical_bytes(runs[0].content)
    content = runs[0].content
    assert content["additive"] is False and content["parameters"] == {"seed": 0, "samples": 1000}
    assert set(runs[0].values["conditions"]) == set(FEATURES_SMALL)


def test_tree_explanations_are_byte_identical_when_recomputed(personas, dataset):
    version = draft_of(personas, dataset, forest())
    row = _rows(1)[0]
    assert canonical_bytes(_shap(version, row).content) == canonical_bytes(
        _shap(version, row).content)


def test_an_expensive_forest_goes_to_the_worker(personas, dataset, settings):
    settings.ATTEST_EXPLAIN_INLINE_MS = 0.0001
    from explain.choice import choices_clear

    choices_clear()
    version = draft_of(personas, dataset, forest())
    choice = explainer_choose(version=version)
    assert choice.kind == "tree" and not choice.inline and "worker" in choice.reason
    choices_clear()


def test_a_categorical_input_takes_the_permutation_path_and_lime_samples_its_shares(personas):
    """A category is encoded inside the model (a one-hot pipeline): contributions per input
    come from the model-agnostic path; LIME samples categories with their profiled shares."""
    import pandas as pd
    from django.core.files.uploadedfile import SimpleUploadedFile
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from registry import services

    from .helpers import skops_with_types

    frame = breast_cancer_frame()[[*FEATURES_SMALL[:2], "diagnosis"]].copy()
    frame["site"] = np.where(np.arange(len(frame)) % 3 == 0, "north", "south")
    dataset = services.dataset_version_register(
        user=personas.owner, name="with-site", version="1", source="test",
        data_file=SimpleUploadedFile("d.csv", frame.to_csv(index=False).encode()))
    features = [*FEATURES_SMALL[:2], "site"]
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["site"]),
                                                  remainder="passthrough"),
                          LogisticRegression(max_iter=500)).fit(frame[features],
                                                                frame["diagnosis"])
    data, trusted = skops_with_types(model)
    version = services.model_version_register(
        user=personas.owner, model=personas.model,
        artifact=SimpleUploadedFile("m.skops", data),
        metadata={"dataset": dataset.pk, "input_schema": features, "trusted_types": trusted})
    row = {"mean radius": 17.0, "mean texture": 20.0, "site": "north"}
    computed = _shap(version, row)
    assert computed.explainer == "permutation" and "categorical" in computed.reason
    content = computed.content
    assert abs(_total(content) - content["output_value"]) < 1e-6
    expected = model.predict_proba(pd.DataFrame([row]))[0, list(model.classes_).index(
        "malignant")]
    assert abs(content["output_value"] - expected) < 1e-9
    _, params = explanation_parameters("lime", {"samples": 800})
    lime = explanation_compute(version=version, inputs=row, method="lime", parameters=params)
    assert lime.values["conditions"]["site"] == "site = north"
    assert {w["feature"] for w in lime.content["weights"]} == set(features)


def _fitted(name: str):
    from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

    estimator = {
        "extra_trees": ExtraTreesClassifier(n_estimators=20, max_depth=4, random_state=0),
        "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=30, max_depth=3,
                                                                 random_state=0),
        "decision_tree": DecisionTreeClassifier(max_depth=5, random_state=0),
        "extra_tree": ExtraTreeClassifier(max_depth=6, random_state=0),
    }[name]
    frame = breast_cancer_frame()
    return estimator.fit(frame[FEATURES_SMALL], frame["diagnosis"])


@pytest.mark.parametrize("name, units", [
    ("extra_trees", "probability"), ("decision_tree", "probability"),
    ("extra_tree", "probability"), ("hist_gradient_boosting", "log_odds")])
def test_every_listed_tree_family_gets_treeshap_that_adds_up_to_the_model(
        personas, dataset, name, units):
    model = _fitted(name)
    version = draft_of(personas, dataset, model)
    choice = explainer_choose(version=version)
    assert choice.kind == "tree" and choice.units == units, choice.reason
    positive = list(model.classes_).index("malignant")
    for row in _rows():
        computed = _shap(version, row)
        content = computed.content
        assert computed.explainer == "tree" and content["units"] == units
        assert abs(_total(content) - content["output_value"]) < 1e-6
        expected = model.predict_proba(_frame(row))[0, positive]
        output = content["output_value"] if units == "probability" \
            else sigmoid(content["output_value"])
        assert abs(output - expected) < 1e-6
