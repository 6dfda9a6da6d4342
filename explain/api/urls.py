from django.urls import path

from . import views

urlpatterns = [
    path("models/<str:model>/versions/<str:version>/explanations/",
         views.VersionExplanationView.as_view(), name="api-version-explanations"),
    path("models/<str:model>/versions/<str:version>/background/",
         views.VersionBackgroundView.as_view(), name="api-version-background"),
    path("datasets/<str:dataset_id>/background/", views.DatasetBackgroundView.as_view(),
         name="api-dataset-background"),
]
