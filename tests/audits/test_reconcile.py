"""verify_audit reconciles the rows the portal shows with the chain (issue 15 §3).

Each test edits a row the way someone with database access could (around Django
and the append-only triggers), leaves the audit trail untouched, and expects
the check to name the row. Before this, verify_audit passed every one of them:
the chain itself was intact.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audits.chain import verify_chain
from audits.reconcile import reconcile
from audits.triggers import run as run_triggers
from registry.models import ModelVersion, Signature
from registry.roles import ModelRole
from registry.services import access_grant

from ..conftest import api_as
from ..inference.helpers import released_version
from ..personas import make_user
from ..registry.helpers import register_dataset, register_version


def _behind_the_apps_back(sql: str, params=(), *, table: str) -> None:
    run_triggers(connection, install=False, table=table)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        run_triggers(connection, install=True, table=table)


def _verify() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue() + str(exc)
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def production(personas):
    return released_version(personas)


def test_an_untouched_release_reconciles(production, personas):
    draft = register_version(personas.owner, personas.model, production.dataset)
    code, out, err = _verify()
    assert code == 0, err
    rows = reconcile()
    assert rows.ok and rows.checked == {"signatures": 2, "versions": 2}
    assert "2 signatures, 2 versions reconciled with their events" in out
    assert draft.state == "draft"


def test_a_forged_printed_name_is_named(production):
    sig = production.signatures.get(meaning="irb_approval")
    _behind_the_apps_back("UPDATE registry_signature SET printed_name = %s WHERE id = %s",
                          ("Dr. Nobody", sig.pk), table="registry_signature")
    assert verify_chain().ok  # the trail itself was not touched
    code, _out, err = _verify()
    assert code == 1
    assert f"signature {sig.pk} (irb_approval on {production})" in err
    assert "printed name 'Dr. Nobody' but the event recorded" in err


@pytest.mark.parametrize("column, value, words", [
    ("decision", "reject", "decision 'reject'"),
    ("content_hash", "0" * 64, "content hash '000"),
    ("role", "viewer", "role 'viewer'"),
    ("signed_at", "2020-01-01 00:00:00", "signed at 2020-01-01"),
])
def test_any_edited_signature_field_is_named(production, column, value, words):
    sig = production.signatures.get(meaning="pi_approval")
    _behind_the_apps_back(f"UPDATE registry_signature SET {column} = %s WHERE id = %s",  # noqa: S608
                          (value, sig.pk), table="registry_signature")
    rows = reconcile()
    assert not rows.ok
    [finding] = rows.findings
    assert finding.object_type == "registry.signature" and finding.object_id == str(sig.pk)
    assert words in finding.problem and finding.event_seq is not None


def test_a_signature_moved_to_another_signer_is_named(production, personas):
    sig = production.signatures.get(meaning="pi_approval")
    _behind_the_apps_back("UPDATE registry_signature SET signer_id = %s WHERE id = %s",
                          (personas.admin.pk, sig.pk), table="registry_signature")
    [finding] = reconcile().findings
    assert "signed by admin but the event recorded 'pi'" in finding.problem


def test_a_signature_with_no_event_and_an_event_with_no_signature(production, personas):
    sig = production.signatures.get(meaning="pi_approval")
    # Re-meaning the row: its own event now has no row, and the row has no event.
    _behind_the_apps_back("UPDATE registry_signature SET meaning = 'dpo_approval' WHERE id = %s",
                          (sig.pk,), table="registry_signature")
    problems = sorted(f.problem for f in reconcile().findings)
    assert problems[0] == "no sign-off event records it"
    assert "records 'pi_approval' by pi, but no signature row holds it" in problems[1]
    _behind_the_apps_back("DELETE FROM registry_signature WHERE id = %s", (sig.pk,),
                          table="registry_signature")
    [finding] = reconcile().findings
    assert finding.object_type == "registry.modelversion"
    assert "no signature row holds it" in finding.problem


def test_a_draft_moved_into_production_behind_the_apps_back(personas, dataset):
    draft = register_version(personas.owner, personas.model, dataset)
    ModelVersion.objects.filter(pk=draft.pk).update(state="production")
    code, _out, err = _verify()
    assert code == 1
    assert f"{draft} (version id {draft.pk}): is production but its last transition" in err
    assert "left it draft" in err
    # …and that it was never submitted is said too.
    problems = [f.problem for f in reconcile().findings]
    assert any("no submit event records the content reviewers signed" in p for p in problems)


def test_a_production_version_rolled_back_in_the_database_is_named(production):
    ModelVersion.objects.filter(pk=production.pk).update(state="approved")
    [finding] = reconcile().findings
    assert finding.object_id == str(production.pk)
    assert "is approved but its last transition" in finding.problem
    assert "(release.version_promoted), left it production" in finding.problem


def test_a_reviewed_field_edited_after_review_is_named(production):
    ModelVersion.objects.filter(pk=production.pk).update(confidence_threshold=0.01)
    [finding] = reconcile().findings
    assert "no longer hash to" in finding.problem
    ModelVersion.objects.filter(pk=production.pk).update(content_hash="f" * 64)
    [finding] = reconcile().findings
    assert f"content hash {'f' * 64} but the submit event" in finding.problem


def test_the_json_output_and_the_api_carry_the_reconciliation(production, personas):
    ModelVersion.objects.filter(pk=production.pk).update(state="retired")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify_audit", "--json", stdout=out, stderr=io.StringIO())
    data = json.loads(out.getvalue())
    assert data["ok"] is True  # the chain
    assert data["reconciliation"]["ok"] is False
    assert data["reconciliation"]["findings"][0]["object_id"] == str(production.pk)
    body = api_as(personas.auditor).get("/api/v1/audit/verify/").json()
    assert body["reconciliation"]["findings_total"] == 1


def test_a_model_auditor_sees_only_their_models_rows(production, personas):
    other_owner = personas.other_model.created_by
    dataset = register_dataset(other_owner, name="other-cohort")
    stray = register_version(other_owner, personas.other_model, dataset)
    ModelVersion.objects.filter(pk=stray.pk).update(state="production")
    scoped_auditor = make_user("scoped_auditor")
    access_grant(user=personas.owner, model=personas.model, grantee=scoped_auditor,
                 role=ModelRole.AUDITOR)
    body = api_as(scoped_auditor).get("/api/v1/audit/verify/").json()
    assert body["reconciliation"] == {"ok": True, "checked": {"signatures": 2, "versions": 1},
                                      "findings": [], "findings_total": 0}
    whole = api_as(personas.auditor).get("/api/v1/audit/verify/").json()["reconciliation"]
    assert {f["object_id"] for f in whole["findings"]} == {str(stray.pk)}


def test_the_integrity_page_names_the_row(production, client_as, personas):
    sig = production.signatures.get(meaning="irb_approval")
    _behind_the_apps_back("UPDATE registry_signature SET printed_name = 'Mallory' WHERE id = %s",
                          (sig.pk,), table="registry_signature")
    page = client_as("auditor").get("/audit/verify/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "1 row disagrees with the audit trail" in html
    assert f"signature {sig.pk} (irb_approval on {production})" in html
    assert "printed name &#x27;Mallory&#x27;" in html


def test_the_scheduled_check_records_the_reconciliation(production):
    from audits.models import Action, AuditEvent
    from audits.tasks import verify_audit_chain

    ModelVersion.objects.filter(pk=production.pk).update(state="retired")
    verify_audit_chain()
    event = AuditEvent.objects.filter(action=Action.AUDIT_VERIFIED).latest("seq")
    assert event.details["reconciliation"]["ok"] is False
    assert event.details["reconciliation"]["findings"][0]["object_id"] == str(production.pk)
    assert Signature.objects.count() == 2
