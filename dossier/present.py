"""A dossier as JSON (the API) and for pages."""

from __future__ import annotations

from django.urls import reverse

from .models import Dossier, DossierStatus
from .selectors import dossier_signatures


def dossier_as_dict(dossier: Dossier) -> dict:
    done = dossier.status == DossierStatus.COMPLETED
    links = {"self": reverse("api-dossier", args=[dossier.public_id])}
    if done:
        links["pdf"] = reverse("api-dossier-pdf", args=[dossier.public_id])
        links["evidence"] = reverse("api-dossier-evidence", args=[dossier.public_id])
        links["signoffs"] = reverse("api-dossier-signoffs", args=[dossier.public_id])
    questions = (dossier.snapshot or {}).get("questions") or []
    return {
        "id": str(dossier.public_id),
        "model": dossier.version.model.name, "version": dossier.version.number,
        "status": dossier.status,
        "progress": {"done": dossier.progress_done, "total": dossier.progress_total,
                     "step": dossier.step or None},
        "sha256": dossier.sha256 or None, "size": dossier.size,
        "evidence_at": dossier.evidence_at.isoformat() if dossier.evidence_at else None,
        "chain_head": ({"seq": dossier.chain_head_seq, "hash": dossier.chain_head_hash}
                       if dossier.chain_head_seq is not None else None),
        "gaps": [q["number"] for q in questions if q.get("status") != "answered"],
        "requested_by": dossier.requested_by.get_username() if dossier.requested_by else None,
        "created_at": dossier.created_at.isoformat(),
        "finished_at": dossier.finished_at.isoformat() if dossier.finished_at else None,
        "error": dossier.error or None,
        "links": links,
    }


def dossier_signoffs_as_dict(dossier: Dossier) -> dict:
    return {"id": str(dossier.public_id), "sha256": dossier.sha256 or None,
            "content_hash": dossier.version.content_hash, "status": dossier.status,
            "signatures": dossier_signatures(dossier=dossier)}
