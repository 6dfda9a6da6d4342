from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _eager(monkeypatch, settings):
    """Dossier jobs run in-process on commit (synchronously), also in the layer with a real
    broker (no worker there)."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", True)
    settings.ATTEST_DOSSIER_EAGER_THREAD = False
