"""The demo: a real model trained on scikit-learn's bundled breast-cancer data,
registered through the same services a model owner uses."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files import File
from django.db import transaction

from core.context import acting_as

from . import release, services
from .models import DatasetVersion, RegisteredModel
from .roles import AUDITORS_GROUP, SIGNING_ROLES, ModelRole

MODEL_NAME = "breast-cancer-malignancy"
DATASET_NAME = "wdbc-breast-cancer"


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    role: str | None  # per-model role on the demo model
    password: str


DEMO_USERS = [
    DemoUser("admin", "Ada Admin", None, "admin-attest-demo"),
    DemoUser("owner", "Olu Owner (data scientist)", ModelRole.OWNER, "owner-attest-demo"),
    DemoUser("pi", "Dr. Priya Investigator (PI)", ModelRole.APPROVER, "pi-attest-demo"),
    DemoUser("irb", "Ivan Reyes (IRB)", ModelRole.IRB, "irb-attest-demo"),
    DemoUser("clinician", "Dr. Chen Lin (clinician)", ModelRole.CLINICIAN, "clinician-attest-demo"),
    DemoUser("reviewer", "Rosa Reviewer", ModelRole.REVIEWER, "reviewer-attest-demo"),
    DemoUser("auditor", "Aud Itor (auditor)", None, "auditor-attest-demo"),
]

# Every statement is about scikit-learn's bundled copy of the WDBC data (its description:
# sklearn/datasets/descr/breast_cancer.rst) or about how this module trains and evaluates
# the demo versions; the headings are those the compliance dossier reads (dossier/card.py).
MODEL_CARD = """\
# Breast mass malignancy (Attest demo)

## Model details
A binary classifier that estimates the probability that a breast mass is **malignant**
(against benign) from 30 numeric features of a fine-needle aspirate (FNA) image. Built
with scikit-learn and saved with skops by Attest's demo; each version's estimator,
hyperparameters, code reference and hashes are in its version record. A demonstration
of Attest, not a medical device: it has not been clinically validated.

## Intended use
Shows how a clinical prediction model is registered, reviewed, released and monitored
in Attest. Its example use is decision support for a pathologist reviewing breast FNA
cytology. It must not be used for the care of patients.

## Intended use and workflow
In the example workflow the score is shown to the pathologist reviewing the case, who
makes the diagnosis. A prediction whose confidence (the larger class probability) is
below the version's confidence threshold, or whose input is out of the training ranges,
goes to the review queue, where a reviewer accepts it or overrides it with a reason
code. Histopathology outcomes recorded later feed monitoring.

## Target population
Patients with a breast mass sampled by fine-needle aspiration whose aspirate image is
digitized, as in the Wisconsin Diagnostic Breast Cancer (WDBC) data. The data record
no age, sex or other demographic or clinical variables, so the population cannot be
described further from them.

## Out-of-scope settings
- Any care of patients (the model is a demonstration).
- Screening of people without a breast mass, and masses not sampled by FNA.
- Features not computed from a digitized FNA image as in WDBC (the mean, standard
  error and "worst" value, the mean of the three largest, of ten nuclear
  characteristics).
- Use without a pathologist's review.

## Factors
The data hold no demographic, site or instrument variables, so performance cannot be
broken down by patient group, centre or device. Evaluation factors used: tumour size
(mean area) and nuclear texture (mean texture), each split at its median in the
held-out data.

## Metrics
Accuracy, sensitivity (malignant cases called malignant), specificity (benign cases
called benign) at a 0.5 cut-off of the malignant probability, the Brier score and the
ROC AUC, overall and per subgroup; and a reliability curve (ten equal-width score bins)
that monitoring compares with live outcomes. No confidence intervals are computed.

## Evaluation data
The 25% of the WDBC data held out from training: 143 samples (53 malignant, 90
benign), split stratified by diagnosis with seed 7. They come from the same dataset as
the training data: there is no external, temporal or other-site validation.

## Training data
Wisconsin Diagnostic Breast Cancer (WDBC) data as bundled with scikit-learn (a copy of
the UCI ML repository's dataset; creators Wolberg, Street and Mangasarian; dated
November 1995): 569 samples (212 malignant, 357 benign), 30 numeric features of the
cell nuclei in a digitized FNA image, no missing values. 75% (426 samples, 159
malignant, 267 benign; stratified, seed 7) were used for training, registered as
wdbc-breast-cancer 2024.1.

## Quantitative analyses
Each version's recorded metrics give the figures on the held-out samples, overall and
for mean area below / at or above the median and mean texture below / at or above the
median. The figures differ by version: read them in its metrics table.

## Ethical considerations
The bundled data hold only the 30 image features and the diagnosis of each sample: no
names, dates or other identifiers. Whether the model is fair across patient groups
cannot be assessed from these data. A missed malignancy (a false negative) is the most
harmful error, which is why every use in the example workflow has a pathologist's
review.

## Caveats and recommendations
- One public dataset, dated 1995, of 569 samples: validate on local, recent data
  before drawing any conclusion about performance elsewhere.
