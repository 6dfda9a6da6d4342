"""Shared helpers for the page tests (tests/*/test_pages_*.py): personas' clients,
a registered dataset and version, and readers for what a page shows."""

from __future__ import annotations

import html
import re

from django.core.files.uploadedfile import SimpleUploadedFile

from .artifacts import FEATURES_SMALL, logistic_model, skops_bytes

MODEL = "sepsis-risk"
# Members of the model who may look but not register, edit or submit.
READ_ONLY = ("auditor", "pi", "irb", "clinician", "reviewer")
# Signed in, but with no role on the model: it must look as if it did not exist.
HIDDEN = ("viewer_other", "outsider")
WRITERS = ("owner", "admin")


def model_url(suffix: str = "") -> str:
    return f"/models/{MODEL}/{suffix}"


def version_url(suffix: str = "", number: int = 1) -> str:
    return f"/models/{MODEL}/versions/{number}/{suffix}"


def text(response) -> str:
    return html.unescape(response.content.decode())


def flashes(response) -> list[str]:
    """The flash messages rendered on a page (after following a redirect)."""
    return [html.unescape(re.sub(r"<[^>]+>", "", m)).strip() for m in re.findall(
        r'<li class="msg msg-[a-z]+">(.*?)</li>', response.content.decode(), re.S)]


def field_errors(response, name: str) -> list[str]:
    """Error messages rendered inside the form row of field ``name`` (so: next to it)."""
    page = response.content.decode()
    rows = re.split(r'(?=<div class="field[ "])', page)
    row = next((r for r in rows if f'id="id_{name}"' in r), None)
    assert row is not None, f"no form row for {name}"
    row = row.split("</div>", 1)[0]
    return [html.unescape(e) for e in re.findall(r'<p class="error"[^>]*>(.*?)</p>', row, re.S)]


def assert_404(response) -> None:
    assert response.status_code == 404
    assert "Not found" in text(response)


def assert_refused(response, *, message: str) -> None:
    """Read-only members are sent back with an error message, not shown a 500 or the form."""
    assert response.redirect_chain, "expected a redirect"
    assert response.status_code == 200
    assert any(message in m for m in flashes(response)), flashes(response)


def version_form(dataset, *, data: bytes | None = None, name: str = "model.skops", **fields):
    form = {"artifact": SimpleUploadedFile(name, data or skops_bytes(logistic_model())),
            "dataset": str(dataset.pk), "features": "\n".join(FEATURES_SMALL),
            "confidence_threshold": "0.7", "ood_policy": "review"}
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


def dataset_form(**fields) -> dict:
    form = {"name": "icu-cohort", "version": "2025.1", "source": "ICU registry, site B",
            "inclusion_criteria": "adults", "date_start": "2021-01-01", "date_end": "2024-06-30",
            "protocol_number": "IRB-2025-007", "deidentification": "Expert determination"}
    form.update(fields)
    return form


def ragged_csv() -> bytes:
    return b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n"
