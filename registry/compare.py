"""What changes between two versions: the PI review page's comparison."""

from __future__ import annotations

import difflib

from .models import ModelVersion


def _metric_rows(candidate: dict, baseline: dict) -> list[dict]:
    names = sorted(set(candidate) | set(baseline))
    rows = []
    for name in names:
        new, old = candidate.get(name), baseline.get(name)
        delta = (new - old) if isinstance(new, int | float) and isinstance(old, int | float) else None
        rows.append({"name": name, "candidate": new, "baseline": old, "delta": delta})
    return rows


def compare_versions(candidate: ModelVersion, baseline: ModelVersion | None) -> dict:
    """Side by side: metrics overall and per subgroup, schema, dataset and cohort, model card."""
    cand_metrics = candidate.metrics or {}
    base_metrics = (baseline.metrics or {}) if baseline else {}
    overall = _metric_rows(cand_metrics.get("overall", {}), base_metrics.get("overall", {}))
    cand_groups = {g["name"]: g for g in cand_metrics.get("subgroups", [])}
    base_groups = {g["name"]: g for g in base_metrics.get("subgroups", [])}
    subgroups = []
    for name in list(cand_groups) + [n for n in base_groups if n not in cand_groups]:
        c, b = cand_groups.get(name, {}), base_groups.get(name, {})
        subgroups.append({"name": name, "n_candidate": c.get("n"), "n_baseline": b.get("n"),
                          "rows": _metric_rows(c.get("metrics", {}), b.get("metrics", {}))})
    cand_schema = {f["name"]: f for f in candidate.input_schema}
    base_schema = {f["name"]: f for f in baseline.input_schema} if baseline else {}
    schema = []
    for name in list(cand_schema) + [n for n in base_schema if n not in cand_schema]:
        c, b = cand_schema.get(name), base_schema.get(name)
        if b is None:
            change = "added"
        elif c is None:
            change = "removed"
        else:
            keys = sorted(k for k in set(c) | set(b) if c.get(k) != b.get(k))
            change = ", ".join(f"{k}: {b.get(k)!r} → {c.get(k)!r}" for k in keys) or ""
        schema.append({"name": name, "change": change})
    dataset_fields = ("name", "version", "sha256", "row_count", "source", "inclusion_criteria",
                      "exclusion_criteria", "date_start", "date_end", "protocol_number",
                      "deidentification")
    dataset = [{"field": f, "candidate": getattr(candidate.dataset, f),
                "baseline": getattr(baseline.dataset, f) if baseline else None,
                "changed": bool(baseline) and getattr(candidate.dataset, f)
                != getattr(baseline.dataset, f)} for f in dataset_fields]
    card_diff = list(difflib.unified_diff(
        (baseline.model_card if baseline else "").splitlines(), candidate.model_card.splitlines(),
        fromfile=f"v{baseline.number}" if baseline else "(none)",
        tofile=f"v{candidate.number}", lineterm="", n=2))
    settings_rows = [
        {"field": "confidence_threshold", "candidate": candidate.confidence_threshold,
         "baseline": baseline.confidence_threshold if baseline else None},
        {"field": "ood_policy", "candidate": candidate.ood_policy,
         "baseline": baseline.ood_policy if baseline else None},
        {"field": "estimator", "candidate": candidate.estimator or candidate.artifact_format,
         "baseline": (baseline.estimator or baseline.artifact_format) if baseline else None},
    ]
    return {"baseline": baseline, "overall": overall, "subgroups": subgroups, "schema": schema,
            "schema_changed": any(row["change"] for row in schema), "dataset": dataset,
            "card_diff": card_diff, "settings": settings_rows}