- Inputs outside the training ranges are flagged as out-of-distribution.

## Known risks and biases
- Unknown performance across age, ethnicity or other patient groups: the data record
  none of them.
- 37% of the samples are malignant; where the share of malignant masses differs, the
  probabilities may be miscalibrated.
- 143 held-out samples are few, and the figures carry no confidence intervals.

## Key metrics
Sensitivity and specificity for malignancy, the ROC AUC and the Brier score, measured on
the 143 held-out samples described under Evaluation data.
"""

RUNBOOK = """\
## Redeploy
1. Promote the approved version in Attest (owner), or roll back to the previous
   production version with a reason.
2. No restart is needed: workers load the new artifact by its sha256 on next use.

## Retrain
1. Export the new training extract; run `attest profile data.csv` locally.
2. Register the dataset version with its provenance (source, criteria, protocol).
3. Train with the same code reference, save with `skops.io.dump`, register the
   version, attach metrics overall and per subgroup, submit for PI and IRB sign-off.

## When predictions look wrong
Low-confidence and out-of-distribution predictions go to the review queue;
reviewers override with a reason code. A rising override rate is a retraining signal.
"""


def demo_password(username: str) -> str:
    return next(d.password for d in DEMO_USERS if d.username == username)


def _users():
    User = get_user_model()
    created = {}
    auditors, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
    create_perm = Permission.objects.get(codename="add_registeredmodel",
                                         content_type__app_label="registry")
    for demo in DEMO_USERS:
        user, _ = User.objects.get_or_create(username=demo.username)
        first, _, last = demo.full_name.partition(" ")
        user.first_name, user.last_name = first, last
        user.email = f"{demo.username}@example.org"
        user.is_active = True
        user.is_superuser = user.is_staff = demo.username == "admin"
        user.set_password(demo.password)
        user.save()
        if demo.username == "auditor":
            user.groups.add(auditors)
        if demo.username == "owner":
            user.user_permissions.add(create_perm)
        created[demo.username] = user
    return created


def breast_cancer_frame():
    """The WDBC data as scikit-learn bundles it, with a ``diagnosis`` column."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame["diagnosis"] = np.where(frame.pop("target") == 0, "malignant", "benign")
    return frame


def demo_data():
    """(training split, held-out split, feature names), as the demo versions use them."""
    from sklearn.model_selection import train_test_split

    frame = breast_cancer_frame()
    train, test = train_test_split(frame, test_size=0.25, random_state=7,
                                   stratify=frame["diagnosis"])
    return train, test, [c for c in frame.columns if c != "diagnosis"]


def demo_metrics(model, test, features) -> dict:
    from sklearn.metrics import accuracy_score, brier_score_loss, recall_score, roc_auc_score

    def block(df) -> dict:
        y = (df["diagnosis"] == "malignant").astype(int)
        proba = model.predict_proba(df[features])[:, list(model.classes_).index("malignant")]
        pred = (proba >= 0.5).astype(int)
        out = {"accuracy": round(float(accuracy_score(y, pred)), 4),
               "sensitivity": round(float(recall_score(y, pred, zero_division=0)), 4),
               "specificity": round(float(recall_score(1 - y, 1 - pred, zero_division=0)), 4),
               "brier": round(float(brier_score_loss(y, proba)), 4)}
        if y.nunique() == 2:
            out["auc"] = round(float(roc_auc_score(y, proba)), 4)
        return out

    area_median = float(test["mean area"].median())
    texture_median = float(test["mean texture"].median())
    groups = [
        ("mean area < median", test[test["mean area"] < area_median]),
        ("mean area ≥ median", test[test["mean area"] >= area_median]),
        ("mean texture < median", test[test["mean texture"] < texture_median]),
        ("mean texture ≥ median", test[test["mean texture"] >= texture_median]),
    ]
    return {"overall": block(test),
            "subgroups": [{"name": n, "n": len(g), "metrics": block(g)} for n, g in groups],
            "calibration": _calibration(model, test, features)}


def _calibration(model, test, features) -> list[dict]:
    """The held-out reliability curve (10 equal-width score bins, as scikit-learn's
    calibration_curve bins them), which monitoring sets beside the live one."""
    y = (test["diagnosis"] == "malignant").to_numpy(dtype=int)
    proba = model.predict_proba(test[features])[:, list(model.classes_).index("malignant")]
    ids = np.searchsorted(np.linspace(0, 1, 11)[1:-1], proba)
    bins = []
    for i in range(10):
        inside = ids == i
        if inside.any():
            bins.append({"mean_score": round(float(proba[inside].mean()), 4),
                         "observed_rate": round(float(y[inside].mean()), 4),
                         "n": int(inside.sum())})
    return bins


def subgroup_rules() -> list[dict]:
    """The validation subgroups as rules on the inputs (monitoring's policy), so live
    outcomes are reported per subgroup beside the same validation figures."""
    _train, test, _features = demo_data()
    area, texture = float(test["mean area"].median()), float(test["mean texture"].median())
    return [{"name": "mean area < median", "feature": "mean area", "op": "<", "value": area},
            {"name": "mean area ≥ median", "feature": "mean area", "op": ">=", "value": area},
            {"name": "mean texture < median", "feature": "mean texture", "op": "<",
             "value": texture},
            {"name": "mean texture ≥ median", "feature": "mean texture", "op": ">=",
             "value": texture}]


