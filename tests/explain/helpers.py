"""Versions of the personas' model with the estimators the explainers must handle."""

from __future__ import annotations

import functools

from registry.models import ModelVersion

from ..artifacts import FEATURES_SMALL, breast_cancer_frame, logistic_model, skops_bytes
from ..inference.helpers import released_version
from ..registry.helpers import register_version


@functools.cache
def forest(n_estimators: int = 30, max_depth: int | None = 4):
    from sklearn.ensemble import RandomForestClassifier

    frame = breast_cancer_frame()
    return RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                  random_state=0).fit(frame[FEATURES_SMALL], frame["diagnosis"])


@functools.cache
def boosting():
    from sklearn.ensemble import GradientBoostingClassifier

    frame = breast_cancer_frame()
    return GradientBoostingClassifier(n_estimators=40, max_depth=2, random_state=0).fit(
        frame[FEATURES_SMALL], frame["diagnosis"])


@functools.cache
def knn():
    """No exact explainer: the permutation path."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = breast_cancer_frame()
    return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=15)).fit(
        frame[FEATURES_SMALL], frame["diagnosis"])


def skops_with_types(estimator) -> tuple[bytes, list[str]]:
    import skops.io as sio

    data = skops_bytes(estimator)
    return data, sio.get_untrusted_types(data=data)


def draft_of(personas, dataset, estimator=None, **metadata) -> ModelVersion:
    estimator = estimator if estimator is not None else logistic_model()
    data, trusted = skops_with_types(estimator)
    return register_version(personas.owner, personas.model, dataset, data=data,
                            trusted_types=trusted, **metadata)


def released_of(personas, estimator=None, **metadata) -> ModelVersion:
    estimator = estimator if estimator is not None else logistic_model()
    data, trusted = skops_with_types(estimator)
    return released_version(personas, data=data, trusted_types=trusted, **metadata)
