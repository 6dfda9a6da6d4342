"""How an explanation reads: as an API body, in words, and as a server-rendered SVG.

Input values (and LIME's conditions, which name them) appear only when the caller says
the reader may see them (``view_predictions``, and the raw input not purged); the
contributions are shown to anyone who may see the prediction.
"""

from __future__ import annotations

from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .models import Explanation, ExplanationJob, Method, Units, VersionExplanation
from .space import profile_median, profile_mode

TOP_WORDS = 3
CHART_ROWS = 8
INCREASE, DECREASE = "#b42318", "#1d5fa6"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for people: 3 significant digits, no exponent for ordinary sizes."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        text = f"{value:.{digits}g}"
        if "e" in text and 1e-4 <= abs(value) < 1e9:
            text = f"{value:f}".rstrip("0").rstrip(".")
        return text
    return str(value)


def signed(value: float) -> str:
    return ("+" if value >= 0 else "−") + fmt(abs(value))


def _provenance(row) -> dict:
    return {"explainer": row.explainer, "reason": row.explainer_reason,
            "background_source": row.background_source,
            "background_sha256": row.background_sha256 or None,
            "library_versions": row.library_versions, "parameters": row.parameters,
            "compute_ms": row.compute_ms}


def explanation_as_dict(row: Explanation, *, reveal_values: bool) -> dict:
    body = {"id": str(row.public_id), "method": row.method, "units": row.units,
            "model_version": row.version.number, "input_sha256": row.input_sha256,
            "content": row.content, "content_sha256": row.content_sha256,
            "seed": row.seed, "samples": row.samples,
            "created_at": row.created_at.isoformat(), **_provenance(row),
            "values_purged": row.values is None}
    if reveal_values and row.values is not None:
        body["values"] = row.values
    return body


