"""Bad paths: each error a user can cause is one line on stderr and a documented exit status."""

from __future__ import annotations

import json
import os
import pickle
import socket
from datetime import timedelta
from pathlib import Path

import attest_client
import pytest
from attest_client import errors
from django.utils import timezone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from portal.models import ApiToken
from registry.models import ModelVersion

from ..artifacts import (
    FEATURES_SMALL,
    breast_cancer_frame,
    joblib_bytes,
    logistic_model,
    skops_bytes,
    training_csv,
)
from ..registry.helpers import register_dataset

MODEL = "sepsis-risk"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_not_logged_in(attest):
    result = attest("whoami")
    assert result.status == errors.EXIT_AUTH
    assert "not logged in: run `attest login URL`" in result.error_line()


def test_a_wrong_password(attest, live_server, personas):
    result = attest("login", live_server.url, "--username", "owner", "--password-stdin",
                    stdin="wrong\n")
    assert result.status == errors.EXIT_AUTH
    assert result.error_line() == "attest: error: Wrong username or password."


def test_a_wrong_token(attest, live_server, personas, monkeypatch):
    monkeypatch.setenv("ATTEST_URL", live_server.url)
    monkeypatch.setenv("ATTEST_TOKEN", "att_0123456789ab_not-a-real-token")
    result = attest("whoami")
    assert result.status == errors.EXIT_AUTH
    assert "the server refused your API token" in result.error_line()
    assert f"attest login {live_server.url}" in result.error_line()


def test_an_expired_token(attest, logged_in, personas):
    logged_in("owner")
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    result = attest("whoami")  # the server refuses it
    assert result.status == errors.EXIT_AUTH
    assert "Invalid, expired or revoked token" in result.error_line()
    config = Path(os.environ["ATTEST_CONFIG"])
    stored = json.loads(config.read_text())
    stored["expires_at"] = "2020-01-01T00:00:00+00:00"
    config.write_text(json.dumps(stored))
    result = attest("whoami")  # known expired here: no request at all
    assert result.status == errors.EXIT_AUTH
    assert "your API token expired on 2020-01-01" in result.error_line()


