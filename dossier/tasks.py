"""Celery tasks of the dossier app: take ids, call a service; acknowledged late, so a
message whose worker died is delivered again (the row decides what is left to do)."""

from __future__ import annotations

from celery import shared_task

from core.context import acting_as

from . import services


@shared_task(name="dossier.build", acks_late=True)
def build_dossier(dossier_id: int) -> str:
    """Snapshot the evidence, render and store one dossier; safe to redeliver."""
    with acting_as(None, via="task"):
        return services.dossier_build(dossier_id=dossier_id)


@shared_task(name="dossier.resume_stale", acks_late=True)
def resume_stale_dossiers() -> list[int]:
    """Re-queue dossier builds whose worker stopped, resend those whose message was lost."""
    with acting_as(None, via="task"):
        return services.dossiers_resume_stale()
