"""The token lookup's hand-written query loads what the ORM loads."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from portal.models import ApiToken
from portal.tokens import _token_with_user, api_token_authenticate, api_token_create

pytestmark = pytest.mark.django_db


def test_the_token_and_its_user_equal_the_orm_rows(personas):
    row, secret = api_token_create(user=personas.clinician, name="laptop")
    assert api_token_authenticate(secret) is not None  # sets last_used_at
    found = _token_with_user(row.prefix)
    token = ApiToken.objects.get(pk=row.pk)
    user = get_user_model().objects.get(pk=personas.clinician.pk)
    for field in ApiToken._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(token, field.attname), field.name
        assert type(getattr(found, field.attname)) is type(getattr(token, field.attname))
    for field in user._meta.concrete_fields:
        assert getattr(found.user, field.attname) == getattr(user, field.attname), field.name
        assert type(getattr(found.user, field.attname)) is type(getattr(user, field.attname))
    assert found.user.last_login is None or found.user.last_login.utcoffset().total_seconds() == 0
    assert found.expires_at.utcoffset().total_seconds() == 0
    assert _token_with_user("nosuchprefix") is None
