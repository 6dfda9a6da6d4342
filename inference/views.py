"""Clinician pages: the prediction form, a prediction, the review queue."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import ApplicationError, Conflict, PermissionDenied
from core.pages import page_view
from registry.roles import Capability
from registry.selectors import model_get_for_user, user_capabilities

from . import selectors, services
from .explanations import prediction_explain as prediction_explain_service
from .explanations import prediction_explanations_page
from .forms import PredictionForm, ReviewDecisionForm
from .models import ReviewStatus

_guard = page_view("home")
REVIEW_PAGE_SIZE = 100
PREDICTION_PAGE_SIZE = 50


@_guard
@require_http_methods(["GET", "POST"])
def predict(request, model):
    """The form for the production version; owners may pick another version to test
    (``?version=N``, as the API's ``version``)."""
    obj = model_get_for_user(user=request.user, name=model, capability=Capability.PREDICT)
    testable = selectors.testable_versions(user=request.user, model=obj)
    number = request.GET.get("version") or None
    if number is not None and not testable:
        messages.error(request, "Only the model's owners may target a specific version.")
        return redirect("inference:predict", model=obj.name)
    try:
        version = services.target_version(user=request.user, model=obj, number=number)
    except ApplicationError as exc:
        if number is not None:
            messages.error(request, exc.message)
            return redirect("inference:predict", model=obj.name)
        if not testable:
            messages.error(request, exc.message)
            return redirect("registry:model-detail", model=obj.name)
        # An owner with no production version yet: the page offers the versions to test.
        return render(request, "inference/predict.html", {
            "model": obj, "version": None, "form": None, "testable": testable,
            "no_production": exc.message})
    form = PredictionForm(request.POST or None, schema=version.input_schema)
    if request.method == "POST" and form.is_valid():
        try:
            result = services.prediction_create(user=request.user, model=obj,
                                                instances=[form.inputs()],
                                                version_number=number)[0]
        except ApplicationError as exc:
            for item in exc.items:
                name = (item.field or "").removeprefix("inputs.")
                form.add_error(name if name in form.fields else None, item.message)
                hint = form.number_hint(name) if item.code == "invalid_type" else None
                if hint:
                    form.add_error(name, hint)
        else:
            return redirect("inference:prediction", prediction_id=result.prediction.public_id)
    return render(request, "inference/predict.html", {
        "model": obj, "version": version, "form": form, "testable": testable,
        "chosen": number is not None})


@_guard
def my_predictions(request):
    """The predictions the user asked for, newest first, with where each one stands."""
    paginator = Paginator(selectors.predictions_requested_by(user=request.user),
                          PREDICTION_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "inference/my_predictions.html", {"page": page,
                                                             "items": page.object_list})


@_guard
def prediction_detail(request, prediction_id):
    prediction = services.prediction_get_for_user(user=request.user, public_id=prediction_id)
    reveal = selectors.can_see_raw_inputs(user=request.user, prediction=prediction)
    review = getattr(prediction, "review", None)
    schema = prediction.version.input_schema
    rows = [{"feature": f, "value": (prediction.input or {}).get(f["name"])} for f in schema] \
        if reveal and prediction.input is not None else []
    return render(request, "inference/prediction.html", {
        "prediction": prediction, "reveal": reveal, "rows": rows, "review": review,
        "ood": selectors.ood_flags(prediction=prediction, reveal=reveal),
        "labels": prediction.version.output_schema.get("label_names", {}),
        "caps": user_capabilities(user=request.user, model=prediction.model),
        **prediction_explanations_page(user=request.user, prediction=prediction)})


@_guard
@require_POST
def prediction_explain(request, prediction_id):
    """Ask for an explanation of a prediction (SHAP or LIME); back to where it was asked."""
    prediction = services.prediction_get_for_user(user=request.user, public_id=prediction_id)
    try:
        outcome = prediction_explain_service(user=request.user, prediction=prediction,
                                             method=request.POST.get("method"))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if outcome.job is not None:
            messages.info(request, "The explanation is being computed; this page shows it "
                          "when it is done.")
    item = request.POST.get("review_item")
    if item and str(getattr(getattr(prediction, "review", None), "pk", "")) == item:
        return redirect("inference:review-item", item_id=item)
    return redirect("inference:prediction", prediction_id=prediction.public_id)


@_guard
def review_queue(request):
    """Open items oldest first, or decided ones newest first, a page at a time."""
    status = request.GET.get("status") or ReviewStatus.OPEN
    if status not in ReviewStatus.values:
        status = ReviewStatus.OPEN
    paginator = Paginator(selectors.review_queue_for_user(user=request.user, status=status),
                          REVIEW_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "inference/review_queue.html", {
        "page": page, "items": page.object_list, "status": status,
        "unreleased": selectors.UNRELEASED_STATES})


@_guard
@require_http_methods(["GET", "POST"])
def review_item(request, item_id):
    item = selectors.review_item_get_for_user(user=request.user, item_id=item_id)
    if item is None:
        raise Http404
    labels = item.version.output_schema.get("labels", [])
    form = ReviewDecisionForm(request.POST or None, labels=labels)
    if request.method == "POST" and form.is_valid():
        try:
            services.review_decide(user=request.user, item=item, **form.cleaned_data)
        except (Conflict, PermissionDenied) as exc:  # decided meanwhile, or one's own
            messages.error(request, f"{exc.message} Your decision was not recorded.")
            return redirect("inference:review-item", item_id=item.pk)
        except ApplicationError as exc:
            for error in exc.items:
                form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            messages.success(request, "Decision recorded.")
            return redirect("inference:review-queue")
    reveal = selectors.can_see_raw_inputs(user=request.user, prediction=item.prediction)
    rows = [{"feature": f, "value": (item.prediction.input or {}).get(f["name"])}
            for f in item.version.input_schema] if reveal and item.prediction.input else []
    return render(request, "inference/review_item.html", {
        "item": item, "form": form, "rows": rows, "reveal": reveal,
        "own": services.is_own_prediction(user=request.user, prediction=item.prediction),
        "unreleased": selectors.UNRELEASED_STATES,
        "ood": selectors.ood_flags(prediction=item.prediction, reveal=reveal),
        **prediction_explanations_page(user=request.user, prediction=item.prediction)})


@_guard
def model_operations(request, model):
    """Per version: predictions, review queue, overrides (rate and direction), refusals."""
    obj = model_get_for_user(user=request.user, name=model)
    versions = [v for v in obj.versions.order_by("-number")
                if v.state in ("production", "superseded", "approved", "in_review", "retired")]
    stats = [(v, selectors.review_stats(version=v)) for v in versions]
    return render(request, "inference/operations.html", {
        "model": obj, "stats": [(v, s) for v, s in stats if s["predictions"] or v.state ==
                                "production"],
        "rejections": selectors.rejection_summary(model=obj),
        "latency": selectors.latency_summary(model=obj)})
