from django.urls import path

from . import views

app_name = "registry"

urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("models/new/", views.model_create, name="model-create"),
    path("models/<str:model>/", views.model_detail, name="model-detail"),
    path("models/<str:model>/access/", views.model_access, name="model-access"),
    path("models/<str:model>/rollback/", views.model_rollback, name="model-rollback"),
    path("models/<str:model>/policy/", views.model_policy, name="model-policy"),
    path("models/<str:model>/versions/new/", views.version_register, name="version-register"),
    path("models/<str:model>/versions/<str:version>/", views.version_detail, name="version-detail"),
    path("models/<str:model>/versions/<str:version>/edit/", views.version_edit,
         name="version-edit"),
    path("models/<str:model>/versions/<str:version>/submit/", views.version_submit,
         name="version-submit"),
    path("models/<str:model>/versions/<str:version>/artifact/", views.version_artifact,
         name="version-artifact"),
    path("models/<str:model>/versions/<str:version>/review/", views.version_review,
         name="version-review"),
    path("models/<str:model>/versions/<str:version>/promote/", views.version_promote,
         name="version-promote"),
    path("models/<str:model>/versions/<str:version>/retire/", views.version_retire,
         name="version-retire"),
    path("models/<str:model>/versions/<str:version>/discard/", views.version_discard,
         name="version-discard"),
    path("models/<str:model>/versions/<str:version>/shadow/", views.version_shadow,
         name="version-shadow"),
    path("trusted-types/", views.trusted_types, name="trusted-types"),
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/new/", views.dataset_create, name="dataset-create"),
    path("datasets/<str:dataset_id>/", views.dataset_detail, name="dataset-detail"),
]
