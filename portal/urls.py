from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import api, audit_views, views

api_v1 = [
    path("auth/tokens/", api.TokenListView.as_view(), name="api-tokens"),
    path("auth/tokens/<str:token_id>/", api.TokenDetailView.as_view(), name="api-token"),
    path("audit/verify/", api.AuditVerifyView.as_view(), name="api-audit-verify"),
    path("audit/events/", api.AuditEventListView.as_view(), name="api-audit-events"),
    path("audit/events/<str:event_id>/", api.AuditEventDetailView.as_view(),
         name="api-audit-event"),
    path("audit/export/", api.AuditExportView.as_view(), name="api-audit-export"),
    path("audit/checkpoints/", api.AuditCheckpointView.as_view(), name="api-audit-checkpoints"),
    path("", include("registry.api.urls")),
    path("", include("inference.api.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz/", views.healthz, name="healthz"),
    path("login/", views.AttestLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    path("audit/", audit_views.event_list, name="audit-events"),
    path("audit/events/<int:event_id>/", audit_views.event_detail, name="audit-event"),
    path("audit/export/", audit_views.export, name="audit-export"),
    path("audit/verify/", audit_views.verify, name="audit-verify"),
    path("audit/checkpoints/new/", audit_views.checkpoint_create, name="audit-checkpoint-create"),
    path("audit/checkpoints/<path:storage_key>", audit_views.checkpoint_download,
         name="audit-checkpoint"),
    path("audit/public-key/", audit_views.public_key, name="audit-public-key"),
    path("", include("registry.urls")),
    path("", include("inference.urls")),
    path("", include("inference.page_urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

handler404 = "portal.views.not_found"
handler500 = "portal.views.server_error"
