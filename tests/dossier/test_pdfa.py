"""The dossier PDF is a PDF/A-3b document carrying its evidence as attachments.

veraPDF (the reference PDF/A validator) is not available here, so this does not prove
conformance. It checks, with pypdf, the parts of ISO 19005-3 the dossier depends on and
that a change of ours could break: the XMP identification (``pdfaid:part`` 3,
``pdfaid:conformance`` B) and that the XMP agrees with the document information (title,
author, subject, creator, dates); an sRGB output intent; a file identifier; every font
embedded (a ``FontFile``/``FontFile2``/``FontFile3`` in each descriptor) and DejaVu; the
attachments as associated files (``/AF``, ``AFRelationship``, MIME subtype, dates) whose
bytes are the snapshot, the evidence package's audit export and the model card; no
JavaScript, no encryption; the structure tree WeasyPrint tags. The layout checks (no box
past the right margin, no heading broken after its number) read WeasyPrint's layout and
the PDF's text.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime

import pytest
from django.utils import timezone
from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

from audits.chain import chain_head
from dossier import render
from dossier.evidence import evidence_snapshot, json_ready
from dossier.models import Dossier, DossierStatus
from dossier.package import EXPORT, audit_export_bytes, json_bytes
from dossier.services import dossier_build, dossier_request

from ..conftest import api_as
from .helpers import CARD, pdf_text, scripted_history

pytestmark = pytest.mark.django_db

INSTANT = "2026-03-04T05:06:07.891011+00:00"  # microseconds: the PDF keeps whole seconds


@pytest.fixture
def version(personas):
    return scripted_history(personas, predictions=3)


@pytest.fixture
def snapshot(version) -> dict:
    snap = json_ready(evidence_snapshot(version=version, at=timezone.now()))
    snap["cover"]["evidence_at"] = INSTANT
    return snap


def _reader(pdf: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(pdf))


def _objects(reader: PdfReader):
    """Every dictionary reachable from the trailer (streams' dictionaries included), once."""
    seen: set[int] = set()
    stack = [reader.trailer]
    while stack:
        obj = stack.pop()
        if isinstance(obj, IndirectObject):
            if obj.idnum in seen:
                continue
            seen.add(obj.idnum)
            obj = obj.get_object()
        if isinstance(obj, DictionaryObject):
            yield obj
            stack.extend(v for k, v in obj.items() if k not in ("/Parent", "/P"))
        elif isinstance(obj, ArrayObject):
            stack.extend(obj)


def test_it_is_pdf_a_3b_with_the_dossiers_metadata_fonts_and_output_intent(personas,
                                                                         snapshot):
    reader = _reader(render.dossier_pdf(snapshot))
    xmp = reader.xmp_metadata
    assert (xmp.pdfaid_part, xmp.pdfaid_conformance) == ("3", "B")
    assert reader.pdf_header == "%PDF-1.7"
    # the XMP says what the document information says (ISO 19005-3, 6.6.2.3.1)
    info = reader.metadata
    title = f"Compliance dossier: {personas.model.name} v{snapshot['cover']['version']}"
    assert info.title == title and xmp.dc_title == {"x-default": title}
    assert xmp.dc_creator == [info.author] and xmp.xmp_creator_tool == info.creator
    assert xmp.dc_description == {"x-default": info.subject}
    assert snapshot["cover"]["content_hash"] in info.subject
    instant = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert info.creation_date == info.modification_date == instant
    assert xmp.xmp_create_date == xmp.xmp_modify_date == instant.replace(tzinfo=None)
    # an sRGB output intent for PDF/A, with its ICC profile
    [intent] = reader.trailer["/Root"]["/OutputIntents"]
    intent = intent.get_object()
    assert intent["/S"] == "/GTS_PDFA1" and "sRGB" in intent["/OutputConditionIdentifier"]
    assert intent["/DestOutputProfile"].get_object()["/N"] == 3
    assert len(reader.trailer["/ID"]) == 2
    # every font embedded, and only DejaVu (the fonts the set-up installs)
    fonts = [o for o in _objects(reader) if o.get("/Type") == "/Font"]
    descriptors = [o for o in _objects(reader) if o.get("/Type") == "/FontDescriptor"]
    assert fonts and descriptors
    assert all("DejaVu" in f["/BaseFont"] for f in fonts), [f["/BaseFont"] for f in fonts]
    for font in fonts:  # a composite font's descriptor is on its descendant
        described = font["/DescendantFonts"][0].get_object() if font["/Subtype"] == "/Type0" \
            else font
        assert "/FontDescriptor" in described, font
    for descriptor in descriptors:
        assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor), descriptor
    names = {d["/FontName"].split("+", 1)[1] for d in descriptors}
    assert {"DejaVu-Sans", "DejaVu-Sans-Bold", "DejaVu-Sans-Mono"} <= names
    # nothing PDF/A forbids: no encryption, no JavaScript, no actions run on opening
    assert not reader.is_encrypted and "/Encrypt" not in reader.trailer
    catalog = reader.trailer["/Root"]
    assert "/OpenAction" not in catalog and "/AA" not in catalog
    assert "/JavaScript" not in catalog.get("/Names", {})
    for obj in _objects(reader):
        assert "/JS" not in obj and obj.get("/S") not in ("/JavaScript", "/Launch"), obj


