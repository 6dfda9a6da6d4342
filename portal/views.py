"""The HTML shell: home dashboard, sign-in, health, error pages."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.api import json_400, json_404, json_500
from core.errors import ApplicationError
from core.middleware import client_address
from monitoring.selectors import alerts_for_user
from registry.selectors import model_versions_summary, versions_awaiting_signoff

from .models import ApiToken
from .throttling import login_lock_seconds, wait_text
from .tokens import api_token_create, api_token_revoke


class AttestLoginForm(AuthenticationForm):
    def clean(self):
        seconds = login_lock_seconds(username=self.cleaned_data.get("username"),
                                     address=client_address(self.request))
        if seconds:
            raise forms.ValidationError(
                f"Too many failed sign-in attempts. Try again in {wait_text(seconds)}, or ask "
                "an administrator.", code="locked")
        return super().clean()


class AttestLoginView(LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True
    authentication_form = AttestLoginForm


@login_required
def home(request):
    """The dashboard: what awaits the user, then the models they can see."""
    return render(request, "portal/home.html", {
        "awaiting": versions_awaiting_signoff(user=request.user),
        "monitoring_banners": alerts_for_user(user=request.user),
        "models": model_versions_summary(user=request.user),
    })


@require_GET
@never_cache
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": connection.vendor})


def bad_request(request, exception=None):
    """Django's own 400s (a Host not in ATTEST_ALLOWED_HOSTS, too many form fields):
    under /api/ in the API's error format, elsewhere Django's plain page."""
    if request.path.startswith("/api/"):
        return json_400(request, exception)
    return defaults.bad_request(request, exception)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_404(request, exception)
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return json_500(request)
    return render(request, "500.html", status=500)




class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, initial="API token",
                           help_text="Where you will use it, e.g. 'laptop notebook'.")
    days = forms.IntegerField(min_value=1, max_value=366, initial=90, label="Valid for (days)")


@login_required
def account(request):
    """The user's profile: roles and personal API tokens (a new secret is shown once)."""
    form = TokenCreateForm(request.POST or None)
    secret = None
    if request.method == "POST":
        if "revoke" in request.POST:
            try:
                api_token_revoke(user=request.user, token_id=int(request.POST.get("revoke", "0")))
            except (ValueError, ApplicationError):
                messages.error(request, "No such token.")
            else:
                messages.success(request, "Token revoked.")
            return redirect("account")
        if form.is_valid():
            _row, secret = api_token_create(user=request.user, name=form.cleaned_data["name"],
                                            days=form.cleaned_data["days"])
            form = TokenCreateForm()
    return render(request, "portal/account.html", {
        "form": form, "secret": secret,
        "tokens": ApiToken.objects.filter(user=request.user).order_by("-created_at"),
        "grants": request.user.model_grants.select_related("model").order_by("model__name"),
    })
