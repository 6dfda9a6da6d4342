"""Batch job pages: upload a file for a model, follow a job, cancel it, download its files.

Each view parses a form, calls one service (``inference/batches/``, shared with the
API) and renders. The status page refreshes itself while the job runs (no JavaScript).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import FileResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import ApplicationError, NotFound, PermissionDenied
from core.pages import page_view
from core.uploads import upload_limit_message
from registry.roles import Capability
from registry.selectors import model_get_for_user, user_capabilities

from . import batches
from .models import BatchStatus
from .tasks import batch_enqueue, batch_resume_embedded

_page = page_view("registry:model-list")


class BatchUploadForm(forms.Form):
    file = forms.FileField(label="File to score", help_text=(
        "CSV (UTF-8, a header row naming the input features) or Parquet (.parquet, .pq). "
        "Each row is validated, scored and logged; rows that fail validation are listed in "
        "the error file."))
    version = forms.IntegerField(required=False, min_value=1, label="Version (owners only)",
                                 help_text="Leave empty to score with the production version.")
    passthrough_columns = forms.CharField(
        required=False, max_length=5000,
        label="Pass-through columns (identifiers copied to the result, never scored or logged)",
        help_text="Column names of the file, separated by commas (e.g. record_id): copied as "
        "text to the result and error files to join them back, kept out of the prediction "
        "log, and deleted with those files under the model's retention. Any other column "
        "that is not an input of the model is refused.")

    explain = forms.ChoiceField(
        required=False, label="Explain every row",
        choices=[("", "No"), ("shap", "SHAP contributions of every row")],
        help_text="Adds one column per feature to the result file (shap_<feature>, with the "
        "base value and units): how much each value moved that row's output. Offered for "
        "tree and linear models within the time budget; otherwise the form says why.")

    def __init__(self, *args, owner: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not owner:
            del self.fields["version"]


@_page
@require_http_methods(["GET", "POST"])
def model_batches(request, model):
    obj = model_get_for_user(user=request.user, name=model, capability=Capability.PREDICT)
    owner = Capability.REGISTER_VERSION in user_capabilities(user=request.user, model=obj)
    form = BatchUploadForm(request.POST or None, request.FILES or None, owner=owner)
    if request.method == "POST":
        if getattr(request, "upload_too_large", False):
            form.add_error(None, upload_limit_message())
        elif form.is_valid():
            try:
                job = batches.batch_submit(user=request.user, model=obj, enqueue=batch_enqueue,
                                           upload=form.cleaned_data["file"],
                                           version_number=form.cleaned_data.get("version"),
                                           passthrough_columns=form.cleaned_data.get(
                                               "passthrough_columns"),
                                           explain=form.cleaned_data.get("explain") or None)
            except PermissionDenied:
                raise
            except ApplicationError as exc:
                for item in exc.items:
                    field = (item.field or "").split(".")[0]
                    form.add_error(field if field in form.fields else None, item.message)
            else:
                messages.success(request, f"Batch of {job.total_rows:,} rows accepted.")
                return redirect("batches:detail", batch_id=job.public_id)
    batch_resume_embedded()
    jobs = list(batches.batch_list_for_user(user=request.user, model=obj)[:50])
    return render(request, "inference/batch_upload.html", {
        "model": obj, "form": form, "jobs": [(j, batches.batch_progress(j)) for j in jobs]})


@_page
def batch_detail(request, batch_id):
    batch_resume_embedded()
    job = batches.batch_get_for_user(user=request.user, batch_id=batch_id)
    return render(request, "inference/batch_detail.html", {
        "job": job, "progress": batches.batch_progress(job),
        "active": job.status in (BatchStatus.QUEUED, BatchStatus.RUNNING),
        "predictions": job.rows_done - job.rows_failed,
        "reasons": batches.batch_failure_reasons(job)})


@_page
@require_POST
def batch_cancel(request, batch_id):
    job = batches.batch_get_for_user(user=request.user, batch_id=batch_id)
    try:
        job = batches.batch_cancel(user=request.user, job=job)
    except ApplicationError as exc:
        if isinstance(exc, NotFound):
            raise
        messages.error(request, exc.message)
    else:
        messages.success(request, "Job cancelled." if job.status == BatchStatus.CANCELLED else
                         "Cancellation requested: the job stops after its current chunk.")
    return redirect("batches:detail", batch_id=job.public_id)


@_page
def batch_file(request, batch_id, kind):
    job = batches.batch_get_for_user(user=request.user, batch_id=batch_id)
    try:
        handle, name = batches.batch_file_get(user=request.user, job=job, kind=kind)
    except NotFound:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("batches:detail", batch_id=job.public_id)
    return FileResponse(handle, as_attachment=True, filename=name,
                        content_type="text/csv; charset=utf-8")
