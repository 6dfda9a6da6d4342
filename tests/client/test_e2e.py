"""End to end, all through the client, against a live server: profile → register → submit →
sign → promote → predict → batch, then the notebook path and the audit trail."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat

import attest_client
import pytest

from audits.chain import verify_chain
from dossier.models import Dossier
from registry.models import DatasetVersion, ModelVersion

from ..artifacts import FEATURES_SMALL, breast_cancer_frame, logistic_model, skops_bytes
from ..artifacts import training_csv as training_bytes
from ..personas import PASSWORD

MODEL = "sepsis-risk"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "train.csv").write_bytes(training_bytes())
    (tmp_path / "model.skops").write_bytes(skops_bytes(logistic_model()))
    (tmp_path / "card.md").write_text("# Sepsis risk\n\nIntended use: triage support.\n")
    (tmp_path / "runbook.md").write_text("Redeploy: promote the previous version.\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"overall": {"auc": 0.95}}))
    (tmp_path / "provenance.yaml").write_text(
        "source: EHR extract, site A\ninclusion_criteria: adults admitted via ED\n"
        "protocol_number: IRB-2024-001\ndate_start: 2020-01-01\ndate_end: 2023-12-31\n")
    frame = breast_cancer_frame()[FEATURES_SMALL].iloc[:60]
    frame.to_csv(tmp_path / "batch.csv", index=False)
    return tmp_path


def test_the_release_journey_through_the_client(attest, logged_in, files, personas):
    url = logged_in("owner", "pi", "irb")
    config = files / "config" / "owner.json"
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(config.parent).st_mode) == 0o700

    me = attest("whoami", "--json", as_user="owner").json
    assert me["username"] == "owner" and me["models"][0]["roles"] == ["owner"]

    # Profile locally; register hash + profile only (no rows leave the machine).
    profile = attest("dataset", "profile", str(files / "train.csv")).json
    result = attest("dataset", "register", str(files / "train.csv"), "--name", "sepsis-cohort",
                    "--version", "2024.1", "--provenance", str(files / "provenance.yaml"),
                    "--json")
    assert result.status == 0, result.err
    dataset = result.json
    assert dataset["sha256"] == profile["sha256"] and dataset["file_stored"] is False
    assert dataset["protocol_number"] == "IRB-2024-001" and dataset["date_end"] == "2023-12-31"

    result = attest("model", "register", str(files / "model.skops"), "--model", MODEL,
                    "--dataset", "sepsis-cohort@2024.1", "--card", str(files / "card.md"),
                    "--runbook", str(files / "runbook.md"), "--metrics",
                    str(files / "metrics.json"), "--threshold", "0.7", "--ood-policy", "reject",
                    "--yes", "--json")
    assert result.status == 0, result.err
    version = result.json["version"]
    assert version["state"] == "draft" and version["confidence_threshold"] == 0.7
    assert [f["name"] for f in version["input_schema"]] == FEATURES_SMALL
    assert version["reproducibility"]["status"] == "reproduced"
    assert version["model_card"].startswith("# Sepsis risk")

    result = attest("version", "submit", MODEL, "1")
    assert result.status == 0, result.err
    assert "in_review" in result.out

    for who, meaning in (("pi", "pi_approval"), ("irb", "irb_approval")):
        result = attest("version", "sign", MODEL, "1", "--meaning", meaning, "--decision",
                        "approve", "--comment", "reviewed", "--password-stdin",
                        stdin=PASSWORD + "\n", as_user=who)
        assert result.status == 0, result.err
    result = attest("version", "promote", MODEL, "1", as_user="owner")
    assert result.status == 0, result.err
    status = attest("version", "status", MODEL, "1", "--json").json
    assert status["version"]["state"] == "production"
    assert {s["meaning"] for s in status["signoffs"]["manifest"]} == {"pi_approval",
                                                                      "irb_approval"}

    row = {name: float(breast_cancer_frame()[name].median()) for name in FEATURES_SMALL}
    result = attest("predict", MODEL, "--data", json.dumps(row), "--json")
    assert result.status == 0, result.err
    assert result.json["model_version"] == 1 and result.json["label"] in ("benign", "malignant")

    out = files / "out"
    result = attest("predict", MODEL, str(files / "batch.csv"), "--output-dir", str(out),
                    "--json")
    assert result.status == 0, result.err
    job = result.json
    assert job["status"] == "completed" and job["predictions"] == 60
    with open(job["files"]["results"], newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 60
    again = attest("predict", MODEL, str(files / "batch.csv"), "--output-dir", str(out))
    assert "pass --force" in again.error_line() and again.status == 2

    verified = attest("audit", "verify", "--json")
    assert verified.status == 0 and verified.json["server"]["ok"] is True
    export = files / "export.json"
    assert attest("audit", "export", "-o", str(export)).status == 0
    offline = attest("audit", "verify", "--export", str(export), "--json")
    assert offline.status == 0, offline.out
    assert offline.json["ok"] is True and offline.json["checked"] > 10

    # The compliance dossier: generated in the background, waited for, downloaded with its
    # sha256 checked against the one the server recorded.
    target = files / "dossier.pdf"
    dossier = attest("dossier", "get", MODEL, "1", "-o", str(target), "--json")
    assert dossier.status == 0, dossier.err
    stored = Dossier.objects.get(public_id=dossier.json["id"])
    assert stored.status == "completed" and dossier.json["sha256"] == stored.sha256
    assert hashlib.sha256(target.read_bytes()).hexdigest() == stored.sha256
    assert target.read_bytes().startswith(b"%PDF-")

    # The notebook path: one call from a fitted estimator to a submitted version.
    frame = breast_cancer_frame()
    frame = frame.assign(site=["north" if i % 2 else "south" for i in range(len(frame))])
    model = logistic_model(seed=1)
    registration = attest_client.register(
        model=model, X_train=frame[FEATURES_SMALL], name=MODEL, dataset="sepsis-cohort@2024.1",
        card="# Sepsis risk v2", runbook=str(files / "runbook.md"),
        X_valid=frame[FEATURES_SMALL], y_valid=frame["diagnosis"],
        subgroups=frame[["site"]], submit=True, quiet=True)
    assert registration.number == 2 and registration.state == "in_review"
    stored = ModelVersion.objects.get(model__name=MODEL, number=2)
    assert {g["name"] for g in stored.metrics["subgroups"]} == {"site=north", "site=south"}
    assert 0.5 < stored.metrics["overall"]["auc"] <= 1
    assert stored.reproducibility["status"] == "reproduced"
    assert stored.reproducibility["owner_environment"]["packages"]["scikit-learn"]
    assert stored.runbook.startswith("Redeploy")
    page = registration._repr_html_()
    assert f'href="{url}/models/{MODEL}/versions/2/"' in page and "reproduced" in page

    diff = attest("version", "diff", MODEL, "1", "2", "--json").json
    fields = {c["field"] for c in diff["changes"]}
    assert {"state", "artifact_sha256", "model_card", "hyperparameters"} <= fields

    assert verify_chain().ok


def test_the_notebook_registers_a_dataset_from_x_train_and_creates_the_model(
        attest, logged_in, personas):
    logged_in("owner")
    frame = breast_cancer_frame()
    registration = attest_client.register(
        model=logistic_model(), X_train=frame[FEATURES_SMALL], name="triage-lr",
        dataset={"name": "bc-train", "version": "1", "source": "scikit-learn's breast cancer data",
                 "deidentification": "public data"},
        format="onnx", threshold=0.6, quiet=True)
    assert registration.model_created and registration.dataset_created
    assert registration.version["format"] == "onnx"
    assert registration.onnx_check["equal"] and registration.onnx_check["rows"] == 569
    stored = DatasetVersion.objects.get(name="bc-train")
    assert stored.file_key == "" and stored.row_count == 569  # profile only, no rows
    assert ModelVersion.objects.get(model__name="triage-lr").reproducibility["status"] == \
        "reproduced"
    assert "v1 — draft" in str(registration)