def test_it_is_tagged_as_far_as_weasyprint_tags(snapshot):
    reader = _reader(render.dossier_pdf(snapshot))
    catalog = reader.trailer["/Root"]
    assert bool(catalog["/MarkInfo"]["/Marked"]) is True
    assert catalog["/Lang"] == "en"
    root = catalog["/StructTreeRoot"].get_object()
    kinds = {o.get("/S") for o in _objects(reader) if o.get("/Type") == "/StructElem"}
    assert {"/Document", "/H1", "/H2", "/Table", "/TH", "/TD", "/L", "/LI"} <= kinds
    assert root["/K"][0].get_object()["/S"] == "/Document"


def test_it_embeds_the_evidence_and_the_packages_audit_export_and_model_card(personas,
                                                                            version):
    dossier = dossier_request(user=personas.owner, version=version)
    assert dossier_build(dossier_id=dossier.pk) == DossierStatus.COMPLETED
    dossier = Dossier.objects.get(pk=dossier.pk)
    response = api_as(personas.auditor).get(f"/api/v1/dossiers/{dossier.public_id}/evidence/")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        package = {name: archive.read(name) for name in archive.namelist()}
    reader = _reader(package["dossier.pdf"])
    embedded = {f.name: f for f in reader.attachment_list}
    assert list(embedded) == ["audit-export.json", "evidence.json", "model-card.md"]
    assert embedded["evidence.json"].content == json_bytes(dossier.snapshot)
    assert json.loads(embedded["evidence.json"].content) == dossier.snapshot
    assert embedded[EXPORT].content == package[EXPORT]
    export = json.loads(package[EXPORT])
    assert export["chain_head"] == {"seq": dossier.chain_head_seq,
                                    "hash": dossier.chain_head_hash}
    assert export["events"] and all(e["version_id"] == version.pk for e in export["events"])
    assert embedded["model-card.md"].content == package["model-card.md"] == CARD.encode()
    # associated files of the document (PDF/A-3), each listed once, with what they are
    catalog = reader.trailer["/Root"]
    af = [ref.get_object() for ref in catalog["/AF"]]
    assert sorted(f["/UF"] for f in af) == sorted(embedded)
    relationship = {f.name: f.associated_file_relationship for f in embedded.values()}
    assert relationship == {"evidence.json": "/Data", EXPORT: "/Source",
                            "model-card.md": "/Source"}
    assert {f.name: f.subtype for f in embedded.values()} == {
        "evidence.json": "/application/json", EXPORT: "/application/json",
        "model-card.md": "/text/markdown"}
    at = dossier.evidence_at.astimezone(UTC).replace(microsecond=0)
    for f in embedded.values():
        assert f.description
        assert f.creation_date == f.modification_date == at


def test_the_same_snapshot_gives_the_same_bytes_however_the_trail_grows(personas, version,
                                                                        snapshot):
    first = render.dossier_pdf(snapshot)
    # events recorded after the snapshot, for the same version, are not in its export
    dossier_request(user=personas.owner, version=version)
    head_seq, head_hash = chain_head()
    assert head_seq > snapshot["cover"]["chain_head_seq"]
    live = audit_export_bytes(version_id=version.pk, head_seq=head_seq, head_hash=head_hash)
    embedded = {f.name: f.content for f in _reader(first).attachment_list}
    assert json.loads(live)["events"][-1]["action"] == "dossier.requested"
    assert len(json.loads(embedded[EXPORT])["events"]) < len(json.loads(live)["events"])
    second = render.dossier_pdf(json_ready(snapshot))
    assert second == first
    # ... while a different snapshot is a different evidence.json
    other = {**snapshot, "runbook": snapshot["runbook"] + "\nOne more line.\n"}
    changed = {f.name: f.content for f in _reader(render.dossier_pdf(other)).attachment_list}
    assert changed["evidence.json"] != embedded["evidence.json"]
    assert changed[EXPORT] == embedded[EXPORT]


def test_nothing_runs_past_the_right_margin_and_no_heading_breaks_after_its_number(snapshot):
    from weasyprint import HTML

    document = HTML(string=render.dossier_html(snapshot), base_url=None).render()
    overflowing = []
    for number, page in enumerate(document.pages, start=1):
        box = page._page_box
        right = box.margin_left + box.width + 0.5  # the page's content edge, in CSS px

        def walk(b, number=number, right=right):
            edge = getattr(b, "position_x", 0) + b.margin_width() if hasattr(
                b, "margin_width") else 0
            if type(b).__name__ in ("TableBox", "LineBox", "BlockBox") and edge > right:
                overflowing.append((number, type(b).__name__, round(edge - right, 1)))
            for child in getattr(b, "children", ()):
                walk(child)

        for child in box.children:
            if type(child).__name__ != "MarginBox":
                walk(child)
    assert not overflowing, overflowing
    lines = pdf_text(render.dossier_pdf(snapshot)).splitlines()
    assert not [line for line in lines if line.strip() in {"1.", "2.", "3.", "4.", "5."}]
