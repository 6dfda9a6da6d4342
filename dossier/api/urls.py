from django.urls import path

from . import views

urlpatterns = [
    path("models/<str:model>/versions/<str:version>/dossiers/",
         views.VersionDossiersView.as_view(), name="api-version-dossiers"),
    path("dossiers/<str:dossier_id>/", views.DossierView.as_view(), name="api-dossier"),
    path("dossiers/<str:dossier_id>/pdf/", views.DossierPdfView.as_view(),
         name="api-dossier-pdf"),
    path("dossiers/<str:dossier_id>/evidence/", views.DossierEvidenceView.as_view(),
         name="api-dossier-evidence"),
    path("dossiers/<str:dossier_id>/signoffs/", views.DossierSignoffView.as_view(),
         name="api-dossier-signoffs"),
]
