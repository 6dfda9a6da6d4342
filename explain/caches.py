"""The explain app's per-process caches (explainer choices, backgrounds, LIME explainers)
in one place, for tests and for a process that must forget a model."""

from __future__ import annotations


def explain_caches_clear() -> None:
    from .choice import choices_clear
    from .limetab import lime_handles_clear
    from .space import backgrounds_clear

    choices_clear()
    backgrounds_clear()
    lime_handles_clear()
