from django.urls import path

from . import views

app_name = "explain"

urlpatterns = [
    path("models/<str:model>/versions/<str:version>/explanations/",
         views.version_figures_request, name="version-figures-request"),
]
