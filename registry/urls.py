from django.urls import path

from . import views

app_name = "registry"

urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("models/new/", views.model_create, name="model-create"),
    path("models/<str:model>/", views.model_detail, name="model-detail"),
    path("models/<str:model>/access/", views.model_access, name="model-access"),
    path("models/<str:model>/versions/new/", views.version_register, name="version-register"),
    path("models/<str:model>/versions/<str:version>/", views.version_detail, name="version-detail"),
    path("models/<str:model>/versions/<str:version>/edit/", views.version_edit,
         name="version-edit"),
    path("models/<str:model>/versions/<str:version>/submit/", views.version_submit,
         name="version-submit"),
    path("models/<str:model>/versions/<str:version>/artifact/", views.version_artifact,
         name="version-artifact"),
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/new/", views.dataset_create, name="dataset-create"),
    path("datasets/<str:dataset_id>/", views.dataset_detail, name="dataset-detail"),
]
