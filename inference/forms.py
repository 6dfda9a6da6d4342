"""Forms generated from a version's input schema, and the review decision form."""

from __future__ import annotations

import re

from django import forms
from django.forms.boundfield import BoundField
from django.utils.functional import cached_property

from core.numbers import range_text
from registry.schema import boolean_value

from .models import OverrideReason, ReviewDecision

# What the form reads as a number: ASCII digits, at most one dot for decimals, an
# optional exponent. float() would also take "1_000", full-width digits, "nan" and
# "inf", and the comma once turned into a dot made "1,001" (a thousands separator)
# 1.001: anything else is sent as typed, and refused as not a number.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
NUMBER_HINT = ("Type digits with a dot for decimals and no thousands separator, "
               "e.g. 1001 or 14.5.")


class _SafeIdBoundField(BoundField):
    """Feature names may hold spaces and symbols, which an HTML id may not: the id
    (and so the label's ``for`` and the ``aria-describedby`` targets) escapes them."""

    @cached_property
    def auto_id(self):
        raw = super().auto_id
        return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"_{ord(m.group()):x}_", raw) if raw else raw


def _label(feature: dict) -> str:
    unit = f" ({feature['unit']})" if feature.get("unit") else ""
    return f"{feature['name']}{unit}"


def _help(feature: dict) -> str:
    parts = []
    if feature.get("description"):
        parts.append(feature["description"])
    if feature["type"] in ("number", "integer") and (feature.get("min") is not None
                                                     or feature.get("max") is not None):
        unit = f" {feature['unit']}" if feature.get("unit") else ""
        parts.append(f"Validated range {range_text(feature.get('min'), feature.get('max'), unit)}.")
    if not feature.get("required", True):
        parts.append("Optional.")
    elif feature.get("missing") == "impute":
        parts.append("Leave empty to use the training median.")
    return " ".join(parts)


class PredictionForm(forms.Form):
    """One field per input feature, typed from the schema; the service validates."""

    bound_field_class = _SafeIdBoundField

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
                # Text, not a closed choice: inputs() reads it by the rule every input path
                # uses (true/false, 1/0), and the service refuses anything else by name.
                field = forms.CharField(widget=forms.Select(choices=[
                    ("", "—"), ("true", "yes"), ("false", "no")]), **common)
            else:
                attrs = {"step": "any" if kind == "number" else "1", "inputmode": "decimal"}
                if feature.get("min") is not None or feature.get("max") is not None:
                    attrs["placeholder"] = range_text(feature.get("min"), feature.get("max"))
                field = forms.CharField(widget=forms.TextInput(attrs=attrs), **common)
            self.fields[name] = field

    def number_hint(self, name: str) -> str | None:
        """How to type a number, for a numeric field whose text the form did not read."""
        feature = next((f for f in self.schema if f["name"] == name), None)
        if feature is None or feature["type"] not in ("number", "integer"):
            return None
        text = str(self.data.get(name, "")).strip()
        return NUMBER_HINT if text and not _PLAIN_NUMBER.fullmatch(text) else None

    def inputs(self) -> dict:
        """Values as the API would receive them: numbers parsed, empty fields left out."""
        data = {}
        for feature in self.schema:
            name, kind = feature["name"], feature["type"]
            value = self.cleaned_data.get(name)
            if value in (None, ""):
                continue
            if kind in ("number", "integer"):
                text = str(value).strip()
                if not _PLAIN_NUMBER.fullmatch(text):
                    data[name] = value  # the service reports it as not a number
                    continue
                number = float(text)
                data[name] = int(number) if kind == "integer" and number.is_integer() else number
            elif kind == "boolean":
                parsed = boolean_value(value, text=True)
                data[name] = value if parsed is None else parsed  # text: refused by name
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
