"""Portal forms. They only parse; services validate and decide."""

from __future__ import annotations

import json

from django import forms

from core.errors import ApplicationError
from core.parsers import find_unstorable_text

from .models import ArtifactFormat, OodPolicy
from .schema import MODEL_CARD_HELP


class JSONTextField(forms.CharField):
    """A textarea holding JSON; empty means "not given"."""

    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "mono"})

    def __init__(self, *args, expect: type | tuple = (dict, list), **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)
        self.expect = expect

    def to_python(self, value):
        value = super().to_python(value)
        if value in (None, ""):
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, "
                                        f"column {exc.colno}).") from None
        if not isinstance(parsed, self.expect):
            raise forms.ValidationError("Not the expected JSON shape (an object or a list).")
        if find_unstorable_text(parsed) is not None:
            raise forms.ValidationError("Text may not contain NUL characters or unpaired "
                                        "surrogates.")
        return parsed


def lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").replace(",", "\n").splitlines() if line.strip()]


class ModelCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Lower-case letters, digits, '.', '_' or '-'.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    required_signoffs = forms.CharField(
        initial="pi_approval, irb_approval", required=False, label="Release policy",
        help_text="Sign-off meanings every release needs, separated by commas; each is signed "
                  "by a different person.")
    retention_days = forms.IntegerField(initial=365, min_value=1, max_value=36500,
                                        help_text="How long raw prediction inputs are kept.")

    def __init__(self, *args, admin: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not admin:  # shown, not editable: administrators set release policies
            field = self.fields["required_signoffs"]
            field.disabled = True
            field.help_text = ("Set by administrators: this default applies, and an "
                               "administrator can change it later.")


class DatasetCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    version = forms.CharField(max_length=50)
    source = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Where the data came from (registry, EHR extract, trial…).")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    inclusion_criteria = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    exclusion_criteria = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    date_start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    protocol_number = forms.CharField(required=False, max_length=100)
    deidentification = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="De-identification",
        help_text="How the data were de-identified (e.g. HIPAA Safe Harbor, expert determination).")
    file = forms.FileField(required=False, help_text="CSV or Parquet. Leave empty to paste the "
                           "output of `attest profile` below instead.")
    store_file = forms.BooleanField(required=False, label="Keep the raw file on the server",
                                    help_text="Off by default: only the hash and profile are kept.")
    profile_json = JSONTextField(label="Profile from `attest profile`", expect=dict,
                                 help_text="The JSON printed by `attest profile FILE`.")

    def clean(self):
        data = super().clean()
        if not data.get("file") and not data.get("profile_json"):
            raise forms.ValidationError("Upload the data file or paste its profile.")
        return data


class VersionRegisterForm(forms.Form):
    artifact = forms.FileField(help_text="A .skops or .onnx file. Pickle and joblib files are "
                               "refused.")
    artifact_format = forms.ChoiceField(
        label="Format", required=False,
        choices=[("", "From the file name")] + list(ArtifactFormat.choices))
    dataset = forms.ChoiceField(label="Training dataset version")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    features = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text="Input features, one per line or comma-separated. Empty: the names the model "
                  "was fitted with, or every dataset column. Types, ranges and categories default "
                  "from the training profile.")
    input_schema = JSONTextField(required=False, expect=list, label="Input schema (JSON, advanced)",
                                 help_text="Overrides the feature list: a list of {name, type, unit, "
                                 "required, min, max, categories, missing}.")
    labels = forms.CharField(required=False, help_text="Output labels in the model's class order, "
                             "comma-separated. Empty: the model's own classes.")
    positive_label = forms.CharField(required=False)
    score_meaning = forms.CharField(required=False)
    confidence_threshold = forms.FloatField(initial=0.8, min_value=0, max_value=1,
                                            help_text="Below this confidence a prediction goes to "
                                            "human review.")
    ood_policy = forms.ChoiceField(choices=OodPolicy.choices, initial=OodPolicy.REVIEW,
                                   label="Out-of-distribution inputs")
    code_reference = forms.CharField(required=False, max_length=300,
                                     help_text="Repository and commit, e.g. git@…:lab/model@3f2a1c9")
    hyperparameters = JSONTextField(expect=dict)
    metrics = JSONTextField(expect=dict, help_text='{"overall": {"auc": 0.91}, "subgroups": '
                            '[{"name": "age ≥ 65", "n": 120, "metrics": {"auc": 0.88}}]}')
    model_card = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}),
                                 help_text=MODEL_CARD_HELP)
    runbook = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}),
                              help_text="Markdown: how to redeploy, roll back and retrain.")

    def __init__(self, *args, datasets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [("", "— choose —")] + [
            (str(d.pk), f"{d.name} @ {d.version} ({d.row_count:,} rows)") for d in datasets]

    def metadata(self) -> dict:
        data = self.cleaned_data
        meta: dict = {"dataset": int(data["dataset"]),
                      "confidence_threshold": data["confidence_threshold"],
                      "ood_policy": data["ood_policy"]}
        if data.get("artifact_format"):
            meta["format"] = data["artifact_format"]
        if data.get("input_schema") is not None:
            meta["input_schema"] = data["input_schema"]
        elif lines(data.get("features", "")):
            meta["input_schema"] = lines(data["features"])
        output = {}
        if lines(data.get("labels", "")):
            output["labels"] = lines(data["labels"])
        for key in ("positive_label", "score_meaning"):
            if data.get(key):
                output[key] = data[key]
        if output:
            meta["output_schema"] = output
        for key in ("description", "code_reference", "model_card", "runbook"):
            if data.get(key):
                meta[key] = data[key]
        for key in ("hyperparameters", "metrics"):
            if data.get(key) is not None:
                meta[key] = data[key]
        return meta


class VersionEditForm(forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    confidence_threshold = forms.FloatField(min_value=0, max_value=1)
    ood_policy = forms.ChoiceField(choices=OodPolicy.choices, label="Out-of-distribution inputs")
    code_reference = forms.CharField(required=False, max_length=300)
    input_schema = JSONTextField(expect=list, label="Input schema (JSON)")
    hyperparameters = JSONTextField(expect=dict)
    metrics = JSONTextField(expect=dict)
    model_card = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 10}),
                                 help_text=MODEL_CARD_HELP)
    runbook = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}),
                              help_text="Markdown.")

    def changes(self, version) -> dict:
        data = self.cleaned_data
        out = {}
        for key in ("description", "confidence_threshold", "ood_policy", "code_reference",
                    "model_card", "runbook"):
            if data.get(key) != getattr(version, key):
                out[key] = data.get(key) or ("" if key not in ("confidence_threshold",) else 0.0)
        for key in ("input_schema", "hyperparameters", "metrics"):
            if data.get(key) is not None and data[key] != getattr(version, key):
                out[key] = data[key]
        return out


