from django.urls import path

from . import views

app_name = "dossier"

urlpatterns = [
    path("models/<str:model>/versions/<str:version>/dossiers/", views.dossier_generate,
         name="generate"),
    path("dossiers/<str:dossier_id>/", views.dossier_detail, name="detail"),
    path("dossiers/<str:dossier_id>/sign/", views.dossier_sign, name="sign"),
]
