"""Every endpoint and page × every persona, with the status each must get.

The matrix is checked against the URL resolver: a route added without a row
here fails ``test_every_route_has_a_row``. Each persona's request runs inside a
savepoint that is rolled back, so one persona's write never changes what the
next one sees.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.messages import constants, get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from audits.checkpoints import audit_checkpoint_write
from audits.models import AuditEvent
from dossier.models import Dossier, DossierStatus
from explain.services import explanation_request
from inference.batches import batch_submit
from inference.services import prediction_create
from inference.tasks import batch_enqueue, run_batch
from portal.tokens import api_token_create
from registry.models import ModelVersion
from registry.release import signoff_record, version_promote
from registry.services import model_version_submit
from registry.storage import blob_put

from ..artifacts import logistic_model, skops_bytes, training_csv
from ..inference.helpers import typical_input
from ..personas import PASSWORD
from ..registry.helpers import register_dataset, register_version

pytestmark = pytest.mark.django_db

PERSONAS = ("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer", "viewer_other",
            "outsider", "anonymous")
VIEWERS = ("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer")
HIDDEN = ("viewer_other", "outsider")
AUDIT_READERS = ("admin", "auditor", "owner", "pi", "irb")
GLOBAL = ("admin", "auditor")
EDITORS = ("admin", "owner")
DOWNLOADERS = ("admin", "auditor", "owner", "pi")

# Expectations: an HTTP status, or "login" (302 to the sign-in page), "deny" (302
# elsewhere with an error message), "ok302" (302 with no error message).


@dataclass
class Case:
    name: str
    method: str
    path: str
    expected: dict
    api: bool = False
    data: Any = None
    format: str | None = None
    multipart: bool = False
    extra: dict = field(default_factory=dict)


def matrix(ctx) -> list[Case]:
    m = ctx["model"]
    v = f"/models/{m}/versions/1"  # a draft
    vr = f"/models/{m}/versions/2"  # in review
    va = f"/models/{m}/versions/5"  # approved (v3 superseded, v4 production)
    api_v, api_vr, api_va = f"/api/v1{v}", f"/api/v1{vr}", f"/api/v1{va}"

    def table(**groups) -> dict:
        out = {}
        for value_key, personas in groups.items():
            value = {"s200": 200, "s201": 201, "s202": 202, "s204": 204, "s401": 401, "s403": 403,
                     "s404": 404, "s409": 409, "login": "login", "deny": "deny", "ok302": "ok302"}[
                         value_key.split("__")[0]]
            for persona in personas:
                out[persona] = value
        missing = set(PERSONAS) - set(out)
        assert not missing, f"no expectation for {sorted(missing)}"
        return out

    everyone = PERSONAS[:-1]
    return [
        # -- shell --------------------------------------------------------------------------
        Case("home", "get", "/", table(s200=everyone, login=("anonymous",))),
        Case("healthz", "get", "/healthz/", table(s200=PERSONAS)),
        Case("login", "get", "/login/", table(ok302=everyone, s200=("anonymous",))),
        Case("logout", "post", "/logout/", table(login=PERSONAS)),
        Case("account", "get", "/account/", table(s200=everyone, login=("anonymous",))),
        Case("audit-events", "get", "/audit/", table(
            s200=AUDIT_READERS, deny=("clinician", "reviewer", *HIDDEN), login=("anonymous",))),
        Case("audit-event", "get", f"/audit/events/{ctx['event_id']}/", table(
            s200=AUDIT_READERS, deny=("clinician", "reviewer", *HIDDEN), login=("anonymous",))),
        Case("audit-export", "get", "/audit/export/?format=csv", table(
            s200=AUDIT_READERS, deny=("clinician", "reviewer", *HIDDEN), login=("anonymous",))),
        Case("audit-verify", "get", "/audit/verify/", table(
            s200=AUDIT_READERS, deny=("clinician", "reviewer", *HIDDEN), login=("anonymous",))),
        Case("audit-checkpoint-create", "post", "/audit/checkpoints/new/", table(
            ok302=("admin",), deny=("auditor", "owner", "pi", "irb", "clinician", "reviewer",
                                    *HIDDEN), login=("anonymous",))),
        Case("audit-checkpoint", "get", f"/audit/checkpoints/{ctx['checkpoint_key']}", table(
            s200=GLOBAL, deny=("owner", "pi", "irb", "clinician", "reviewer", *HIDDEN),
            login=("anonymous",))),
        Case("audit-public-key", "get", "/audit/public-key/", table(
            s200=GLOBAL, deny=("owner", "pi", "irb", "clinician", "reviewer", *HIDDEN),
            login=("anonymous",))),
        Case("api-docs", "get", "/api/docs/", table(s200=everyone, s401=("anonymous",))),
        Case("api-schema", "get", "/api/schema/", table(s200=everyone, s401=("anonymous",))),
        # -- registry pages ---------------------------------------------------------------
        Case("registry:model-list", "get", "/models/", table(s200=everyone, login=("anonymous",))),
        Case("registry:model-create", "get", "/models/new/", table(
            s200=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer", *HIDDEN),
            login=("anonymous",))),
        Case("registry:model-create", "post", "/models/new/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer", *HIDDEN),
            login=("anonymous",)), data={"name": "brand-new", "retention_days": 30}),
        Case("registry:model-detail", "get", f"/models/{m}/", table(
            s200=VIEWERS, s404=HIDDEN, login=("anonymous",))),
        Case("registry:model-access", "get", f"/models/{m}/access/", table(
            s200=VIEWERS, s404=HIDDEN, login=("anonymous",))),
        Case("registry:model-access", "post", f"/models/{m}/access/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",)), data={"username": "outsider", "role": "viewer"}),
        # signing roles are granted by administrators only, not by the model's owners
        Case("registry:model-access", "post", f"/models/{m}/access/", table(
            ok302=("admin",), deny=("owner", "auditor", "pi", "irb", "clinician", "reviewer"),
            s404=HIDDEN, login=("anonymous",)), data={"username": "outsider", "role": "approver"}),
        Case("registry:version-register", "get", f"/models/{m}/versions/new/", table(
            s200=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("registry:version-detail", "get", f"{v}/", table(
            s200=VIEWERS, s404=HIDDEN, login=("anonymous",))),
        Case("registry:version-edit", "get", f"{v}/edit/", table(
            s200=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("registry:version-submit", "post", f"{v}/submit/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("registry:version-artifact", "get", f"{v}/artifact/", table(
            s200=DOWNLOADERS, deny=("irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("registry:version-review", "get", f"{v}/review/", table(
            s200=VIEWERS, s404=HIDDEN, login=("anonymous",))),
        Case("registry:version-review", "post", f"{vr}/review/", table(
            ok302=("pi",), deny=("auditor", "owner", "clinician", "reviewer"), s200=("admin", "irb"),
            s404=HIDDEN, login=("anonymous",)), data="pi-signoff"),
        Case("registry:version-promote", "post", f"{va}/promote/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("registry:version-retire", "post", f"{va}/retire/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("registry:version-discard", "post", f"{v}/discard/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("registry:version-shadow", "post", f"{vr}/shadow/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("registry:model-rollback", "post", f"/models/{m}/rollback/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",)), data={"to_version": 3, "reason": "matrix"}),
        # the release policy is the administrators' (v2 in review keeps its frozen one)
        Case("registry:model-policy", "post", f"/models/{m}/policy/", table(
            ok302=("admin",), deny=("owner", "auditor", "pi", "irb", "clinician", "reviewer"),
            s404=HIDDEN, login=("anonymous",)), data={"required_signoffs": "pi_approval"}),
        Case("inference:predict", "get", f"/models/{m}/predict/", table(
            s200=("admin", "owner", "clinician"), deny=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, login=("anonymous",))),
        Case("inference:predict", "post", f"/models/{m}/predict/", table(
            ok302=("admin", "owner", "clinician"), deny=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, login=("anonymous",)), data="predict-form"),
        Case("inference:my-predictions", "get", "/predictions/", table(
            s200=everyone, login=("anonymous",))),
        Case("inference:prediction", "get", f"/predictions/{ctx['prediction_id']}/", table(
            s200=("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer"),
            s404=HIDDEN, login=("anonymous",))),
        Case("inference:prediction-explain", "post", f"/predictions/{ctx['prediction_id']}/explain/",
             table(ok302=("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer"),
                   s404=HIDDEN, login=("anonymous",)), data={"method": "shap"}),
        Case("explain:version-figures-request", "post", f"{vr}/explanations/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("inference:operations", "get", f"/models/{m}/operations/", table(
            s200=VIEWERS, s404=HIDDEN, login=("anonymous",))),
        Case("inference:review-queue", "get", "/reviews/", table(
            s200=everyone, login=("anonymous",))),
        Case("inference:review-item", "get", f"/reviews/{ctx['review_id']}/", table(
            s200=("admin", "clinician", "reviewer"),
            s404=("auditor", "owner", "pi", "irb", *HIDDEN), login=("anonymous",))),
        # the clinician requested the prediction: four eyes, another reviewer decides
        Case("inference:review-item", "post", f"/reviews/{ctx['review_id']}/", table(
            ok302=("admin", "reviewer"), deny=("clinician",),
            s404=("auditor", "owner", "pi", "irb", *HIDDEN), login=("anonymous",)),
             data={"decision": "accept"}),
        Case("registry:trusted-types", "get", "/trusted-types/", table(
            s200=everyone, login=("anonymous",))),
        Case("registry:trusted-types", "post", "/trusted-types/", table(
            ok302=("admin",), deny=tuple(p for p in everyone if p != "admin"),
            login=("anonymous",)), data={"action": "add", "name": "example.pkg.Thing",
                                         "reason": "matrix"}),
        Case("registry:dataset-list", "get", "/datasets/", table(
            s200=everyone, login=("anonymous",))),
        Case("registry:dataset-create", "get", "/datasets/new/", table(
            s200=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer", *HIDDEN),
            login=("anonymous",))),
        Case("registry:dataset-detail", "get", f"/datasets/{ctx['dataset_id']}/", table(
            s200=VIEWERS, s404=HIDDEN, login=("anonymous",))),
        # -- API ------------------------------------------------------------------------------
        Case("api-tokens", "get", "/api/v1/auth/tokens/", table(s200=everyone, s401=("anonymous",)),
             api=True),
        Case("api-tokens", "post", "/api/v1/auth/tokens/", table(s201=everyone, s401=("anonymous",)),
             api=True, data="credentials"),
        Case("api-whoami", "get", "/api/v1/auth/whoami/", table(s200=everyone,
                                                                  s401=("anonymous",)), api=True),
        Case("api-token", "delete", f"/api/v1/auth/tokens/{ctx['token_id']}/", table(
            s204=("owner",), s404=("admin", "auditor", "pi", "irb", "clinician", "reviewer",
                                   *HIDDEN), s401=("anonymous",)), api=True),
        Case("api-audit-verify", "get", "/api/v1/audit/verify/", table(
            s200=AUDIT_READERS, s403=("clinician", "reviewer", *HIDDEN), s401=("anonymous",)),
             api=True),
        Case("api-audit-events", "get", "/api/v1/audit/events/", table(
            s200=AUDIT_READERS, s403=("clinician", "reviewer", *HIDDEN), s401=("anonymous",)),
             api=True),
        Case("api-audit-event", "get", f"/api/v1/audit/events/{ctx['event_id']}/", table(
            s200=AUDIT_READERS, s403=("clinician", "reviewer", *HIDDEN), s401=("anonymous",)),
             api=True),
        Case("api-audit-export", "get", "/api/v1/audit/export/?format=json", table(
            s200=AUDIT_READERS, s403=("clinician", "reviewer", *HIDDEN), s401=("anonymous",)),
             api=True),
        Case("api-audit-checkpoints", "get", "/api/v1/audit/checkpoints/", table(
            s200=GLOBAL, s403=("owner", "pi", "irb", "clinician", "reviewer", *HIDDEN),
            s401=("anonymous",)), api=True),
        Case("api-audit-checkpoint-latest", "get", "/api/v1/audit/checkpoints/latest/", table(
            s200=GLOBAL, s403=("owner", "pi", "irb", "clinician", "reviewer", *HIDDEN),
            s401=("anonymous",)), api=True),
        Case("api-audit-checkpoints", "post", "/api/v1/audit/checkpoints/", table(
            s201=("admin",), s403=("auditor", "owner", "pi", "irb", "clinician", "reviewer",
                                   *HIDDEN), s401=("anonymous",)), api=True),
        Case("api-trusted-types", "get", "/api/v1/trusted-types/", table(
            s200=everyone, s401=("anonymous",)), api=True),
        Case("api-trusted-types", "post", "/api/v1/trusted-types/", table(
            s201=("admin",), s403=tuple(p for p in everyone if p != "admin"),
            s401=("anonymous",)), api=True, data={"name": "example.pkg.Thing"}, format="json"),
        Case("api-trusted-type", "delete", "/api/v1/trusted-types/sklearn.tree._tree.Tree/", table(
            s204=("admin",), s403=tuple(p for p in everyone if p != "admin"),
            s401=("anonymous",)), api=True),
        Case("api-models", "get", "/api/v1/models/", table(s200=everyone, s401=("anonymous",)),
             api=True),
        Case("api-models", "post", "/api/v1/models/", table(
            s201=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer", *HIDDEN),
            s401=("anonymous",)), api=True, data={"name": "brand-new"}, format="json"),
        # a release policy other than the default: administrators only
        Case("api-models", "post", "/api/v1/models/", table(
            s201=("admin",), s403=("owner", "auditor", "pi", "irb", "clinician", "reviewer",
                                   *HIDDEN),
            s401=("anonymous",)), api=True,
             data={"name": "lax-policy", "required_signoffs": ["pi_approval"]}, format="json"),
        Case("api-model", "get", f"/api/v1/models/{m}/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-versions", "get", f"/api/v1/models/{m}/versions/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-versions", "post", f"/api/v1/models/{m}/versions/", table(
            s201=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True, data="new-version", multipart=True),
        Case("api-version", "get", f"{api_v}/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-version", "patch", f"{api_v}/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True, data={"runbook": "Updated"}, format="json"),
        Case("api-version-submit", "post", f"{api_v}/submit/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-version-artifact", "get", f"{api_v}/artifact/", table(
            s200=DOWNLOADERS, s403=("irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-access", "get", f"/api/v1/models/{m}/access/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-access", "post", f"/api/v1/models/{m}/access/", table(
            s201=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True, data={"user": "outsider", "role": "viewer"},
             format="json"),
        Case("api-access", "delete", f"/api/v1/models/{m}/access/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True, data={"user": "reviewer", "role": "reviewer"},
             format="json"),
        Case("api-access", "post", f"/api/v1/models/{m}/access/", table(
            s201=("admin",), s403=("owner", "auditor", "pi", "irb", "clinician", "reviewer"),
            s404=HIDDEN, s401=("anonymous",)), api=True,
             data={"user": "outsider", "role": "irb"}, format="json"),
        Case("api-access", "delete", f"/api/v1/models/{m}/access/", table(
            s200=("admin",), s403=("owner", "auditor", "pi", "irb", "clinician", "reviewer"),
            s404=HIDDEN, s401=("anonymous",)), api=True,
             data={"user": "pi", "role": "approver"}, format="json"),
        Case("api-version-signoffs", "get", f"{api_vr}/signoffs/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-version-signoffs", "post", f"{api_vr}/signoffs/", table(
            s201=("pi",), s403=("admin", "auditor", "owner", "irb", "clinician", "reviewer"),
            s404=HIDDEN, s401=("anonymous",)), api=True, data="pi-signoff", format="json"),
        Case("api-version-promote", "post", f"{api_va}/promote/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-version-retire", "post", f"{api_va}/retire/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-version-discard", "post", f"{api_v}/discard/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-version-shadow", "post", f"{api_vr}/shadow/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-version-shadow", "delete", f"{api_vr}/shadow/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-rollback", "post", f"/api/v1/models/{m}/rollback/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True, data={"to_version": 3, "reason": "matrix"},
             format="json"),
        Case("api-production-at", "get", f"/api/v1/models/{m}/production/", table(
            s200=AUDIT_READERS, s403=("clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-model", "patch", f"/api/v1/models/{m}/", table(
            s200=("admin",), s403=("owner", "auditor", "pi", "irb", "clinician", "reviewer"),
            s404=HIDDEN,
            s401=("anonymous",)), api=True, data={"required_signoffs": ["pi_approval"]},
             format="json"),
        Case("api-predict", "post", f"/api/v1/models/{m}/predict/", table(
            s200=("admin", "owner", "clinician"), s403=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, s401=("anonymous",)), api=True, data="predict-row", format="json"),
        Case("api-prediction", "get", f"/api/v1/predictions/{ctx['prediction_id']}/", table(
            s200=("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer"),
            s404=HIDDEN, s401=("anonymous",)), api=True),
        # 202: the LIME job of the context is still pending
        Case("api-prediction-explanations", "get",
             f"/api/v1/predictions/{ctx['prediction_id']}/explanations/", table(
                 s202=("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer"),
                 s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-prediction-explanations", "post",
             f"/api/v1/predictions/{ctx['prediction_id']}/explanations/", table(
                 s200=("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer"),
                 s404=HIDDEN, s401=("anonymous",)), api=True, data={"method": "shap"},
             format="json"),
        Case("api-prediction-explanation-job", "get",
             f"/api/v1/predictions/{ctx['prediction_id']}/explanations/jobs/{ctx['job_id']}/",
             table(s202=("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer"),
                   s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-version-explanations", "get", f"{api_vr}/explanations/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-version-explanations", "post", f"{api_vr}/explanations/", table(
            s202=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-version-background", "post", f"{api_v}/background/", table(
            s201=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True, data="background-file", multipart=True),
        Case("api-dataset-background", "post", f"/api/v1/datasets/{ctx['dataset_id']}/background/",
             table(s201=EDITORS, s404=("auditor", "pi", "irb", "clinician", "reviewer", *HIDDEN),
                   s401=("anonymous",)), api=True, data="background-file", multipart=True),
        Case("api-reviews", "get", "/api/v1/reviews/", table(s200=everyone, s401=("anonymous",)),
             api=True),
        Case("api-review", "get", f"/api/v1/reviews/{ctx['review_id']}/", table(
            s200=("admin", "clinician", "reviewer"),
            s404=("auditor", "owner", "pi", "irb", *HIDDEN), s401=("anonymous",)), api=True),
        Case("api-review-decision", "post", f"/api/v1/reviews/{ctx['review_id']}/decision/",
             table(s200=("admin", "reviewer"), s403=("clinician",),
                   s404=("auditor", "owner", "pi", "irb", *HIDDEN), s401=("anonymous",)),
             api=True, data={"decision": "accept"}, format="json"),
        Case("api-review-stats", "get", f"/api/v1/models/{m}/review-stats/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-datasets", "get", "/api/v1/datasets/", table(s200=everyone, s401=("anonymous",)),
             api=True),
        Case("api-datasets", "post", "/api/v1/datasets/", table(
            s201=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer", *HIDDEN),
            s401=("anonymous",)), api=True, data="new-dataset", multipart=True),
        Case("api-dataset", "get", f"/api/v1/datasets/{ctx['dataset_id']}/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        # -- monitoring: figures for every member; runs and policy for owners; outcomes
        # for those who record them (owners, clinicians) ------------------------------
        Case("monitoring:page", "get", f"/models/{m}/monitoring/", table(
            s200=VIEWERS, s404=HIDDEN, login=("anonymous",))),
        Case("monitoring:run", "post", f"/models/{m}/monitoring/run/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",)), data={"version": 4}),
        Case("monitoring:policy", "post", f"/models/{m}/monitoring/policy/", table(
            ok302=EDITORS, deny=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",)), data={"thresholds": "", "subgroups": "",
                                         "cpu_hour_price": "0.1"}),
        Case("monitoring:outcomes", "get", f"/models/{m}/outcomes/", table(
            s200=("admin", "owner", "clinician"), deny=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, login=("anonymous",))),
        Case("monitoring:outcomes", "post", f"/models/{m}/outcomes/", table(
            ok302=("admin", "owner", "clinician"), deny=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, login=("anonymous",)), data="outcome-file"),
        Case("api-monitoring", "get", f"/api/v1/models/{m}/monitoring/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-monitoring-runs", "post", f"/api/v1/models/{m}/monitoring/runs/", table(
            s201=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True, data={"version": 4}, format="json"),
        Case("api-monitoring-policy", "get", f"/api/v1/models/{m}/monitoring/policy/", table(
            s200=VIEWERS, s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-monitoring-policy", "put", f"/api/v1/models/{m}/monitoring/policy/", table(
            s200=EDITORS, s403=("auditor", "pi", "irb", "clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True, data={"cpu_hour_price": 0.1}, format="json"),
        Case("api-outcomes", "post", f"/api/v1/models/{m}/outcomes/", table(
            s201=("admin", "owner", "clinician"), s403=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, s401=("anonymous",)), api=True, data="outcome-row", format="json"),
        # -- compliance dossiers: generate_dossier to ask, view_audit or generate_dossier
        # to read; a member without either gets 403 on the version, 404 on a dossier ----
        Case("dossier:generate", "post", f"/models/{m}/versions/4/dossiers/", table(
            ok302=AUDIT_READERS, deny=("clinician", "reviewer"), s404=HIDDEN,
            login=("anonymous",))),
        Case("dossier:detail", "get", f"/dossiers/{ctx['dossier_id']}/", table(
            s200=AUDIT_READERS, s404=("clinician", "reviewer", *HIDDEN),
            login=("anonymous",))),
        Case("api-version-dossiers", "get", f"/api/v1/models/{m}/versions/4/dossiers/", table(
            s200=AUDIT_READERS, s403=("clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-version-dossiers", "post", f"/api/v1/models/{m}/versions/4/dossiers/", table(
            s202=AUDIT_READERS, s403=("clinician", "reviewer"), s404=HIDDEN,
            s401=("anonymous",)), api=True),
        Case("api-dossier", "get", f"/api/v1/dossiers/{ctx['dossier_id']}/", table(
            s200=AUDIT_READERS, s404=("clinician", "reviewer", *HIDDEN),
            s401=("anonymous",)), api=True),
        Case("api-dossier-pdf", "get", f"/api/v1/dossiers/{ctx['dossier_id']}/pdf/", table(
            s200=AUDIT_READERS, s404=("clinician", "reviewer", *HIDDEN),
            s401=("anonymous",)), api=True),
        Case("api-dossier-evidence", "get", f"/api/v1/dossiers/{ctx['dossier_id']}/evidence/",
             table(s200=AUDIT_READERS, s404=("clinician", "reviewer", *HIDDEN),
                   s401=("anonymous",)), api=True),
        # the IRB signs a dossier (irb_dossier_review); other readers may not (403 / back
        # with the reason), and to those who may not read it the dossier does not exist
        Case("dossier:sign", "post", f"/dossiers/{ctx['dossier_id']}/sign/", table(
            ok302=("irb",), deny=("admin", "auditor", "owner", "pi"),
            s404=("clinician", "reviewer", *HIDDEN), login=("anonymous",)),
             data="irb-dossier-review"),
        Case("api-dossier-signoffs", "get", f"/api/v1/dossiers/{ctx['dossier_id']}/signoffs/",
             table(s200=AUDIT_READERS, s404=("clinician", "reviewer", *HIDDEN),
                   s401=("anonymous",)), api=True),
        Case("api-dossier-signoffs", "post", f"/api/v1/dossiers/{ctx['dossier_id']}/signoffs/",
             table(s201=("irb",), s403=("admin", "auditor", "owner", "pi"),
                   s404=("clinician", "reviewer", *HIDDEN), s401=("anonymous",)), api=True,
             data="irb-dossier-review", format="json"),
        # -- batch jobs (a finished one and a queued one, both the clinician's) --------
        Case("batches:model-batches", "get", f"/models/{m}/batches/", table(
            s200=("admin", "owner", "clinician"), deny=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, login=("anonymous",))),
        Case("batches:model-batches", "post", f"/models/{m}/batches/", table(
            ok302=("admin", "owner", "clinician"), deny=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, login=("anonymous",)), data="batch-file"),
        Case("batches:detail", "get", f"/batches/{ctx['batch_done']}/", table(
            s200=("admin", "owner", "clinician"),
            s404=("auditor", "pi", "irb", "reviewer", *HIDDEN), login=("anonymous",))),
        Case("batches:cancel", "post", f"/batches/{ctx['batch_queued']}/cancel/", table(
            ok302=("admin", "owner", "clinician"),
            s404=("auditor", "pi", "irb", "reviewer", *HIDDEN), login=("anonymous",))),
        Case("batches:file", "get", f"/batches/{ctx['batch_done']}/files/results/", table(
            s200=("admin", "owner", "clinician"),
            s404=("auditor", "pi", "irb", "reviewer", *HIDDEN), login=("anonymous",))),
        Case("api-batches", "get", f"/api/v1/models/{m}/batches/", table(
            s200=("admin", "owner", "clinician"), s403=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, s401=("anonymous",)), api=True),
        Case("api-batches", "post", f"/api/v1/models/{m}/batches/", table(
            s202=("admin", "owner", "clinician"), s403=("auditor", "pi", "irb", "reviewer"),
            s404=HIDDEN, s401=("anonymous",)), api=True, data="batch-file", multipart=True),
        Case("api-batch", "get", f"/api/v1/batches/{ctx['batch_done']}/", table(
            s200=("admin", "owner", "clinician"),
            s404=("auditor", "pi", "irb", "reviewer", *HIDDEN), s401=("anonymous",)), api=True),
        Case("api-batch", "delete", f"/api/v1/batches/{ctx['batch_queued']}/", table(
            s202=("admin", "owner", "clinician"),
            s404=("auditor", "pi", "irb", "reviewer", *HIDDEN), s401=("anonymous",)), api=True),
        Case("api-batch-file", "get", f"/api/v1/batches/{ctx['batch_done']}/results/", table(
            s200=("admin", "owner", "clinician"),
            s404=("auditor", "pi", "irb", "reviewer", *HIDDEN), s401=("anonymous",)), api=True),
    ]


def _route_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns, namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, f"{namespace}{p.namespace}:" if p.namespace else namespace)
            elif isinstance(p, URLPattern):
                names.add(f"{namespace}{p.name}" if p.name else f"<unnamed {p.pattern}>")

    walk(get_resolver().url_patterns)
    return names


FAKE_CTX = {"model": "m", "batch_done": "b", "batch_queued": "q", "event_id": 1, "checkpoint_key": "k", "dataset_id": 1, "token_id": 1,
            "prediction_id": "p", "review_id": 1, "predict_row": {}, "job_id": "j",
            "dossier_id": "d"}
CASES = matrix(FAKE_CTX)


def test_every_route_has_a_row():
    assert _route_names() == {c.name for c in CASES}, (
        "routes without a permission-matrix row (or rows for routes that no longer exist)")


def _approved(personas, dataset):
    version = register_version(personas.owner, personas.model, dataset)
    model_version_submit(user=personas.owner, version=version)
    for who, meaning in (("pi", "pi_approval"), ("irb", "irb_approval")):
        signoff_record(user=personas.get(who), version=version, meaning=meaning,
                       decision="approve", password=PASSWORD)
    return version


@pytest.fixture
def ctx(personas):
    dataset = register_dataset(personas.owner)
    register_version(personas.owner, personas.model, dataset)  # v1: draft
    v2 = register_version(personas.owner, personas.model, dataset)
    model_version_submit(user=personas.owner, version=v2)  # v2: in review
    version_promote(user=personas.owner, version=_approved(personas, dataset))  # v3
    version_promote(user=personas.owner, version=_approved(personas, dataset))  # v4 production,
    _approved(personas, dataset)  # v5: approved                              v3 superseded
    production = ModelVersion.objects.get(model=personas.model, number=4)
    row = typical_input(production)
    row[production.input_schema[0]["name"]] = 1e6  # out of range: scored, sent to review
    result = prediction_create(user=personas.clinician, model=personas.model, instances=[row])[0]
    # a LIME job waiting for a worker (its on-commit never runs in the test's transaction)
    job = explanation_request(user=personas.clinician, version=production, inputs=row,
                              input_sha256=result.prediction.input_sha256,
                              method="lime").job
    token, _secret = api_token_create(user=personas.owner, name="matrix")
    checkpoint = audit_checkpoint_write()
    done, queued = (batch_submit(enqueue=batch_enqueue, user=personas.clinician, model=personas.model,
                                 upload=_batch_file(production)) for _ in range(2))
    run_batch.apply(args=[done.pk])  # the other stays queued (its on-commit never runs)
    event = AuditEvent.objects.filter(model_id=personas.model.pk).first()
    dossier = _completed_dossier(production, personas.owner)
    return {"dossier_id": dossier.public_id,"model": personas.model.name, "event_id": event.pk,
            "prediction_id": str(result.prediction.public_id), "review_id": result.review.pk,
            "predict_row": typical_input(production), "dataset_id": dataset.pk,
            "token_id": token.pk, "checkpoint_key": checkpoint.storage_key,
            "personas": personas, "dataset": dataset, "batch_done": done.public_id,
            "batch_queued": queued.public_id, "job_id": job.public_id}


def _completed_dossier(version, user):
    """A completed dossier row with stored bytes (building a real one per case is slow;
    tests/dossier builds them)."""
    data = b"%PDF-1.7 matrix stand-in"
    sha = hashlib.sha256(data).hexdigest()
    key, _ = blob_put(io.BytesIO(data), sha)
    return Dossier.objects.create(version=version, status=DossierStatus.COMPLETED, sha256=sha,
                                  storage_key=key, size=len(data), requested_by=user,
                                  progress_done=3,
                                  snapshot={"cover": {"content_hash": version.content_hash}})


def _batch_file(version) -> SimpleUploadedFile:
    row = typical_input(version)
    return SimpleUploadedFile("batch.csv", (",".join(row) + "\n" + ",".join(
        str(v) for v in row.values()) + "\n").encode())


class _Rollback(Exception):
    pass


def _request(case: Case, persona: str, ctx) -> Any:
    personas = ctx["personas"]
    user = None if persona == "anonymous" else personas.get(persona)
    data = case.data
    if data == "credentials":
        data = {"username": user.username if user else "nobody", "password": PASSWORD}
    elif data == "new-version":
        data = {"artifact": SimpleUploadedFile("m.skops", skops_bytes(logistic_model())),
                "metadata": f'{{"dataset": {ctx["dataset_id"]}}}'}
    elif data == "predict-row":
        data = {"inputs": ctx["predict_row"]}
    elif data == "predict-form":
        data = {k: str(v) for k, v in ctx["predict_row"].items()}
    elif data == "pi-signoff":
        data = {"meaning": "pi_approval", "decision": "approve", "password": PASSWORD,
                "comment": "ok", "content_hash": ModelVersion.objects.get(
                    model__name=ctx["model"], number=2).content_hash}
    elif data == "irb-dossier-review":
        dossier = Dossier.objects.select_related("version").get(public_id=ctx["dossier_id"])
        data = {"decision": "approve", "password": PASSWORD, "comment": "",
                "sha256": dossier.sha256, "content_hash": dossier.version.content_hash}
    elif data == "batch-file":
        data = {"file": _batch_file(ModelVersion.objects.get(model__name=ctx["model"],
                                                             number=4))}
    elif data == "background-file":
        data = {"file": SimpleUploadedFile("bg.csv", training_csv()[:2000].rsplit(b"\n", 1)[0]
                                           .replace(b",diagnosis", b"")
                                           .replace(b",malignant", b"").replace(b",benign", b"")),
                "deidentification": "Safe Harbor"}
    elif data in ("outcome-row", "outcome-file"):
        row = {"prediction_id": ctx["prediction_id"], "outcome": "1",
               "outcome_date": timezone.now().date().isoformat()}
        data = {"outcomes": [row]} if data == "outcome-row" else {"file": SimpleUploadedFile(
            "outcomes.csv", ("prediction_id,outcome,outcome_date\n"
                             + ",".join(row.values()) + "\n").encode())}
    elif data == "new-dataset":
        data = {"name": "matrix-data", "version": "1", "source": "test",
                "file": SimpleUploadedFile("d.csv", training_csv())}
    if case.api:
        client = APIClient()
        if user is not None and case.data != "credentials":
            client.force_authenticate(user)
        kwargs = {"format": "multipart" if case.multipart else (case.format or "json")}
        if data is None:
            return getattr(client, case.method)(case.path)
        return getattr(client, case.method)(case.path, data, **kwargs)
    client = Client()
    if user is not None:
        client.force_login(user)
    if case.method == "get":
        return client.get(case.path)
    return client.post(case.path, data or {})


def _outcome(response) -> Any:
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith("/login/"):
            return "login"
        errors = [m for m in get_messages(response.wsgi_request) if m.level == constants.ERROR]
        return "deny" if errors else "ok302"
    return response.status_code


@pytest.mark.parametrize("case", CASES, ids=[f"{c.method.upper()} {c.name}" for c in CASES])
def test_the_matrix(case, ctx):
    case = next(c for c in matrix(ctx) if c.name == case.name and c.method == case.method)
    got = {}
    for persona in PERSONAS:
        try:
            with transaction.atomic():
                response = _request(case, persona, ctx)
                got[persona] = _outcome(response)
                # A streamed export holds a server-side cursor opened in this savepoint:
                # read it to the end here, before the rollback drops the cursor under it
                # (closing it afterwards fails and aborts the test's transaction on
                # PostgreSQL). The test client's wrapper closes the exhausted stream with
                # close_old_connections unhooked; calling response.close() directly would
                # fire request_finished with it hooked, and that drops the connection of
                # a transaction in progress.
                if response.streaming:
                    b"".join(response.streaming_content)
                raise _Rollback
        except _Rollback:
            pass
    assert got == case.expected