# Map error paths from services ("metadata.input_schema.3.min") to form fields.
_FIELD_ROOTS = {
    "metadata.input_schema": "input_schema", "metadata.output_schema": "labels",
    "metadata.dataset": "dataset", "metadata.format": "artifact_format",
    "metadata.metrics": "metrics",
    "metadata.hyperparameters": "hyperparameters", "metadata.model_card": "model_card",
    "metadata.runbook": "runbook", "metadata.confidence_threshold": "confidence_threshold",
    "metadata.ood_policy": "ood_policy", "metadata.code_reference": "code_reference",
    "metadata.description": "description", "profile": "profile_json", "columns": "profile_json",
    "sha256": "profile_json", "row_count": "profile_json", "user": "username",
}


def add_service_errors(form: forms.Form, error: ApplicationError) -> None:
    """Show every problem a service reported next to the field it concerns."""
    for item in error.items:
        target = None
        if item.field:
            for prefix, name in _FIELD_ROOTS.items():
                if item.field == prefix or item.field.startswith(prefix + "."):
                    target = name
                    break
            if target is None:
                root = item.field.split(".")[0]
                target = root if root in form.fields else None
        if target == "input_schema" and "input_schema" in form.fields and not form.data.get(
                "input_schema") and "features" in form.fields:
            target = "features"
        message = item.message if not item.field or target else f"{item.field}: {item.message}"
        form.add_error(target if target in form.fields else None, message)


class GrantForm(forms.Form):
    username = forms.CharField(max_length=150, label="User (username)")
    role = forms.ChoiceField(choices=[])

    def __init__(self, *args, admin: bool = False, **kwargs):
        from .roles import SIGNING_ROLES, ModelRole

        super().__init__(*args, **kwargs)
        self.fields["role"].choices = ModelRole.choices
        if not admin:
            self.fields["role"].help_text = (
                "Signing roles (" + ", ".join(ModelRole(r).label for r in sorted(SIGNING_ROLES))
                + ") are granted by administrators only.")


class SignoffForm(forms.Form):
    meaning = forms.ChoiceField(choices=[], label="I sign as")
    decision = forms.ChoiceField(choices=[("approve", "Approve the release"),
                                          ("reject", "Reject the release")],
                                 widget=forms.RadioSelect)
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="Required when you reject.")
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
                               strip=False, label="Your password",
                               help_text="Re-entering your password signs this version "
                                         "electronically, bound to the content hash above.")
    content_hash = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, meanings=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meaning"].choices = [(m, m.replace("_", " ")) for m in meanings]


class RollbackForm(forms.Form):
    to_version = forms.TypedChoiceField(coerce=int, choices=[], label="Roll back to")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Recorded in the audit trail with the rollback.")

    def __init__(self, *args, candidates=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_version"].choices = [
            (v.number, f"v{v.number} ({v.get_state_display().lower()})") for v in candidates]


class PolicyForm(forms.Form):
    required_signoffs = forms.CharField(
        label="Release policy",
        help_text="Sign-off meanings each release needs, comma-separated (pi_approval is signed "
                  "by approvers, irb_approval by IRB members; other meanings by either). Each "
                  "is signed by a different person. Applies to versions submitted from now on; "
                  "a version in review keeps the policy it was submitted under.")


class TrustedTypeForm(forms.Form):
    """Add (name + reason) or remove (name) one entry of the skops allowlist."""

    action = forms.ChoiceField(choices=[("add", "add"), ("remove", "remove")],
                               widget=forms.HiddenInput)
    name = forms.CharField(max_length=300, label="Type name",
                           widget=forms.TextInput(attrs={"class": "mono"}),
                           help_text="Exact dotted name, as skops.io.get_untrusted_types "
                                     "reports it, e.g. sklearn.tree._tree.Tree.")
    reason = forms.CharField(max_length=500, required=False,
                             help_text="Why model files may hold it (shown to uploaders).")
