"""Separation of duties: no one releases a model alone (issue 15, section 2).

Each finding reproduced first: the owner granted themselves the approver and IRB
roles, one person holding both signed both meanings, the registrant (not the
submitter) could sign, and the owner could shrink the policy, even to nothing.
"""

from __future__ import annotations

import pytest

from audits.chain import verify_chain
from audits.models import Action, AuditEvent
from core.errors import PermissionDenied
from registry.models import ModelAccessGrant, ModelVersion, Signature

from ..conftest import api_as
from ..personas import PASSWORD, make_user
from .helpers import register_dataset, register_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(personas):
    return register_dataset(personas.owner)


def _api(personas, who):
    return api_as(personas.get(who) if isinstance(who, str) else who)


def _model_url(personas, suffix=""):
    return f"/api/v1/models/{personas.model.name}/{suffix}"


def _version_url(personas, n, suffix=""):
    return _model_url(personas, f"versions/{n}/{suffix}")


def _grant(personas, by, user, role):
    return _api(personas, by).post(_model_url(personas, "access/"), {
        "user": user, "role": role}, format="json")


def _sign(personas, who, n, meaning, decision="approve"):
    return _api(personas, who).post(_version_url(personas, n, "signoffs/"), {
        "meaning": meaning, "decision": decision, "password": PASSWORD,
        "comment": "Reviewed."}, format="json")


def _submit(personas, dataset, *, by="owner", registrant=None) -> ModelVersion:
    version = register_version(registrant or personas.owner, personas.model, dataset)
    response = _api(personas, by).post(_version_url(personas, version.number, "submit/"))
    assert response.status_code == 200, response.json()
    return ModelVersion.objects.get(pk=version.pk)


def _code(response) -> str:
    return response.json()["errors"][0]["code"]


# -- signing roles are the administrators' to grant ----------------------------------------

@pytest.mark.parametrize("role", ["approver", "irb"])
def test_an_owner_cannot_grant_a_signing_role_to_themselves_or_anyone(personas, role):
    for user in ("owner", "clinician"):
        response = _grant(personas, "owner", user, role)
        assert response.status_code == 403, response.json()
        assert "administrators" in response.json()["errors"][0]["message"]
    assert not ModelAccessGrant.objects.filter(model=personas.model, role=role,
                                               user__username__in=["owner", "clinician"]).exists()
    refusals = AuditEvent.objects.filter(action=Action.PERMISSION_DENIED, actor=personas.owner)
    assert refusals.count() == 2
    assert refusals.first().details["capability"] == "manage_signing_roles"


def test_an_owner_cannot_revoke_a_signer_but_still_manages_other_roles(personas):
    revoke = _api(personas, "owner").delete(_model_url(personas, "access/"), {
        "user": "pi", "role": "approver"}, format="json")
    assert revoke.status_code == 403
    assert ModelAccessGrant.objects.filter(user=personas.pi, role="approver").exists()
    assert _grant(personas, "owner", "outsider", "viewer").status_code == 201
    assert _grant(personas, "owner", "outsider", "clinician").status_code == 201


def test_an_administrator_grants_and_revokes_signing_roles_on_the_record(personas):
    colleague = make_user("colleague")
    response = _grant(personas, "admin", colleague.username, "irb")
    assert response.status_code == 201
    event = AuditEvent.objects.filter(action=Action.ACCESS_GRANTED).latest("seq")
    assert event.actor == personas.admin and event.after == {"user": "colleague", "role": "irb"}
    revoke = _api(personas, "admin").delete(_model_url(personas, "access/"), {
        "user": "colleague", "role": "irb"}, format="json")
    assert revoke.status_code == 200
    assert AuditEvent.objects.filter(action=Action.ACCESS_REVOKED, actor=personas.admin).exists()


def test_the_access_page_refuses_an_owner_granting_a_signing_role(client_as, personas):
    response = client_as("owner").post(f"/models/{personas.model.name}/access/",
                                       {"username": "owner", "role": "approver"}, follow=True)
    assert "administrators" in response.content.decode()
    assert not ModelAccessGrant.objects.filter(user=personas.owner, role="approver").exists()
    page = client_as("owner").get(f"/models/{personas.model.name}/access/").content.decode()
    assert "granted by administrators only" in page
    assert 'name="role" value="approver"' not in page  # no revoke button for signing roles


# -- each meaning by a different person; never the registrant or the submitter ----------------

