from django.urls import path

from . import views

app_name = "monitoring"

urlpatterns = [
    path("models/<str:model>/monitoring/", views.monitoring_page, name="page"),
    path("models/<str:model>/monitoring/run/", views.monitoring_run_now, name="run"),
    path("models/<str:model>/monitoring/policy/", views.monitoring_policy, name="policy"),
    path("models/<str:model>/outcomes/", views.outcomes_upload, name="outcomes"),
]
