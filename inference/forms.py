"""Forms generated from a version's input schema, and the review decision form."""

from __future__ import annotations

from django import forms

from .models import OverrideReason, ReviewDecision


def _label(feature: dict) -> str:
    unit = f" ({feature['unit']})" if feature.get("unit") else ""
    return f"{feature['name']}{unit}"


def _help(feature: dict) -> str:
    parts = []
    if feature.get("description"):
        parts.append(feature["description"])
    if feature["type"] in ("number", "integer") and feature.get("min") is not None:
        parts.append(f"Validated range {feature['min']:g}–{feature['max']:g}.")
    if not feature.get("required", True):
        parts.append("Optional.")
    elif feature.get("missing") == "impute":
        parts.append("Leave empty to use the training median.")
    return " ".join(parts)


class PredictionForm(forms.Form):
    """One field per input feature, typed from the schema; the service validates."""

    def __init__(self, *args, schema: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.schema = schema
        for feature in schema:
            name, kind = feature["name"], feature["type"]
            common = {"label": _label(feature), "help_text": _help(feature), "required": False}
            if kind == "category":
                field = forms.ChoiceField(choices=[("", "—")] + [(str(c), str(c)) for c in
                                                                 feature.get("categories", [])],
                                          **common)
            elif kind == "boolean":
                field = forms.TypedChoiceField(choices=[("", "—"), ("true", "yes"),
                                                        ("false", "no")],
                                               coerce=lambda v: v == "true", empty_value=None,
                                               **common)
            else:
                attrs = {"step": "any" if kind == "number" else "1", "inputmode": "decimal"}
                if feature.get("min") is not None:
                    attrs["placeholder"] = f"{feature['min']:g} – {feature['max']:g}"
                field = forms.CharField(widget=forms.TextInput(attrs=attrs), **common)
            self.fields[name] = field

    def inputs(self) -> dict:
        """Values as the API would receive them: numbers parsed, empty fields left out."""
        data = {}
        for feature in self.schema:
            name, kind = feature["name"], feature["type"]
            value = self.cleaned_data.get(name)
            if value in (None, ""):
                continue
            if kind in ("number", "integer"):
                try:
                    number = float(str(value).replace(",", "."))
                    data[name] = int(number) if kind == "integer" and number.is_integer() else number
                except ValueError:
                    data[name] = value  # the service reports it as not a number
            else:
                data[name] = value
        return data


class ReviewDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=ReviewDecision.choices, widget=forms.RadioSelect)
    final_label = forms.ChoiceField(choices=[], required=False,
                                    help_text="For an override: the label you decide on.")
    reason_code = forms.ChoiceField(choices=[("", "—")] + list(OverrideReason.choices),
                                    required=False, label="Reason",
                                    help_text="Required for an override.")
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, labels=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["final_label"].choices = [("", "—")] + [(lb, lb) for lb in labels]