def test_one_person_holding_both_signing_roles_signs_one_meaning_only(personas, dataset):
    assert _grant(personas, "admin", "pi", "irb").status_code == 201
    version = _submit(personas, dataset)
    assert _sign(personas, "pi", version.number, "pi_approval").status_code == 201
    second = _sign(personas, "pi", version.number, "irb_approval")
    assert second.status_code == 403 and _code(second) == "one_signoff_per_person"
    assert ModelVersion.objects.get(pk=version.pk).state == "in_review"
    assert _sign(personas, "irb", version.number, "irb_approval").json()["state"] == "approved"


def test_the_registrant_cannot_sign_even_when_someone_else_submitted(personas, dataset):
    _grant(personas, "admin", "owner", "approver")
    version = _submit(personas, dataset, by="admin")  # registered by the owner
    assert version.created_by == personas.owner and version.submitted_by == personas.admin
    response = _sign(personas, "owner", version.number, "pi_approval")
    assert response.status_code == 403 and _code(response) == "self_signing"
    assert "registered" in response.json()["errors"][0]["message"]
    assert not Signature.objects.exists()


def test_the_submitter_cannot_sign(personas, dataset):
    _grant(personas, "admin", "admin", "approver")
    version = _submit(personas, dataset, by="admin")
    response = _sign(personas, "admin", version.number, "pi_approval")
    assert response.status_code == 403 and _code(response) == "self_signing"
    assert "submitted" in response.json()["errors"][0]["message"]


def test_barred_signers_are_not_offered_the_signature(personas, dataset, client_as):
    from registry.release import signable_meanings
    from registry.selectors import versions_awaiting_signoff

    _grant(personas, "admin", "owner", "irb")
    version = _submit(personas, dataset)
    assert signable_meanings(user=personas.owner, version=version) == []
    assert versions_awaiting_signoff(user=personas.owner) == []
    _sign(personas, "pi", version.number, "pi_approval")
    _grant(personas, "admin", "pi", "irb")
    fresh = ModelVersion.objects.get(pk=version.pk)
    assert signable_meanings(user=personas.pi, version=fresh) == []
    assert signable_meanings(user=personas.irb, version=fresh) == ["irb_approval"]


# -- the release policy: administrators, frozen at submit, never empty ------------------------

def test_only_administrators_change_the_release_policy(personas, client_as):
    url = _model_url(personas)
    for who in ("owner", "pi", "irb"):
        response = _api(personas, who).patch(url, {"required_signoffs": ["pi_approval"]},
                                             format="json")
        assert response.status_code == 403, who
    page = client_as("owner").post(f"/models/{personas.model.name}/policy/",
                                   {"required_signoffs": "pi_approval"})
    assert page.status_code == 302
    personas.model.refresh_from_db()
    assert personas.model.required_signoffs == ["pi_approval", "irb_approval"]
    ok = _api(personas, "admin").patch(url, {"required_signoffs": ["pi_approval", "dsmb_review"]},
                                       format="json")
    assert ok.status_code == 200 and ok.json()["required_signoffs"] == ["pi_approval",
                                                                       "dsmb_review"]
    event = AuditEvent.objects.filter(action=Action.POLICY_UPDATED).get()
    assert event.actor == personas.admin
    assert event.before == {"required_signoffs": ["pi_approval", "irb_approval"]}
    assert event.after == {"required_signoffs": ["pi_approval", "dsmb_review"]}


@pytest.mark.parametrize("policy", [[], None, ["pi_approval", "pi_approval"], "pi_approval"])
def test_an_empty_or_malformed_policy_is_refused(personas, policy):
    response = _api(personas, "admin").patch(_model_url(personas), {"required_signoffs": policy},
                                             format="json")
    assert response.status_code == 400, response.json()
    personas.model.refresh_from_db()
    assert personas.model.required_signoffs == ["pi_approval", "irb_approval"]
    if policy == []:
        assert _code(response) == "empty_policy"


def test_an_owner_creates_models_under_the_default_policy_only(personas):
    from django.contrib.auth.models import Permission

    personas.owner.user_permissions.add(Permission.objects.get(codename="add_registeredmodel"))
    lax = _api(personas, "owner").post("/api/v1/models/", {
        "name": "lax-model", "required_signoffs": ["pi_approval"]}, format="json")
    assert lax.status_code == 403
    default = _api(personas, "owner").post("/api/v1/models/", {"name": "plain-model"},
                                           format="json")
    assert default.status_code == 201
    assert default.json()["required_signoffs"] == ["pi_approval", "irb_approval"]
    admin = _api(personas, "admin").post("/api/v1/models/", {
        "name": "admin-model", "required_signoffs": ["pi_approval"]}, format="json")
    assert admin.status_code == 201 and admin.json()["required_signoffs"] == ["pi_approval"]
    empty = _api(personas, "admin").post("/api/v1/models/", {
        "name": "empty-model", "required_signoffs": []}, format="json")
    assert empty.status_code == 400 and _code(empty) == "empty_policy"


