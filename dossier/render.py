"""The dossier's PDF: a Django template over the evidence snapshot, printed by WeasyPrint.

Reproducible: the same snapshot gives the same bytes. The template reads the snapshot
only (no clock, no request); the PDF's creation and modification dates are the evidence
instant (``dcterms.created``/``dcterms.modified``) and its file identifier is derived
from the snapshot's hash (``pdf_identifier``), so nothing in the file depends on when
or where it was rendered. Fonts are DejaVu (fonts-dejavu-core, installed by .ci/run and
the Dockerfile), subset and embedded by WeasyPrint.
"""

from __future__ import annotations

from datetime import datetime

from django.template.loader import render_to_string

from core.hashing import sha256_json

TEMPLATE = "dossier/dossier.html"


def dossier_html(snapshot: dict) -> str:
    at = datetime.fromisoformat(snapshot["cover"]["evidence_at"])
    # WeasyPrint's W3C date parser takes whole seconds.
    pdf_date = at.replace(microsecond=0).isoformat()
    return render_to_string(TEMPLATE, {"s": snapshot, "pdf_date": pdf_date})


def dossier_pdf(snapshot: dict) -> bytes:
    """The PDF bytes of a snapshot (the same snapshot, the same bytes)."""
    from weasyprint import HTML

    identifier = sha256_json(snapshot)[:32].encode()
    return HTML(string=dossier_html(snapshot), base_url=None).write_pdf(
        pdf_identifier=identifier)
