"""A scripted history for dossier tests: a released version with predictions, reviews
(one override) and a rollback, through the product's own services."""

from __future__ import annotations

import hashlib
import io

from django.utils import timezone
from pypdf import PdfReader

from dossier.models import Dossier, DossierStatus
from inference.models import ReviewItem
from inference.services import prediction_create, review_decide
from registry import release
from registry.models import ModelVersion
from registry.services import model_version_submit
from registry.storage import blob_put

from ..inference.helpers import released_version, typical_input
from ..personas import PASSWORD
from ..registry.helpers import register_dataset, register_version

CARD = "# Sepsis risk\n\n## Training data\nThe sepsis-cohort 2024.1 extract of adult ED admissions.\n"
RUNBOOK = ("## Redeploy\nRoll back to the previous version from the model page.\n\n"
           "## Retraining\nRetrain on the newest cohort when monitoring suggests it.\n")


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def scripted_history(personas, *, predictions: int = 6) -> ModelVersion:
    """v1 released, then v2 released (v1 superseded), then a rollback to v1: v1 is in
    production with predictions, an accepted review and an overridden one."""
    dataset = register_dataset(personas.owner)
    v1 = released_version(personas, dataset, confidence_threshold=0.8, model_card=CARD,
                          runbook=RUNBOOK)
    released_version(personas, dataset, confidence_threshold=0.8, model_card=CARD,
                     runbook=RUNBOOK)
    release.model_rollback(user=personas.owner, model=personas.model, to_version=v1.number,
                           reason="v2 under-calls sepsis in the night shift")
    v1.refresh_from_db()
    row = typical_input(v1)
    odd = dict(row)
    odd[v1.input_schema[0]["name"]] = 1e6  # out of range: scored, flagged, sent to review
    for _ in range(predictions - 2):
        prediction_create(user=personas.clinician, model=personas.model, instances=[row])
    for _ in range(2):
        prediction_create(user=personas.clinician, model=personas.model, instances=[odd])
    items = list(ReviewItem.objects.filter(version=v1).select_related("prediction")
                 .order_by("id"))
    assert len(items) >= 2
    review_decide(user=personas.reviewer, item=items[0], decision="accept")
    labels = v1.output_schema.get("labels") or ["benign", "malignant"]
    other = next(x for x in labels if x != items[1].prediction.label)
    review_decide(user=personas.reviewer, item=items[1], decision="override", final_label=other,
                  reason_code="clinical_judgement")
    return v1


def version_missing_irb(personas, *, irb_decision: str | None) -> ModelVersion:
    """A submitted version whose IRB sign-off was rejected (or never given)."""
    dataset = register_dataset(personas.owner)
    version = register_version(personas.owner, personas.model, dataset, model_card=CARD,
                               runbook=RUNBOOK)
    model_version_submit(user=personas.owner, version=version)
    release.signoff_record(user=personas.pi, version=version, meaning="pi_approval",
                           decision="approve", password=PASSWORD)
    if irb_decision:
        release.signoff_record(user=personas.irb, version=version, meaning="irb_approval",
                               decision=irb_decision, password=PASSWORD,
                               comment="consent form does not cover this use")
    version.refresh_from_db()
    return version


def stand_in_dossier(version, user, *, data: bytes = b"%PDF-1.7 review stand-in",
              status: str = DossierStatus.COMPLETED, content_hash: str | None = None) -> Dossier:
    """A completed dossier row with stored bytes, without rendering a PDF (fast)."""
    sha = hashlib.sha256(data).hexdigest()
    key, _ = blob_put(io.BytesIO(data), sha)
    return Dossier.objects.create(
        version=version, status=status, requested_by=user, progress_done=3,
        sha256=sha if status == DossierStatus.COMPLETED else "",
        storage_key=key if status == DossierStatus.COMPLETED else "", size=len(data),
        snapshot={"cover": {"content_hash": content_hash or version.content_hash}},
        evidence_at=timezone.now())
