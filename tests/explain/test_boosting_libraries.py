"""TreeSHAP for XGBoost classifiers, when the library is installed (it is not one of the
product's dependencies): the choice names the tree explainer in log-odds, within the
float32 fidelity tolerance, and base value + contributions = the margin, whose sigmoid is
the model's own probability. Skipped where the library is absent.

LightGBM is not tested here: it renames features with spaces ("mean radius" ->
"mean_radius") in ``feature_names_in_``, so a model fitted on this profile's columns is
refused at registration (schema_mismatch) before any explainer is chosen."""

from __future__ import annotations

import pytest

from explain.choice import explainer_choose
from explain.compute import sigmoid
from registry.trust import trusted_type_add, trusted_type_names

from ..artifacts import FEATURES_SMALL, breast_cancer_frame
from .helpers import draft_of
from .test_compute import _frame, _rows, _shap, _total

pytestmark = pytest.mark.django_db


def _fitted(library: str):
    frame = breast_cancer_frame()
    target = (frame["diagnosis"] == "malignant").astype(int)  # these libraries want 0/1
    module = pytest.importorskip(library)
    estimator = module.XGBClassifier(n_estimators=30, max_depth=3, random_state=0, n_jobs=1)
    return estimator.fit(frame[FEATURES_SMALL], target)


@pytest.mark.parametrize("library", ["xgboost"])
def test_boosting_libraries_get_treeshap_that_adds_up_to_the_model(personas, dataset, library):
    import skops.io

    model = _fitted(library)
    # An administrator trusts what these files hold beyond scikit-learn (as in production).
    # (The skops file of an XGBoost model also holds an OrderedDict, which skops' own
    # listing leaves out and the server's check names.)
    wanted = {*skops.io.get_untrusted_types(data=skops.io.dumps(model)), "collections.OrderedDict"}
    for name in sorted(wanted - trusted_type_names()):
        trusted_type_add(user=personas.admin, name=name, reason=f"{library} models")
    version = draft_of(personas, dataset, model)
    choice = explainer_choose(version=version)
    assert choice.kind == "tree" and choice.units == "log_odds", choice.reason
    for row in _rows():
        content = _shap(version, row).content
        assert content["units"] == "log_odds"
        assert abs(_total(content) - content["output_value"]) < 1e-5
        expected = model.predict_proba(_frame(row))[0, 1]
        assert abs(sigmoid(content["output_value"]) - expected) < 1e-5
