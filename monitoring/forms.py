"""Monitoring forms. They only parse; the services validate and decide."""

from __future__ import annotations

from django import forms

from registry.forms import JSONTextField


class OutcomeUploadForm(forms.Form):
    file = forms.FileField(
        label="Outcomes (CSV)",
        help_text="Comma-separated, UTF-8, with the header prediction_id,outcome,outcome_date: "
                  "the prediction's id as the predict answer gave it, the observed outcome "
                  "(one of the model's labels, or 1 for the positive label and 0 for the "
                  "other) and the date it was observed (YYYY-MM-DD). All rows are recorded, "
                  "or none.")


class PolicyForm(forms.Form):
    thresholds = JSONTextField(
        expect=dict, label="Thresholds (JSON, only what differs from the defaults)",
        help_text='e.g. {"data_drift_psi": {"warning": 0.15, "alert": 0.3}, "p_value": 0.01}')
    subgroups = JSONTextField(
        expect=list, label="Subgroups (JSON)",
        help_text='Live performance per subgroup, e.g. [{"name": "age ≥ 65", "feature": '
                  '"age", "op": ">=", "value": 65}]. op: < <= > >= == != in.')
    cpu_hour_price = forms.CharField(
        required=False, label="Price per CPU-hour (US dollars)",
        help_text="Empty: the deployment's default (ATTEST_MONITORING_CPU_HOUR_PRICE).")
