"""The audit-verify page per persona."""

from __future__ import annotations

import pytest

from audits.models import AuditEvent

from ..pages import (
    HIDDEN,
    assert_refused,
    text,
)

pytestmark = pytest.mark.django_db


# -- audit verify -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ("admin", "auditor", "owner", "pi", "irb"))
def test_it_verifies_the_audit_chain_for_those_with_view_audit(client_as, version, name):
    response = client_as(name).get("/audit/verify/")
    assert response.status_code == 200
    body = text(response)
    assert "The hash chain is intact" in body
    checked = AuditEvent.objects.count()
    assert f"{checked} events checked" in body


@pytest.mark.parametrize("name", ("clinician", "reviewer") + HIDDEN)
def test_it_refuses_the_audit_page_without_view_audit(client_as, name):
    response = client_as(name).get("/audit/verify/", follow=True)
    assert_refused(response, message="needs the view_audit permission")
    assert response.redirect_chain[-1][0] == "/"
