"""The audit trail's pages and API paths (mounted by portal/urls.py)."""

from django.urls import path

from . import api, views

pages = [
    path("audit/", views.event_list, name="audit-events"),
    path("audit/events/<int:event_id>/", views.event_detail, name="audit-event"),
    path("audit/export/", views.export, name="audit-export"),
    path("audit/verify/", views.verify, name="audit-verify"),
    path("audit/checkpoints/new/", views.checkpoint_create, name="audit-checkpoint-create"),
    path("audit/checkpoints/<path:storage_key>", views.checkpoint_download,
         name="audit-checkpoint"),
    path("audit/public-key/", views.public_key, name="audit-public-key"),
]

api_v1 = [
    path("audit/verify/", api.AuditVerifyView.as_view(), name="api-audit-verify"),
    path("audit/events/", api.AuditEventListView.as_view(), name="api-audit-events"),
    path("audit/events/<str:event_id>/", api.AuditEventDetailView.as_view(),
         name="api-audit-event"),
    path("audit/export/", api.AuditExportView.as_view(), name="api-audit-export"),
    path("audit/checkpoints/", api.AuditCheckpointView.as_view(), name="api-audit-checkpoints"),
    path("audit/checkpoints/latest/", api.AuditCheckpointLatestView.as_view(),
         name="api-audit-checkpoint-latest"),
]