def skops_file(model, name: str) -> File:
    import skops.io as sio

    return File(io.BytesIO(sio.dumps(model)), name=name)


def run_demo(*, stdout) -> dict:
    """Create users, the demo dataset and two versions; idempotent."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with transaction.atomic():
        users = _users()
    owner = users["owner"]
    with acting_as(owner, via="command"):
        model = RegisteredModel.objects.filter(name=MODEL_NAME).first()
        if model is None:
            model = services.registered_model_create(
                user=owner, name=MODEL_NAME,
                description="Probability that a breast mass is malignant, from FNA cytology "
                            "features (WDBC).", retention_days=365)
        for demo in DEMO_USERS:
            if demo.role and demo.role != ModelRole.OWNER and demo.role not in SIGNING_ROLES:
                services.access_grant(user=owner, model=model, grantee=users[demo.username],
                                      role=demo.role)
    with acting_as(users["admin"], via="command"):  # administrators name the signers
        for demo in DEMO_USERS:
            if demo.role in SIGNING_ROLES:
                services.access_grant(user=users["admin"], model=model,
                                      grantee=users[demo.username], role=demo.role)
    with acting_as(owner, via="command"):
        train, test, features = demo_data()
        dataset = DatasetVersion.objects.filter(name=DATASET_NAME, version="2024.1").first()
        if dataset is None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "wdbc-train.csv"
                train.to_csv(path, index=False)
                with open(path, "rb") as handle:
                    dataset = services.dataset_version_register(
                        user=owner, name=DATASET_NAME, version="2024.1",
                        data_file=File(handle, name="wdbc-train.csv"),
                        source="Wisconsin Diagnostic Breast Cancer (WDBC), UCI ML repository, as "
                               "bundled with scikit-learn (load_breast_cancer)",
                        description="Training split (75%, stratified, seed 7).",
                        inclusion_criteria="FNA samples of breast masses with a confirmed "
                                           "diagnosis.",
                        exclusion_criteria="None recorded in the public release.",
                        date_start="1989-01-01", date_end="1995-12-31",
                        protocol_number="DEMO-0001",
                        deidentification="Public dataset; contains no direct identifiers.")
        if not model.versions.exists():
            gb = GradientBoostingClassifier(n_estimators=150, max_depth=3, learning_rate=0.1,
                                            random_state=7)
            gb.fit(train[features], train["diagnosis"])
            v1 = services.model_version_register(
                user=owner, model=model, artifact=skops_file(gb, "gb.skops"), metadata={
                    "dataset": dataset.pk, "trusted_types": ["sklearn.tree._tree.Tree"],
                    "description": "Gradient boosting, 150 trees of depth 3.",
                    "output_schema": {"positive_label": "malignant",
                                      "label_names": {"malignant": "Malignant",
                                                      "benign": "Benign"}},
                    "code_reference": "https://example.org/lab/wdbc-model@4e1c2a9",
                    "hyperparameters": gb.get_params() | {"random_state": 7},
                    "metrics": demo_metrics(gb, test, features), "confidence_threshold": 0.85,
                    "ood_policy": "review", "model_card": MODEL_CARD, "runbook": RUNBOOK})
            services.model_version_submit(user=owner, version=v1)
            for who, meaning, comment in (
                    ("pi", "pi_approval", "Held-out metrics acceptable in every subgroup."),
                    ("irb", "irb_approval", "Use is within protocol DEMO-0001.")):
                with acting_as(users[who], via="command"):
                    release.signoff_record(user=users[who], version=v1, meaning=meaning,
                                           decision="approve", password=demo_password(who),
                                           comment=comment)
            release.version_promote(user=owner, version=v1)
            lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
            lr.fit(train[features], train["diagnosis"])
            v2 = services.model_version_register(
                user=owner, model=model, artifact=skops_file(lr, "lr.skops"), metadata={
                    "dataset": f"{DATASET_NAME}@2024.1",
                    "description": "Candidate: standardized logistic regression (C=0.5).",
                    "output_schema": {"positive_label": "malignant"},
                    "hyperparameters": {"C": 0.5, "max_iter": 2000},
                    "metrics": demo_metrics(lr, test, features), "confidence_threshold": 0.8,
                    "model_card": MODEL_CARD, "runbook": RUNBOOK})
            services.model_version_submit(user=owner, version=v2)
    stdout.write(f"Demo model '{MODEL_NAME}' is ready: v1 in production (signed by pi and irb), "
                 "v2 in review awaiting their sign-off.\n")
    stdout.write("Users (demo passwords — change them before real use):\n")
    for demo in DEMO_USERS:
        role = demo.role or ("admin" if demo.username == "admin" else "global auditor")
        stdout.write(f"  {demo.username:<10} {demo.password:<24} {role}\n")
    return {"model": model, "users": users}
