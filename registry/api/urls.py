from django.urls import path

from . import views

urlpatterns = [
    path("models/", views.ModelListView.as_view(), name="api-models"),
    path("models/<str:model>/", views.ModelDetailView.as_view(), name="api-model"),
    path("models/<str:model>/versions/", views.VersionListView.as_view(), name="api-versions"),
    path("models/<str:model>/versions/<str:version>/", views.VersionDetailView.as_view(),
         name="api-version"),
    path("models/<str:model>/versions/<str:version>/submit/", views.VersionSubmitView.as_view(),
         name="api-version-submit"),
    path("models/<str:model>/versions/<str:version>/artifact/",
         views.VersionArtifactView.as_view(), name="api-version-artifact"),
    path("models/<str:model>/versions/<str:version>/signoffs/", views.SignoffView.as_view(),
         name="api-version-signoffs"),
    path("models/<str:model>/versions/<str:version>/promote/", views.PromoteView.as_view(),
         name="api-version-promote"),
    path("models/<str:model>/versions/<str:version>/retire/", views.RetireView.as_view(),
         name="api-version-retire"),
    path("models/<str:model>/versions/<str:version>/discard/", views.DiscardView.as_view(),
         name="api-version-discard"),
    path("models/<str:model>/versions/<str:version>/shadow/", views.ShadowView.as_view(),
         name="api-version-shadow"),
    path("models/<str:model>/rollback/", views.RollbackView.as_view(), name="api-rollback"),
    path("models/<str:model>/production/", views.ProductionAtView.as_view(),
         name="api-production-at"),
    path("models/<str:model>/access/", views.AccessView.as_view(), name="api-access"),
    path("trusted-types/", views.TrustedTypeListView.as_view(), name="api-trusted-types"),
    path("trusted-types/<str:name>/", views.TrustedTypeDetailView.as_view(),
         name="api-trusted-type"),
    path("datasets/", views.DatasetListView.as_view(), name="api-datasets"),
    path("datasets/<str:dataset_id>/", views.DatasetDetailView.as_view(), name="api-dataset"),
]