def test_the_server_is_down(attest, monkeypatch):
    monkeypatch.setenv("ATTEST_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("ATTEST_TOKEN", "att_0123456789ab_whatever")
    result = attest("model", "list")
    assert result.status == errors.EXIT_UNREACHABLE
    assert "cannot reach the Attest server at http://127.0.0.1:" in result.error_line()
    assert result.error_line().endswith("connection refused")


def test_not_an_attest_server(attest, live_server, monkeypatch):
    monkeypatch.setenv("ATTEST_URL", live_server.url + "/static")
    monkeypatch.setenv("ATTEST_TOKEN", "att_0123456789ab_whatever")
    result = attest("model", "list")
    assert result.status == errors.EXIT_UNREACHABLE


def test_files_that_do_not_exist(attest, tmp_path):
    for argv in (["model", "register", str(tmp_path / "nope.skops"), "--model", MODEL,
                  "--dataset", "d@1"],
                 ["dataset", "profile", str(tmp_path / "nope.csv")],
                 ["audit", "verify", "--export", str(tmp_path / "nope.json")],
                 ["import-mlflow", str(tmp_path / "nope"), "--model", MODEL, "--dataset", "d@1"]):
        result = attest(*argv)
        assert result.status == errors.EXIT_USAGE, argv
        assert "not found" in result.error_line()


@pytest.mark.parametrize("name, data", [("model.pkl", pickle.dumps({"a": 1})),
                                        ("model.skops", b"unused")])
def test_a_pickle_is_refused_before_anything_is_sent(attest, tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(joblib_bytes() if name == "model.skops" else data)
    result = attest("model", "register", str(path), "--model", MODEL, "--dataset", "d@1")
    assert result.status == errors.EXIT_USAGE
    line = result.error_line()
    assert "pickle" in line and "sio.dump(model, 'model.skops')" in line


def test_schema_mismatches_locally_and_on_the_server(attest, logged_in, personas, tmp_path):
    logged_in("owner")
    register_dataset(personas.owner)
    artifact = tmp_path / "model.skops"
    artifact.write_bytes(skops_bytes(logistic_model()))
    common = ["model", "register", str(artifact), "--model", MODEL, "--dataset",
              "sepsis-cohort@2024.1", "--yes"]
    result = attest(*common, "--features", "mean radius,heart rate")
    assert result.status == errors.EXIT_USAGE
    assert "schema mismatch: heart rate is not a column of dataset sepsis-cohort@2024.1" in \
        result.error_line()
    # Columns of the dataset, but not the ones the model was fitted on: the server says so.
    (tmp_path / "schema.json").write_text(json.dumps(FEATURES_SMALL[:3]))
    result = attest(*common, "--schema", str(tmp_path / "schema.json"))
    assert result.status == errors.EXIT_REFUSED
    assert "does not match the features the model was fitted on" in result.error_line()
    assert not ModelVersion.objects.exists()


def test_an_unconvertible_estimator(live_server, logged_in, personas):
    logged_in("owner")
    X = breast_cancer_frame()[FEATURES_SMALL]
    y = breast_cancer_frame()["diagnosis"]
    doubled = make_pipeline(FunctionTransformer(lambda a: a * 2), LogisticRegression()).fit(X, y)
    with pytest.raises(attest_client.UnconvertibleModel) as caught:
        attest_client.register(model=doubled, X_train=X, name=MODEL,
                               dataset={"name": "cohort", "version": "1", "source": "x"},
                               quiet=True)
    assert caught.value.exit_code == errors.EXIT_USAGE
    assert "convert it to ONNX" in caught.value.message and "\n" not in caught.value.message

    class Local(LogisticRegression):
        pass

    local = Local(max_iter=500).fit(X.to_numpy(), y)
    with pytest.raises(attest_client.UnconvertibleModel, match="skl2onnx cannot convert"):
        attest_client.register(model=local, X_train=X.rename(columns=str), name=MODEL,
                               dataset="cohort@1", format="onnx", quiet=True)
    assert not ModelVersion.objects.exists()


def test_refusals_the_user_can_fix_and_permissions(attest, logged_in, personas, tmp_path):
    logged_in("owner", "clinician")
    dataset = register_dataset(personas.owner)
    artifact = tmp_path / "model.skops"
    artifact.write_bytes(skops_bytes(logistic_model()))
    result = attest("model", "register", str(artifact), "--model", "no-such-model", "--dataset",
                    f"{dataset.name}@{dataset.version}", "--yes", as_user="owner")
    assert result.status == errors.EXIT_DENIED
    assert "attest model create no-such-model" in result.error_line()
    result = attest("model", "register", str(artifact), "--model", MODEL, "--dataset",
                    f"{dataset.name}@{dataset.version}", "--yes", as_user="clinician")
    assert result.status == errors.EXIT_DENIED
    assert "register_version" in result.error_line()
    result = attest("version", "submit", MODEL, "9", as_user="owner")
    assert result.status == errors.EXIT_DENIED
    result = attest("predict", MODEL, "--data", "{not json")
    assert result.status == errors.EXIT_USAGE and "not valid JSON" in result.error_line()
    (tmp_path / "train.csv").write_bytes(training_csv())
    result = attest("dataset", "register", str(tmp_path / "train.csv"), "--name",
                    dataset.name, "--version", dataset.version, "--source", "again")
    assert result.status == errors.EXIT_REFUSED
    assert "already registered" in result.error_line()


def test_the_server_refusing_skops_types_is_explained(attest, logged_in, personas, tmp_path,
                                                      settings, monkeypatch):
    """A server that trusts only an administrator's allowlist (issue 15) may refuse the types
    a file needs: the client names them and says who can allow them."""
    from registry.models import TrustedType

    logged_in("owner")
    dataset = register_dataset(personas.owner)
    path = tmp_path / "tree.skops"
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = breast_cancer_frame()
    model = HistGradientBoostingClassifier(max_iter=5).fit(frame[FEATURES_SMALL],
                                                           frame["diagnosis"])
    path.write_bytes(skops_bytes(model))
    types = attest_client.artifacts.untrusted_types(path.read_bytes())
    assert types  # this estimator needs types beyond skops' defaults
    TrustedType.objects.filter(name=types[0]).delete()  # an allowlist without it
    result = attest("model", "register", str(path), "--model", MODEL, "--dataset",
                    f"{dataset.name}@{dataset.version}", "--yes")
    assert result.status == errors.EXIT_REFUSED
    line = result.error_line()
    assert "the server does not trust these types in the skops file" in line
    assert types[0] in line and "administrator" in line


def test_help_runs_and_lists_exit_statuses(capsys):
    from attest_client import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for code in (1, 2, 3, 4, 5, 6, 7, 8, 70):
        assert f"  {code:>3}  " in out


def test_checkpoints_are_signed_by_admins_and_kept_by_auditors(attest, logged_in, tmp_path):
    logged_in("admin", "auditor")
    early = attest("audit", "checkpoint", "-o", str(tmp_path / "none.json"), as_user="auditor")
    assert early.status == errors.EXIT_DENIED
    assert "No checkpoint has been signed yet" in early.error_line()
    signed = attest("audit", "checkpoint", "-o", str(tmp_path / "admin.json"), "--json",
                    as_user="admin")
    assert signed.status == 0, signed.err
    kept = attest("audit", "checkpoint", "-o", str(tmp_path / "auditor.json"), as_user="auditor")
    assert kept.status == 0, kept.err
    assert "Signing one on demand is for administrators" in kept.err + kept.out
    assert json.loads((tmp_path / "auditor.json").read_text()) == json.loads(
        (tmp_path / "admin.json").read_text())
    latest = attest("audit", "checkpoint", "--latest", "-o", str(tmp_path / "latest.json"),
                    as_user="admin")
    assert latest.status == 0 and json.loads((tmp_path / "latest.json").read_text())[
        "payload"] == signed.json["payload"]
