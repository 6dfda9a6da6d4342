"""serving_context answers what user_capabilities and the version states answer."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from registry.models import ModelVersion, VersionState
from registry.roles import Capability
from registry.selectors import (
    VersionRef,
    frozen_version_get,
    frozen_versions_clear,
    serving_context,
    user_capabilities,
)
from tests.personas import PERSONA_NAMES

from ..inference.helpers import released_version

pytestmark = pytest.mark.django_db

ASKED = {Capability.VIEW_MODEL, Capability.PREDICT, Capability.REGISTER_VERSION}


def test_every_persona_gets_the_capabilities_user_capabilities_gives(personas):
    version = released_version(personas)
    for name in PERSONA_NAMES:
        user = personas.get(name)
        expected = user_capabilities(user=user, model=personas.model) & ASKED
        ctx = serving_context(user=user, name=personas.model.name)
        if Capability.VIEW_MODEL not in expected:
            assert ctx is None, name
            continue
        assert ctx.capabilities == expected, name
        assert ctx.model == personas.model and ctx.model.name == personas.model.name
        assert ctx.production == VersionRef(version.pk, version.content_hash)
        assert ctx.shadow is None
    assert serving_context(user=AnonymousUser(), name=personas.model.name) is None
    assert serving_context(user=personas.owner, name="no-such-model") is None


def test_production_and_shadow_are_read_fresh_and_versions_cached_by_content_hash(personas):
    frozen_versions_clear()
    version = released_version(personas)
    ctx = serving_context(user=personas.clinician, name=personas.model.name)
    cached = frozen_version_get(ctx.production)
    assert cached == version and frozen_version_get(ctx.production) is cached
    assert cached.dataset.profile == version.dataset.profile
    # A stale reference (another content hash) is never answered from the cache.
    assert frozen_version_get(VersionRef(version.pk, "0" * 64)) is None
    ModelVersion.objects.filter(pk=version.pk).update(state=VersionState.RETIRED)
    assert serving_context(user=personas.clinician, name=personas.model.name).production \
        is None
