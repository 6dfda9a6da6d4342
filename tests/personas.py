"""Personas shared by every test: one user per role, plus outsiders.

``make_personas`` builds them through the same services the product uses, so
grants and audit events are real.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from registry import services
from registry.models import RegisteredModel
from registry.roles import AUDITORS_GROUP, ModelRole

PASSWORD = "correct-horse-battery-staple"

PERSONA_NAMES = ("admin", "auditor", "owner", "pi", "irb", "clinician", "reviewer",
                 "viewer_other", "outsider")


@dataclass
class Personas:
    admin: object
    auditor: object
    owner: object
    pi: object
    irb: object
    clinician: object
    reviewer: object
    viewer_other: object  # a viewer of another model only
    outsider: object  # active, no grants at all
    model: RegisteredModel
    other_model: RegisteredModel

    def get(self, name: str):
        return getattr(self, name)


def make_user(username: str, *, superuser: bool = False, can_create: bool = False):
    User = get_user_model()
    user = User.objects.create_user(username=username, password=PASSWORD,
                                    first_name=username.capitalize(), last_name="Test",
                                    email=f"{username}@example.org")
    if superuser:
        user.is_superuser = user.is_staff = True
        user.save()
    if can_create:
        user.user_permissions.add(Permission.objects.get(
            codename="add_registeredmodel", content_type__app_label="registry"))
        user = User.objects.get(pk=user.pk)  # drop the permission cache
    return user


def make_personas(model_name: str = "sepsis-risk") -> Personas:
    admin = make_user("admin", superuser=True)
    auditor = make_user("auditor")
    auditor.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    owner = make_user("owner", can_create=True)
    other_owner = make_user("other_owner", can_create=True)
    users = {name: make_user(name) for name in ("pi", "irb", "clinician", "reviewer",
                                                "viewer_other", "outsider")}
    model = services.registered_model_create(user=owner, name=model_name,
                                             description="Test model")
    other = services.registered_model_create(user=other_owner, name=f"{model_name}-other")
    for name, role in (("clinician", ModelRole.CLINICIAN), ("reviewer", ModelRole.REVIEWER)):
        services.access_grant(user=owner, model=model, grantee=users[name], role=role)
    # signing roles are granted by administrators only
    for name, role in (("pi", ModelRole.APPROVER), ("irb", ModelRole.IRB)):
        services.access_grant(user=admin, model=model, grantee=users[name], role=role)
    services.access_grant(user=other_owner, model=other, grantee=users["viewer_other"],
                          role=ModelRole.VIEWER)
    return Personas(admin=admin, auditor=auditor, owner=owner, model=model, other_model=other,
                    **users)
