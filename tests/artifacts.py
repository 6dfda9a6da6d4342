"""Real models and data files for tests, built once per test process."""

from __future__ import annotations

import functools
import io
import pickle
import zipfile

import numpy as np
import pandas as pd


@functools.cache
def breast_cancer_frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame["diagnosis"] = np.where(frame.pop("target") == 0, "malignant", "benign")
    return frame


FEATURES_SMALL = ["mean radius", "mean texture", "mean smoothness", "mean concavity"]


@functools.cache
def logistic_model(seed: int = 0):
    """A small standardized logistic regression on four breast-cancer features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = breast_cancer_frame()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 + seed, max_iter=500))
    model.fit(frame[FEATURES_SMALL], frame["diagnosis"])
    return model


FLAG = "large mass"  # 0/1 in the training file: mean area above the cohort's median
FEATURES_FLAGGED = [*FEATURES_SMALL, FLAG]


@functools.cache
def flagged_frame() -> pd.DataFrame:
    """The four features, a 0/1 column (profiled as integer) and the diagnosis."""
    frame = breast_cancer_frame()
    out = frame[FEATURES_SMALL].copy()
    out[FLAG] = (frame["mean area"] > frame["mean area"].median()).astype(int)
    out["diagnosis"] = frame["diagnosis"]
    return out


@functools.cache
def flagged_model():
    """A standardized logistic regression fitted on the frame (feature_names_in_), the flag
    as the 0/1 integers of the training file."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = flagged_frame()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(frame[FEATURES_FLAGGED], frame["diagnosis"])
    return model


def skops_bytes(model) -> bytes:
    import skops.io as sio

    return sio.dumps(model)


@functools.cache
def tree_model_bytes() -> bytes:
    from sklearn.ensemble import RandomForestClassifier

    frame = breast_cancer_frame()
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)
    model.fit(frame[FEATURES_SMALL], frame["diagnosis"])
    return skops_bytes(model)


@functools.cache
def onnx_bytes() -> bytes:
    """The logistic model converted with skl2onnx: one float input [N, 4], no ZipMap."""
    from skl2onnx import to_onnx

    frame = breast_cancer_frame()
    X = frame[FEATURES_SMALL].to_numpy(dtype=np.float32)
    model = logistic_model()
    # skl2onnx wants a numpy-fitted estimator: refit on arrays so names don't matter.
    from sklearn.base import clone

    fitted = clone(model).fit(X, frame["diagnosis"])
    onx = to_onnx(fitted, X[:1], options={id(fitted.steps[-1][1]): {"zipmap": False}},
                  target_opset=17)
    return onx.SerializeToString()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def training_csv() -> bytes:
    frame = breast_cancer_frame()
    return csv_bytes(frame[[*FEATURES_SMALL, "diagnosis"]])


def pickle_bytes(protocol: int = 4) -> bytes:
    return pickle.dumps(logistic_model(), protocol=protocol)


def joblib_bytes() -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(logistic_model(), buffer, compress=3)
    return buffer.getvalue()


def corrupt_zip_bytes() -> bytes:
    data = bytearray(skops_bytes(logistic_model()))
    # Flip bytes in the middle of the archive: the CRC check must catch it.
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    return bytes(data)


def zip_without_schema() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.bin", b"\x00" * 100)
    return buffer.getvalue()
