"""The dossier's PDF: a Django template over the evidence snapshot, printed by WeasyPrint
as a PDF/A-3b document that carries its machine-readable evidence.

1. The template (``templates/dossier/dossier.html``) reads the snapshot only: no clock,
   no request.
2. WeasyPrint writes it with ``pdf_variant="pdf/a-3b"``: XMP metadata with
   ``pdfaid:part`` 3 and ``pdfaid:conformance`` B beside the title, author, subject and
   dates of the document information, an sRGB output intent (``GTS_PDFA1``), a file
   identifier, and print flags on annotations. ``pdf_tags=True`` adds WeasyPrint's
   structure tree (headings, paragraphs, lists, tables with header cells, figures with
   the SVG's ``<title>`` as alternative text) and ``/Lang``; the running header and
   footer are left out of the tree, as WeasyPrint does for margin boxes under PDF 1.7.
   That is tagging as far as WeasyPrint goes, not a PDF/UA claim.
3. Attachments (``EMBEDDED``), each an associated file of the document (``/AF``) with
   its ``AFRelationship``: ``evidence.json`` (the snapshot: every figure and hash the
   pages state), ``audit-export.json`` (the version's audit events up to the snapshot's
   chain head, the same bytes as the evidence package's file, ``package.
   audit_export_bytes``) and ``model-card.md`` (the card as the snapshot holds it).
4. The finisher gives each embedded file a fixed MIME type (WeasyPrint would ask the
   machine's mime.types for ``.md``) and lists each associated file once (WeasyPrint 70
   adds each to the catalog's ``/AF`` twice, from the name tree and from the file
   specification).

Reproducible: the same snapshot gives the same bytes. The document's and every
attachment's creation and modification dates are the evidence instant, the file
identifier comes from the snapshot's hash, and the audit export is bounded by the
snapshot's chain head (events are append-only), so nothing in the file depends on when
or where it was rendered. Fonts are DejaVu only (fonts-dejavu-core, installed by .ci/run
and the Dockerfile), subset and embedded by WeasyPrint; the stylesheet names no other
family, so nothing falls back to another installed font.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.template.loader import render_to_string

from core.hashing import sha256_json
from registry.models import ModelVersion

from .package import EXPORT, audit_export_bytes, json_bytes, model_card_bytes

TEMPLATE = "dossier/dossier.html"
VARIANT = "pdf/a-3b"
EVIDENCE = "evidence.json"
MODEL_CARD = "model-card.md"

# name -> (MIME type, AFRelationship, description). PDF/A-3 (ISO 19005-3, 6.8): "Data"
# is what a visual presentation is derived from, "Source" the original the content
# comes from.
EMBEDDED = {
    EVIDENCE: ("application/json", "Data",
               "The evidence snapshot this dossier was rendered from: every figure and "
               "hash it states"),
    EXPORT: ("application/json", "Source",
             "The version's audit events up to the dossier's chain head (audit JSON "
             "export)"),
    MODEL_CARD: ("text/markdown", "Source", "The model card as the snapshot holds it"),
}


def evidence_instant(snapshot: dict) -> datetime:
    """The snapshot's evidence instant in UTC, whole seconds (PDF dates have no less)."""
    at = datetime.fromisoformat(snapshot["cover"]["evidence_at"])
    return at.astimezone(UTC).replace(microsecond=0)


def dossier_html(snapshot: dict) -> str:
    at = datetime.fromisoformat(snapshot["cover"]["evidence_at"])
    # WeasyPrint's W3C date parser takes whole seconds.
    pdf_date = at.replace(microsecond=0).isoformat()
    return render_to_string(TEMPLATE, {"s": snapshot, "pdf_date": pdf_date})


def embedded_files(snapshot: dict) -> dict[str, bytes]:
    """The attachments' bytes by name. The audit export is read from the database, bounded
    by the snapshot's chain head, for the version the snapshot's cover names."""
    cover = snapshot["cover"]
    version_id = (ModelVersion.objects.filter(model__name=cover["model"],
                                              number=cover["version"])
                  .values_list("pk", flat=True).get())
    files = {
        EVIDENCE: json_bytes(snapshot),
        EXPORT: audit_export_bytes(version_id=version_id, head_seq=cover["chain_head_seq"],
                                   head_hash=cover["chain_head_hash"]),
        MODEL_CARD: model_card_bytes(snapshot),
    }
    return dict(sorted(files.items()))  # a PDF name tree's keys are in order


def _finish(_document, pdf) -> None:
    """Fixed MIME types for the embedded files; each associated file once in ``/AF``."""
    for obj in pdf.objects:
        if isinstance(obj, dict) and obj.get("Type") == "/Filespec":
            mime = EMBEDDED[obj["UF"].string][0]
            stream = pdf.objects[int(obj["EF"]["F"].split()[0])]
            stream.extra["Subtype"] = "/" + mime.replace("/", "#2f")
    if "AF" in pdf.catalog:
        unique = list(dict.fromkeys(pdf.catalog["AF"]))
        pdf.catalog["AF"].clear()
        pdf.catalog["AF"].extend(unique)


def dossier_pdf(snapshot: dict) -> bytes:
    """The PDF bytes of a snapshot (the same snapshot, the same bytes)."""
    from weasyprint import HTML, Attachment

    at = evidence_instant(snapshot).replace(tzinfo=None)  # WeasyPrint writes it as UTC
    attachments = [
        Attachment(string=data, name=name, description=EMBEDDED[name][2], created=at,
                   modified=at, relationship=EMBEDDED[name][1])
        for name, data in embedded_files(snapshot).items()]
    identifier = sha256_json(snapshot)[:32].encode()
    return HTML(string=dossier_html(snapshot), base_url=None).write_pdf(
        pdf_identifier=identifier, pdf_variant=VARIANT, pdf_tags=True,
        attachments=attachments, finisher=_finish)
