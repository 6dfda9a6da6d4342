from django.urls import path

from . import views

app_name = "inference"

urlpatterns = [
    path("models/<str:model>/predict/", views.predict, name="predict"),
    path("models/<str:model>/operations/", views.model_operations, name="operations"),
    path("predictions/", views.my_predictions, name="my-predictions"),
    path("predictions/<str:prediction_id>/", views.prediction_detail, name="prediction"),
    path("predictions/<str:prediction_id>/explain/", views.prediction_explain,
         name="prediction-explain"),
    path("reviews/", views.review_queue, name="review-queue"),
    path("reviews/<str:item_id>/", views.review_item, name="review-item"),
]
