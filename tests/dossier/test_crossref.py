"""The dossier's regulatory cross-reference (appendix 7): every requirement listed, each
status computed from the evidence snapshot, never "answered" where the evidence is gone."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from dossier import render
from dossier.crossref import FRAMEWORKS, REQUIREMENTS, crossref, crossref_summary
from dossier.evidence import evidence_snapshot, json_ready

from ..audits.helpers import raw_sql
from ..registry.helpers import register_dataset, register_version
from .helpers import pdf_text, scripted_history, version_missing_irb

pytestmark = pytest.mark.django_db

COUNTS = {"cfr11": 12, "euaia": 32, "gmlp": 10, "tripod": 52}


def _snapshot(version) -> dict:
    return json_ready(evidence_snapshot(version=version, at=timezone.now()))


def _rows(snapshot: dict) -> dict[str, dict]:
    return {r["ref"]: r for f in snapshot["crossref"]["frameworks"] for r in f["rows"]}


def _checkpoint() -> None:
    from audits.checkpoints import audit_checkpoint_write

    audit_checkpoint_write()


def _squashed(text: str) -> str:
    return "".join(text.split())


# -- the requirements -------------------------------------------------------------------------

def test_every_framework_lists_its_requirements():
    assert Counter(r.framework for r in REQUIREMENTS) == COUNTS
    assert [f.key for f in FRAMEWORKS] == list(COUNTS)
    refs = [r.ref for r in REQUIREMENTS]
    assert len(refs) == len(set(refs))
    tripod = [r.ref.removeprefix("TRIPOD+AI ") for r in REQUIREMENTS if r.framework == "tripod"]
    assert tripod[:5] == ["1", "2", "3a", "3b", "3c"] and tripod[-3:] == ["27a", "27b", "27c"]
    assert {f"Annex IV {n}" for n in range(3, 10)} <= set(refs)
    assert {f"EU AI Act Art. 14(4)({x})" for x in "abcde"} <= set(refs)
    assert {f"GMLP {n}" for n in range(1, 11)} <= set(refs)
    assert all(r.requirement.strip() for r in REQUIREMENTS)


def test_an_empty_or_malformed_snapshot_is_all_gap_never_an_error():
    for snapshot in ({}, None, {"questions": "x", "signoffs": [1], "cover": []}):
        result = crossref(snapshot)
        assert result["counts"] == {"answered": 0, "partly": 0, "gap": sum(COUNTS.values())}
        assert all(r["why"] for f in result["frameworks"] for r in f["rows"])


def test_outside_attest_is_gap_saying_where_it_belongs(personas):
    rows = _rows(_snapshot(scripted_history(personas, predictions=3)))
    for ref in ("Annex IV 7", "Annex IV 8", "Annex IV 5", "TRIPOD+AI 18a", "TRIPOD+AI 1",
                "GMLP 5"):
        assert rows[ref]["status"] == "gap", ref
        assert rows[ref]["why"].startswith("Not recorded in Attest:"), ref


# -- what the evidence holds ------------------------------------------------------------------

ANSWERED_AFTER_HISTORY = (
    "21 CFR 11.10(e) audit trail", "21 CFR 11.10(e) earlier records",
    "21 CFR 11.10(e) review and copying", "21 CFR 11.50(a)(1)", "21 CFR 11.50(a)(2)",
    "21 CFR 11.50(a)(3)", "21 CFR 11.50(b)", "21 CFR 11.70", "EU AI Act Art. 12(1)",
    "EU AI Act Art. 12(2)(c)", "EU AI Act Art. 14(4)(d)", "EU AI Act Art. 14(4)(e)",
    "Annex IV 6", "TRIPOD+AI 5b", "TRIPOD+AI 12g", "TRIPOD+AI 27a",
)


def test_a_scripted_history_answers_what_its_evidence_holds(personas):
    version = scripted_history(personas)
    _checkpoint()
    snapshot = _snapshot(version)
    rows = _rows(snapshot)
    for ref in ANSWERED_AFTER_HISTORY:
        assert rows[ref]["status"] == "answered", (ref, rows[ref]["why"])
    assert "the latest signed checkpoint covers event" in rows[
        "21 CFR 11.10(e) audit trail"]["why"].lower()
    names = {r["printed_name"] for r in snapshot["signoffs"] if r["printed_name"]}
    assert all(n in rows["21 CFR 11.50(a)(1)"]["why"] for n in names)
    assert rows["21 CFR 11.50(a)(1)"]["sections"] == ["§4 Sign-off manifest"]
    # the IRB approved: ethics is partly (consent is not recorded), never a gap
    assert rows["TRIPOD+AI 17"]["status"] == "partly"
    assert "informed consent" in rows["TRIPOD+AI 17"]["why"]
    # what Attest never records stays partly or gap, whatever the history
    assert rows["21 CFR 11.200(a)(1)"]["status"] == "partly"
    assert rows["21 CFR 11.10(e) retention"]["status"] == "partly"
    # no monitoring run in this history: the rows that need one say so
    assert rows["EU AI Act Art. 12(2)(b)"]["status"] == "gap"
    assert rows["GMLP 10"]["status"] == "partly"
    for f in snapshot["crossref"]["frameworks"]:
        assert sum(f["counts"].values()) == COUNTS[f["key"]]
        assert f["counts"] == {s: sum(r["status"] == s for r in f["rows"])
                               for s in ("answered", "partly", "gap")}


def test_a_monitoring_run_answers_post_market_logging(personas):
    from ..monitoring.helpers import count_and_run

    version = scripted_history(personas, predictions=4)
    count_and_run(version)
    rows = _rows(_snapshot(version))
    assert rows["EU AI Act Art. 12(2)(b)"]["status"] == "answered"
    assert rows["GMLP 10"]["status"] == "answered"
    assert rows["Annex IV 9"]["status"] == "partly"
    assert "post-market monitoring plan" in rows["Annex IV 9"]["why"]


# -- evidence removed: never answered -----------------------------------------------------

@pytest.mark.parametrize("irb_decision", ["reject", None])
def test_without_the_irb_signoff_ethics_is_a_gap(personas, irb_decision):
    rows = _rows(_snapshot(version_missing_irb(personas, irb_decision=irb_decision)))
    ethics = rows["TRIPOD+AI 17"]
    assert ethics["status"] == "gap"
    assert f"irb_approval: {irb_decision or 'pending'}" in ethics["why"]


def test_without_a_runbook_stop_and_retraining_rows_are_not_answered(personas):
    dataset = register_dataset(personas.owner)
    version = register_version(personas.owner, personas.model, dataset, runbook="")
    rows = _rows(_snapshot(version))
    assert rows["EU AI Act Art. 14(4)(e)"]["status"] == "gap"
    assert rows["Annex IV 2(f)"]["status"] == "gap"
    assert "The version has no runbook." in rows["Annex IV 2(f)"]["why"]
    assert rows["GMLP 10"]["status"] == "gap"


def test_without_a_signed_checkpoint_the_audit_trail_is_partly(personas):
    version = scripted_history(personas, predictions=3)
    snapshot = _snapshot(version)
    assert snapshot["cover"]["checkpoint"] is None
    trail = _rows(snapshot)["21 CFR 11.10(e) audit trail"]
    assert trail["status"] == "partly" and "No signed checkpoint" in trail["why"]


def test_a_broken_chain_turns_the_trail_rows_to_gap(personas):
    version = scripted_history(personas, predictions=3)
    _checkpoint()
    cast = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    raw_sql(f"UPDATE audits_auditevent SET details = {cast} WHERE seq = 2",  # noqa: S608
            ['{"rewritten": true}'])
    snapshot = _snapshot(version)
    assert snapshot["questions"][3]["evidence"]["audit_chain"]["ok"] is False
    rows = _rows(snapshot)
    for ref in ("21 CFR 11.10(e) audit trail", "21 CFR 11.10(e) earlier records",
                "21 CFR 11.10(e) retention", "21 CFR 11.50(b)", "EU AI Act Art. 12(1)",
                "GMLP 2"):
        assert rows[ref]["status"] == "gap", (ref, rows[ref]["why"])
        assert "does not verify" in rows[ref]["why"], ref
    assert rows["21 CFR 11.70"]["status"] == "partly"


def test_the_model_card_fields_are_gap_while_unread():
    snapshot = {"model_card": "# Card"}  # a snapshot taken before the fields were read
    rows = {r["ref"]: r for f in crossref(snapshot)["frameworks"] for r in f["rows"]}
    assert rows["GMLP 9"]["status"] == "gap"
    assert "The model card's fields were not read" in rows["GMLP 9"]["why"]
    fields = [{"key": k, "label": k, "status": "answered", "text": "x"}
              for k in ("intended_use", "out_of_scope", "caveats_recommendations",
                        "key_metrics")]
    rows = {r["ref"]: r for f in crossref({**snapshot, "model_card_fields": fields})[
        "frameworks"] for r in f["rows"]}
    assert rows["GMLP 9"]["status"] == "answered"
    fields[0]["status"] = "gap"
    rows = {r["ref"]: r for f in crossref({**snapshot, "model_card_fields": fields})[
        "frameworks"] for r in f["rows"]}
    assert rows["GMLP 9"]["status"] == "partly"
    assert "does not state its intended_use" in rows["GMLP 9"]["why"]


# -- the PDF, reproducibility and the page -------------------------------------------------

def test_the_pdf_holds_the_appendix_with_its_statuses(personas):
    version = scripted_history(personas, predictions=3)
    snapshot = _snapshot(version)
    text = pdf_text(render.dossier_pdf(snapshot))
    squashed = _squashed(text)
    assert "7. Appendix — regulatory cross-reference" in text
    for f in snapshot["crossref"]["frameworks"]:
        assert _squashed(f["title"]) in squashed
        c = f["counts"]
        assert _squashed(f"{c['answered']} answered · {c['partly']} partly · {c['gap']} gap") \
            in squashed, f["key"]
    assert _squashed("Regulation (EU) 2024/1689") in squashed
    assert _squashed("BMJ 2024;385:e078378") in squashed
    assert _squashed("21 CFR 11.10(e) audit trail") in squashed
    assert "TRIPOD+AI 27c" in text and "Annex IV 2(g)" in text and "GMLP 10" in text
    trail = _rows(snapshot)["21 CFR 11.10(e) audit trail"]
    assert _squashed(trail["why"]) in squashed


def test_the_same_snapshot_gives_the_same_crossref(personas):
    version = scripted_history(personas, predictions=3)
    snapshot = _snapshot(version)
    stored = snapshot["crossref"]
    without = {k: v for k, v in copy.deepcopy(snapshot).items() if k != "crossref"}
    assert crossref(without) == stored
    assert crossref(json_ready(without)) == stored
    assert json_ready(stored) == stored  # JSON types only: stored as computed


def test_the_dossier_page_shows_the_appendix_counts(
        personas, client_as, django_capture_on_commit_callbacks):
    from dossier.models import Dossier
    from dossier.services import dossier_request

    version = scripted_history(personas, predictions=3)
    with django_capture_on_commit_callbacks(execute=True):
        dossier = dossier_request(user=personas.owner, version=version)
    dossier = Dossier.objects.get(pk=dossier.pk)
    html = client_as("auditor").get(f"/dossiers/{dossier.public_id}/").content.decode()
    assert "Regulatory cross-reference (appendix 7" in html
    for f in crossref_summary(dossier.snapshot):
        c = f["counts"]
        assert f"{c['answered']} answered, {c['partly']} partly, {c['gap']} gap" in html
    # a dossier stored before the appendix existed: no counts, no error
    Dossier.objects.filter(pk=dossier.pk).update(snapshot={
        k: v for k, v in dossier.snapshot.items() if k != "crossref"})
    html = client_as("auditor").get(f"/dossiers/{dossier.public_id}/").content.decode()
    assert "Regulatory cross-reference (appendix 7" not in html