def job_as_dict(job: ExplanationJob) -> dict:
    return {"id": str(job.public_id), "status": job.status, "method": job.method,
            "parameters": job.parameters, "attempts": job.attempts,
            "progress": {"done": job.progress_done, "total": job.progress_total,
                         "stage": job.stage or None},
            "error": ({"code": job.error_code or "failed", "message": job.error}
                      if job.status == "failed" else None),
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def version_explanation_as_dict(row: VersionExplanation | None,
                                job: ExplanationJob | None) -> dict:
    body: dict[str, Any] = {"status": "completed" if row is not None else (
        job.status if job is not None else "not_requested")}
    if job is not None and row is None:
        body["job"] = job_as_dict(job)
    if row is not None:
        body.update(content=row.content, content_sha256=row.content_sha256,
                    units=row.units, created_at=row.created_at.isoformat(), **_provenance(row))
    return body


# -- words ---------------------------------------------------------------------------------

def _value_text(value: Any, unit: str) -> str:
    text = fmt(value)
    return f"{text} {unit}".strip() if unit and not isinstance(value, bool | str) else text


def _training_text(col: dict, kind: str, unit: str) -> str | None:
    if kind in ("number", "integer"):
        median = profile_median(col)
        return None if median is None else f"training median {_value_text(median, unit)}"
    if kind == "category":
        mode = profile_mode(col)
        return None if mode is None else f"most common in training: {mode}"
    if kind == "boolean":
        share = (col.get("categories") or {}).get("true")
        return None if share is None else f"{round(100 * share)}% yes in training"
    return None


def _scale_words(units: str, positive: str) -> str:
    if units == Units.LOG_ODDS:
        return f"the log-odds of {positive}"
    return f"the probability of {positive}"


def contributions_in_words(row: Explanation, *, schema: list[dict], profile: dict,
                           reveal_values: bool, k: int = TOP_WORDS) -> list[str]:
    """The top ``k`` contributions as sentences, against the training profile, e.g.
    "age 78 years (training median 63 years) raised the probability of sepsis by 0.12"."""
    content = row.content
    positive = content.get("positive_label_name") or content.get("positive_label") or "yes"
    features = {f["name"]: f for f in schema}
    columns = (profile or {}).get("columns", {})
    values = (row.values or {}) if reveal_values else {}
    inputs, conditions = values.get("inputs") or {}, values.get("conditions") or {}
    if row.method == Method.LIME:
        items = [(w["feature"], w["weight"]) for w in content.get("weights", [])]
    else:
        items = [(c["feature"], c["contribution"]) for c in content.get("contributions", [])]
    items.sort(key=lambda item: (-abs(item[1]), item[0]))
    sentences = []
    for name, amount in items[:k]:
        if amount == 0:
            continue
        feature = features.get(name, {})
        kind, unit = feature.get("type", "number"), feature.get("unit") or ""
        direction = "raised" if amount > 0 else "lowered"
        if row.method == Method.LIME:
            subject = conditions.get(name) if name in conditions else f"{name}'s training bin"
            training = _training_text(columns.get(name) or {}, kind, unit) if name in conditions \
                else None
            text = (f"{subject}{f' ({training})' if training else ''} {direction} LIME's local "
                    f"estimate of {_scale_words(row.units, positive)} by {fmt(abs(amount))}")
        else:
            if name in inputs:
                training = _training_text(columns.get(name) or {}, kind, unit)
                subject = f"{name} {_value_text(inputs[name], unit)}" + (
                    f" ({training})" if training else "")
            else:
                subject = name
            text = f"{subject} {direction} {_scale_words(row.units, positive)} by {fmt(abs(amount))}"
        sentences.append(text[0].upper() + text[1:])
    return sentences


# -- the chart -------------------------------------------------------------------------------

def _chart_items(row: Explanation, reveal_values: bool) -> list[tuple[str, float]]:
    content = row.content
    values = (row.values or {}) if reveal_values else {}
    inputs, conditions = values.get("inputs") or {}, values.get("conditions") or {}
    if row.method == Method.LIME:
        raw = [(w["feature"], w["weight"]) for w in content.get("weights", [])]
    else:
        raw = [(c["feature"], c["contribution"]) for c in content.get("contributions", [])]
    raw.sort(key=lambda item: (-abs(item[1]), item[0]))
    items = []
    for name, amount in raw[:CHART_ROWS]:
        if row.method == Method.LIME and name in conditions:
            label = conditions[name]
        elif name in inputs:
            label = f"{name} = {fmt(inputs[name])}"
        else:
            label = name
        items.append((label, float(amount)))
    rest = raw[CHART_ROWS:]
    if rest:
        items.append((f"{len(rest)} other features", float(sum(a for _, a in rest))))
    return items


def explanation_chart(row: Explanation, *, reveal_values: bool, chart_id: str) -> SafeString:
    """An SVG the server draws: a waterfall from the base value to the model's output for
    SHAP (the bars add up), bars from zero for LIME's weights (they do not). Readable
    without JavaScript; its <title> and <desc> carry the text alternative."""
    content = row.content
    items = _chart_items(row, reveal_values)
    positive = content.get("positive_label_name") or content.get("positive_label") or ""
    units = "log-odds" if row.units == Units.LOG_ODDS else "probability"
    waterfall = row.method == Method.SHAP
    width, label_w, row_h, top = 680, 250, 26, 34
    height = top + row_h * (len(items) + (1 if waterfall else 0)) + 24
    plot_l, plot_r = label_w + 10, width - 70
    if waterfall:
        start = float(content["base_value"])
        points, x = [start], start
        for _, amount in items:
            x += amount
            points.append(x)
        lo, hi = min(points), max(points)
    else:
        lo = min([0.0] + [a for _, a in items])
        hi = max([0.0] + [a for _, a in items])
    if hi - lo < 1e-12:
        hi = lo + 1e-12
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad

    def sx(v: float) -> float:
        return plot_l + (v - lo) / (hi - lo) * (plot_r - plot_l)

    title = (f"{'SHAP' if waterfall else 'LIME'} explanation: contributions to the "
             f"{units} of {positive}")
    if waterfall:
        desc_parts = [f"Base value {fmt(content['base_value'])}"] + [
            f"{label} {signed(amount)}" for label, amount in items] + [
            f"model output {fmt(content['output_value'])}"]
    else:
        desc_parts = [f"{label}: weight {signed(amount)}" for label, amount in items]
    desc = "; ".join(desc_parts) + "."
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="explain-chart" role="img" '
           f'viewBox="0 0 {width} {height}" width="100%" '
           f'aria-labelledby="{chart_id}-t {chart_id}-d">',
           f'<title id="{chart_id}-t">{escape(title)}</title>',
           f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
           '<style>text{font:12px "DejaVu Sans",sans-serif;fill:#1f2937}'
           '.small{font-size:11px;fill:#4b5563}</style>']
    axis_at = sx(float(content["base_value"])) if waterfall else sx(0.0)
    out.append(f'<line x1="{axis_at:.1f}" y1="{top - 8}" x2="{axis_at:.1f}" '
               f'y2="{height - 20}" stroke="#9ca3af" stroke-dasharray="3 3"/>')
    heading = (f"base {fmt(content['base_value'])} → output {fmt(content['output_value'])} "
               f"({units} of {positive})" if waterfall else
               f"LIME weights on the {units} of {positive} (not additive)")
    out.append(f'<text x="{plot_l}" y="16" class="small">{escape(heading)}</text>')
    x = float(content["base_value"]) if waterfall else 0.0
    for i, (label, amount) in enumerate(items):
        y = top + i * row_h
        a, b = (x, x + amount) if waterfall else (0.0, amount)
        left, right = sorted((sx(a), sx(b)))
        colour = INCREASE if amount >= 0 else DECREASE
        short = label if len(label) <= 38 else label[:37] + "…"
        out.append(f'<text x="{label_w}" y="{y + 16}" text-anchor="end">{escape(short)}</text>')
        out.append(f'<rect x="{left:.1f}" y="{y + 4}" width="{max(right - left, 1):.1f}" '
                   f'height="{row_h - 8}" fill="{colour}"/>')
        out.append(f'<text x="{right + 4:.1f}" y="{y + 16}" class="small">'
                   f'{escape(signed(amount))}</text>')
        if waterfall:
            x += amount
    if waterfall:
        y = top + len(items) * row_h
        end = sx(float(content["output_value"]))
        out.append(f'<line x1="{end:.1f}" y1="{top - 8}" x2="{end:.1f}" y2="{y + row_h - 4}" '
                   f'stroke="#111827"/>')
        out.append(f'<text x="{label_w}" y="{y + 16}" text-anchor="end">model output</text>')
        out.append(f'<text x="{end + 4:.1f}" y="{y + 16}">'
                   f'{escape(fmt(content["output_value"]))}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every text above is escaped


def _axis_ticks(hi: float) -> list[float]:
    """Four or five round ticks from 0 to at least ``hi``."""
    import math

    raw = hi / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [step * k for k in range(int(math.ceil(hi / step - 1e-9)) + 1)]


def importance_chart(features: list[dict], *, units: str, chart_id: str,
                     rows: int = 12) -> SafeString:
    """Global importance (mean |SHAP| per feature) as horizontal bars, in SVG, on an axis
    in the explainer's units; each bar is labelled with its stored figure."""
    shown = features[:rows]
    width, label_w, row_h, top = 680, 250, 24, 12
    axis_y = top + row_h * len(shown) + 4
    height = axis_y + 40
    plot_l, plot_r = label_w + 10, width - 80
    name = "log-odds" if units == Units.LOG_ODDS else "probability"
    ticks = _axis_ticks(max([f["mean_abs"] for f in shown] + [1e-12]))
    hi = ticks[-1]
    rest = len(features) - len(shown)
    desc = ("; ".join(f"{f['feature']} {fmt(f['mean_abs'])}" for f in shown)
            + (f"; {rest} other features not shown" if rest else "") + ".")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="explain-chart" role="img" '
           f'viewBox="0 0 {width} {height}" width="100%" '
           f'aria-labelledby="{chart_id}-t {chart_id}-d">',
           f'<title id="{chart_id}-t">Global importance: mean |SHAP| ({escape(name)})</title>',
           f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
           '<style>text{font:12px "DejaVu Sans",sans-serif;fill:#1f2937}'
           '.small{font-size:11px;fill:#4b5563}</style>']
    for t in ticks:
        x = plot_l + t / hi * (plot_r - plot_l)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="#e5e7eb" '
                   'stroke-width="0.6"/>')
        out.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" class="small">'
                   f'{escape(fmt(t))}</text>')
    out.append(f'<line x1="{plot_l}" y1="{axis_y}" x2="{plot_r}" y2="{axis_y}" '
               'stroke="#6b7280"/>')
    out.append(f'<text x="{(plot_l + plot_r) / 2:.1f}" y="{axis_y + 32}" text-anchor="middle" '
               f'class="small">mean |SHAP| ({escape(name)}; average size of each feature\'s '
               'contribution)</text>')
    for i, f in enumerate(shown):
        y = top + i * row_h
        w = (f["mean_abs"] / hi) * (plot_r - plot_l)
        label = f["feature"] if len(f["feature"]) <= 38 else f["feature"][:37] + "…"
        out.append(f'<text x="{label_w}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{plot_l}" y="{y + 4}" width="{max(w, 1):.1f}" height="{row_h - 8}" '
                   f'fill="#374151"/>')
        out.append(f'<text x="{plot_l + w + 4:.1f}" y="{y + 15}" class="small">'
                   f'{escape(fmt(f["mean_abs"]))}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every text above is escaped


def reliability_rows(content: dict) -> list[dict]:
    """The four reliability figures against their thresholds (all on a 0–1 scale): LIME
    stability on average and on its worst row, SHAP–LIME feature and sign agreement."""
    stability = content.get("lime_stability") or {}
    agreement = content.get("shap_lime_agreement") or {}
    st, at = stability.get("thresholds") or {}, agreement.get("thresholds") or {}
    k = stability.get("top_k")
    rows = [("LIME stability, mean over rows", stability.get("mean"), st.get("mean"),
             f"Jaccard index of the top {k} between seeds, mean of {stability.get('rows')} rows"),
            ("LIME stability, least stable row", stability.get("worst"), st.get("worst"),
             f"Jaccard index of the top {k} between seeds, worst row"),
            ("SHAP–LIME feature agreement", agreement.get("feature_agreement"),
             at.get("feature_agreement"),
             f"share of SHAP's top {agreement.get('top_k')} also in LIME's"),
            ("SHAP–LIME sign agreement", agreement.get("sign_agreement"),
             at.get("sign_agreement"), "share of the shared features pushing the same way")]
    return [{"label": label, "value": value, "threshold": threshold, "statistic": statistic,
             "meets": (None if value is None or threshold is None else value >= threshold)}
            for label, value, threshold, statistic in rows]


def reliability_chart(content: dict, *, chart_id: str) -> SafeString:
    """The reliability figures as bars on a shared 0–1 scale, each with the threshold it
    must reach drawn across it, and in words beside it ("meets ≥ 0.8" / "below 0.8"), so
    the chart reads without colour."""
    rows = reliability_rows(content)
    width, label_w, row_h, top = 680, 230, 26, 10
    plot_l, plot_r = label_w + 10, width - 150
    axis_y = top + row_h * len(rows) + 2
    height = axis_y + 22

    def sx(v: float) -> float:
        return plot_l + max(0.0, min(1.0, v)) * (plot_r - plot_l)

    def verdict(r: dict) -> str:
        if r["value"] is None:
            return "not computed (no shared features)"
        if r["meets"] is None:
            return fmt(r["value"], 2)
        word = "meets ≥" if r["meets"] else "below"
        return f"{r['value']:.2f} ({word} {fmt(r['threshold'])})"

    desc = "; ".join(f"{r['label']}: {verdict(r)}" for r in rows) + "."
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="explain-chart" role="img" '
           f'viewBox="0 0 {width} {height}" width="100%" '
           f'aria-labelledby="{chart_id}-t {chart_id}-d">',
           f'<title id="{chart_id}-t">Explanation reliability against its thresholds</title>',
           f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
           '<style>text{font:12px "DejaVu Sans",sans-serif;fill:#1f2937}'
           '.small{font-size:11px;fill:#4b5563}</style>']
    for k in range(5):
        x = sx(k / 4)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="#e5e7eb" '
                   'stroke-width="0.6"/>')
        out.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" class="small">'
                   f'{k / 4:g}</text>')
    out.append(f'<line x1="{plot_l}" y1="{axis_y}" x2="{plot_r}" y2="{axis_y}" '
               'stroke="#6b7280"/>')
    out.append(f'<text x="{plot_r + 8}" y="{axis_y + 14}" class="small">black mark: threshold'
               '</text>')
    for i, r in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text x="{label_w}" y="{y + 16}" text-anchor="end">'
                   f'{escape(r["label"])}</text>')
        if r["value"] is not None:  # light bars, so the threshold mark reads across them
            fill = "#9ca3af" if r["meets"] is not False else "#f4a09a"
            length = max(sx(r["value"]) - plot_l, 1)
            out.append(f'<rect x="{plot_l}" y="{y + 6}" width="{length:.1f}" '
                       f'height="{row_h - 12}" fill="{fill}"/>')
        if r["threshold"] is not None:
            tx = sx(r["threshold"])
            out.append(f'<line x1="{tx:.1f}" y1="{y + 1}" x2="{tx:.1f}" y2="{y + row_h - 1}" '
                       'stroke="#111827" stroke-width="2.5"/>')
        out.append(f'<text x="{plot_r + 8}" y="{y + 16}" class="small">'
                   f'{escape(verdict(r))}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every text above is escaped


def explanation_view(row: Explanation, *, schema: list[dict], profile: dict,
                     reveal_values: bool) -> dict:
    """What the prediction page and the review item show of one explanation."""
    content = row.content
    table = []
    if row.method == Method.LIME:
        pairs = [(w["feature"], w["weight"]) for w in content.get("weights", [])]
    else:
        pairs = [(c["feature"], c["contribution"]) for c in content.get("contributions", [])]
    values = (row.values or {}) if reveal_values else {}
    for name, amount in sorted(pairs, key=lambda p: (-abs(p[1]), p[0])):
        table.append({"feature": name, "amount": amount, "signed": signed(amount),
                      "value": (values.get("inputs") or {}).get(name) if values else None,
                      "condition": (values.get("conditions") or {}).get(name) if values
                      else None})
    return {"row": row, "content": content, "table": table,
            "words": contributions_in_words(row, schema=schema, profile=profile,
                                            reveal_values=reveal_values),
            "chart": explanation_chart(row, reveal_values=reveal_values,
                                       chart_id=f"ex-{row.public_id.hex[:12]}"),
            "revealed": reveal_values and row.values is not None,
            "log_odds": row.units == Units.LOG_ODDS}
