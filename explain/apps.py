"""Explanations (SHAP, LIME) keyed by (version, input hash, method, parameters).

It knows models and versions (``registry``) but nothing of predictions, so
``inference`` can ask it for an inline explanation without an import cycle.
"""
from django.apps import AppConfig


class ExplainConfig(AppConfig):
    name = "explain"

    def ready(self) -> None:
        from registry.extensions import register_submit_hook, register_version_section

        from .services import version_explanation_on_submit
        from .views import version_section

        # From submit on, a version's explanation figures are computed in the background
        # and shown on its version and review pages (the registry cannot import us).
        register_submit_hook("explain", version_explanation_on_submit)
        register_version_section("explain", version_section)
