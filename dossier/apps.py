"""The compliance dossier: evidence from every layer below, snapshotted at one instant,
rendered to PDF. Nothing imports it."""
from django.apps import AppConfig


class DossierConfig(AppConfig):
    name = "dossier"
    verbose_name = "Compliance dossier"

    def ready(self) -> None:
        from registry.extensions import register_version_section

        from .views import version_section

        # The version page lists the version's dossiers (the registry cannot import us).
        register_version_section("dossier", version_section)