def test_the_policy_in_force_at_submit_is_frozen_into_the_version(personas, dataset):
    v1 = _submit(personas, dataset)
    assert v1.required_signoffs == ["pi_approval", "irb_approval"]
    # a change while v1 is in review is allowed, and does not apply to v1
    shrink = _api(personas, "admin").patch(_model_url(personas), {
        "required_signoffs": ["pi_approval"]}, format="json")
    assert shrink.status_code == 200
    assert AuditEvent.objects.get(action=Action.POLICY_UPDATED).details[
        "unchanged_in_review"] == ["v1"]
    assert _sign(personas, "pi", 1, "pi_approval").json()["state"] == "in_review"
    manifest = _api(personas, "pi").get(_version_url(personas, 1)).json()
    assert manifest["state"] == "in_review"
    assert _sign(personas, "irb", 1, "irb_approval").json()["state"] == "approved"
    # a version submitted afterwards is reviewed under the new policy
    v2 = _submit(personas, dataset)
    assert v2.required_signoffs == ["pi_approval"]
    unknown = _sign(personas, "irb", 2, "irb_approval")
    assert unknown.status_code == 400 and _code(unknown) == "unknown_meaning"
    assert _sign(personas, "pi", 2, "pi_approval").json()["state"] == "approved"
    submitted = AuditEvent.objects.filter(action=Action.VERSION_SUBMITTED).latest("seq")
    assert submitted.after["required_signoffs"] == ["pi_approval"]
    assert verify_chain().ok


# -- the property: no sequence of one person's API calls reaches approved ---------------------

def _everything_one_person_can_try(personas, dataset, who: str) -> None:
    """Every release-relevant call, in every order that matters, by one account."""
    api = _api(personas, who)
    user = personas.get(who)
    for role in ("approver", "irb", "owner"):
        api.post(_model_url(personas, "access/"), {"user": user.username, "role": role},
                 format="json")
    for policy in ([], ["pi_approval"], ["self_check"]):
        api.patch(_model_url(personas), {"required_signoffs": policy}, format="json")
    try:
        version = register_version(user, personas.model, dataset)
    except PermissionDenied:  # not allowed to register: try on the owner's draft instead
        version = register_version(personas.owner, personas.model, dataset)
    n = version.number
    api.post(_version_url(personas, n, "submit/"))
    meanings = list(ModelVersion.objects.get(pk=version.pk).signoff_policy)
    tried = list(dict.fromkeys(meanings + ["pi_approval", "irb_approval", "self_check"]))
    for order in (tried, tried[::-1]):
        for meaning in order:
            api.post(_version_url(personas, n, "signoffs/"), {
                "meaning": meaning, "decision": "approve", "password": PASSWORD,
                "comment": "self"}, format="json")
        if ModelVersion.objects.get(pk=version.pk).state != "in_review":
            break
    # after the fact, a policy change cannot finish the review either
    api.patch(_model_url(personas), {"required_signoffs": ["self_check"]}, format="json")
    api.post(_version_url(personas, n, "promote/"))


@pytest.mark.parametrize("who", ["admin", "owner", "pi", "irb"])
def test_no_single_person_can_bring_a_version_to_approved(personas, dataset, who):
    _everything_one_person_can_try(personas, dataset, who)
    reached = ModelVersion.objects.filter(
        model=personas.model, state__in=["approved", "production"])
    assert not reached.exists(), [(v.label, v.state) for v in reached]
    # whatever they signed, they signed at most one meaning of any version
    for version in ModelVersion.objects.filter(model=personas.model):
        signers = list(version.signatures.values_list("signer_id", flat=True))
        assert len(signers) == len(set(signers))
        assert version.created_by_id not in signers and version.submitted_by_id not in signers


def test_two_people_with_the_right_roles_can_still_release(personas, dataset):
    """The separation does not block the ordinary path: owner submits, PI and IRB sign."""
    version = _submit(personas, dataset)
    _sign(personas, "pi", version.number, "pi_approval")
    assert _sign(personas, "irb", version.number, "irb_approval").json()["state"] == "approved"
    assert _api(personas, "owner").post(_version_url(personas, version.number,
                                                     "promote/")).status_code == 200
