"""The compliance dossier: evidence from every layer below, snapshotted at one instant,
rendered to PDF. Nothing imports it."""
from django.apps import AppConfig


class DossierConfig(AppConfig):
    name = "dossier"
    verbose_name = "Compliance dossier"

    def ready(self) -> None:
        from django.urls import reverse

        from registry.extensions import register_document_link, register_version_section

        from .views import version_section

        # The version page lists the version's dossiers (the registry cannot import us),
        # and links the dossier each IRB dossier review covers.
        register_version_section("dossier", version_section)
        register_document_link("dossier", lambda ref: reverse("dossier:detail",
                                                               kwargs={"dossier_id": ref}))
