"""`attest dossier sign ID`: the IRB signs the dossier it read from the command line
(irb_dossier_review), re-authenticated by password, bound to the dossier's sha256 and the
version's content hash; with --read the local file must be that dossier before anything
is sent."""

from __future__ import annotations

import pytest
from attest_client.errors import (
    EXIT_CHECK_FAILED,
    EXIT_DENIED,
    EXIT_OK,
    EXIT_REFUSED,
)

from audits.models import Action, AuditEvent
from dossier.models import Dossier, DossierStatus
from registry.models import Signature

from ..dossier.helpers import scripted_history, stand_in_dossier
from ..personas import PASSWORD

pytestmark = pytest.mark.django_db

MEANING = "irb_dossier_review"


@pytest.fixture
def dossier(personas, tmp_path):
    """A completed dossier and the file the IRB member downloaded and read.

    The stored bytes stand in for a rendered PDF (rendering is tested in tests/dossier;
    a build inside the live server's in-memory SQLite would lock its tables): the client
    only compares the local file's sha256 with the dossier's."""
    version = scripted_history(personas, predictions=3)
    data = b"%PDF-1.7 the dossier the IRB read"
    d = stand_in_dossier(version, personas.owner, data=data)
    d = Dossier.objects.select_related("version").get(pk=d.pk)
    pdf = tmp_path / "read.pdf"
    pdf.write_bytes(data)
    return d, pdf


def _sign(attest, user, d, *args, password=PASSWORD):
    return attest("dossier", "sign", str(d.public_id), *args, "--password-stdin",
                  stdin=password + "\n", as_user=user)


def test_the_irb_signs_the_file_it_read(attest, logged_in, dossier):
    d, pdf = dossier
    logged_in("irb")
    result = _sign(attest, "irb", d, "--decision", "approve", "--comment", "read in full",
                   "--read", str(pdf))
    assert result.status == EXIT_OK, result.err
    assert d.sha256[:16] in result.out and "content hash" in result.out
    assert "does not approve the release" in result.err  # the statement before signing
    signature = Signature.objects.get(meaning=MEANING)
    assert signature.signer.username == "irb" and signature.decision == "approve"
    assert signature.document_sha256 == d.sha256
    assert signature.document_ref == str(d.public_id)
    assert signature.content_hash == d.version.content_hash
    event = AuditEvent.objects.filter(action=Action.SIGNOFF_RECORDED).latest("seq")
    assert event.after["document_sha256"] == d.sha256


def test_json_output_lists_the_signature(attest, logged_in, dossier):
    d, _pdf = dossier
    logged_in("irb")
    body = _sign(attest, "irb", d, "--decision", "approve", "--json").json
    assert body["sha256"] == d.sha256
    assert [s["meaning"] for s in body["signatures"]] == [MEANING]


def test_a_file_that_is_not_the_dossier_is_refused_before_anything_is_sent(
        attest, logged_in, dossier, tmp_path):
    d, pdf = dossier
    logged_in("irb")
    other = tmp_path / "other.pdf"
    other.write_bytes(pdf.read_bytes() + b"\n% an edited copy")
    result = _sign(attest, "irb", d, "--decision", "approve", "--read", str(other),
                   password="not even checked")
    assert result.status == EXIT_CHECK_FAILED
    assert "is not dossier" in result.error_line() and "nothing was signed" in result.err
    assert not Signature.objects.filter(meaning=MEANING).exists()
    assert not AuditEvent.objects.filter(action=Action.SIGNOFF_PASSWORD_FAILED).exists()


def test_a_wrong_password_is_refused_and_recorded(attest, logged_in, dossier):
    d, _pdf = dossier
    logged_in("irb")
    result = _sign(attest, "irb", d, "--decision", "approve", password="wrong")
    # the token is good; the server refuses the signature itself (400), as for versions
    assert result.status == EXIT_REFUSED
    result.error_line()
    assert not Signature.objects.filter(meaning=MEANING).exists()
    assert AuditEvent.objects.filter(action=Action.SIGNOFF_PASSWORD_FAILED).exists()


def test_a_rejection_needs_a_comment(attest, logged_in, dossier):
    d, _pdf = dossier
    logged_in("irb")
    result = _sign(attest, "irb", d, "--decision", "reject")
    assert result.status == EXIT_REFUSED
    assert "comment" in result.error_line().lower()
    assert not Signature.objects.filter(meaning=MEANING).exists()


@pytest.mark.parametrize("user", ["auditor", "clinician", "outsider"])
def test_only_the_irb_may_sign(attest, logged_in, dossier, user):
    d, _pdf = dossier
    logged_in(user)
    result = _sign(attest, user, d, "--decision", "approve")
    assert result.status == EXIT_DENIED, result.err
    result.error_line()
    assert not Signature.objects.filter(meaning=MEANING).exists()


def test_a_dossier_not_completed_is_not_signed(attest, logged_in, personas):
    version = scripted_history(personas, predictions=1)
    d = stand_in_dossier(version, personas.owner, status=DossierStatus.FAILED)
    logged_in("irb")
    result = _sign(attest, "irb", d, "--decision", "approve")
    assert result.status == EXIT_CHECK_FAILED
    assert "only a completed dossier" in result.error_line()
