from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerSplitView

from audits import urls as audit_urls
from monitoring import api as monitoring_api

from . import api, views
from .schema import SchemaView

api_v1 = [
    path("auth/tokens/", api.TokenListView.as_view(), name="api-tokens"),
    path("auth/tokens/<str:token_id>/", api.TokenDetailView.as_view(), name="api-token"),
    path("auth/whoami/", api.WhoAmIView.as_view(), name="api-whoami"),
    *audit_urls.api_v1,
    path("", include("registry.api.urls")),
    path("", include("inference.api.urls")),
    path("", include("explain.api.urls")),
    path("", include("dossier.api.urls")),
    *monitoring_api.urlpatterns,
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz/", views.healthz, name="healthz"),
    path("login/", views.AttestLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    *audit_urls.pages,
    path("", include("registry.urls")),
    path("", include("inference.urls")),
    path("", include("inference.page_urls")),
    path("", include("explain.urls")),
    path("", include("monitoring.urls")),
    path("", include("dossier.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

handler400 = "portal.views.bad_request"
handler404 = "portal.views.not_found"
handler500 = "portal.views.server_error"
