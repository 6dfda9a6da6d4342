"""Batch job pages (the other inference pages are in ``page_urls.py``)."""

from django.urls import path

from . import batch_views

app_name = "batches"

urlpatterns = [
    path("models/<str:model>/batches/", batch_views.model_batches, name="model-batches"),
    path("batches/<str:batch_id>/", batch_views.batch_detail, name="detail"),
    path("batches/<str:batch_id>/cancel/", batch_views.batch_cancel, name="cancel"),
    path("batches/<str:batch_id>/files/<str:kind>/", batch_views.batch_file, name="file"),
]
