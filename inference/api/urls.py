from django.urls import path

from . import batch_views, explanation_views, views

urlpatterns = [
    path("models/<str:model>/predict/", views.PredictView.as_view(), name="api-predict"),
    path("predictions/<str:prediction_id>/", views.PredictionDetailView.as_view(),
         name="api-prediction"),
    path("predictions/<str:prediction_id>/explanations/",
         explanation_views.PredictionExplanationsView.as_view(),
         name="api-prediction-explanations"),
    path("predictions/<str:prediction_id>/explanations/jobs/<str:job_id>/",
         explanation_views.PredictionExplanationJobView.as_view(),
         name="api-prediction-explanation-job"),
    path("models/<str:model>/review-stats/", views.ReviewStatsView.as_view(),
         name="api-review-stats"),
    path("reviews/", views.ReviewListView.as_view(), name="api-reviews"),
    path("reviews/<str:item_id>/", views.ReviewDetailView.as_view(), name="api-review"),
    path("reviews/<str:item_id>/decision/", views.ReviewDecisionView.as_view(),
         name="api-review-decision"),
    path("models/<str:model>/batches/", batch_views.BatchListView.as_view(), name="api-batches"),
    path("batches/<str:batch_id>/", batch_views.BatchDetailView.as_view(), name="api-batch"),
    path("batches/<str:batch_id>/<str:kind>/", batch_views.BatchFileView.as_view(),
         name="api-batch-file"),
]
