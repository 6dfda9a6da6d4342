"""Server-rendered SVG charts an IRB can read, each with a text alternative.

Every chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that says in
words what it shows (the largest values, the thresholds crossed), and comes with the
rows of a data table the page renders beneath it. Series differ by colour *and* by
dash pattern and marker shape, so they read in greyscale and for colour-blind readers.
No JavaScript, no external assets: the page is the same in a browser and in the
dossier's PDF.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from html import escape

from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 680, 240
MARGIN = {"left": 56, "right": 16, "top": 28, "bottom": 58}
# Okabe–Ito colours, distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 4", "10 4")
MARKERS = ("circle", "square", "triangle", "diamond", "circle", "square")


@dataclass
class Chart:
    svg: SafeString
    title: str
    summary: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def _fmt(value: float | None, kind: str = "g") -> str:
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "tick_pct":  # a round tick: 25%, 2.5%
        return f"{value * 100:.3g}%"
    if kind == "psi":
        return f"{value:.3f}"
    if kind == "count":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:.3g}"
    return f"{value:.3g}"


def _marker(shape: str, x: float, y: float, color: str) -> str:
    if shape == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{color}"/>'
    if shape == "triangle":
        return (f'<polygon points="{x:.1f},{y - 4:.1f} {x - 4:.1f},{y + 3:.1f} {x + 4:.1f},'
                f'{y + 3:.1f}" fill="{color}"/>')
    if shape == "diamond":
        return (f'<polygon points="{x:.1f},{y - 4:.1f} {x - 4:.1f},{y:.1f} {x:.1f},{y + 4:.1f} '
                f'{x + 4:.1f},{y:.1f}" fill="{color}"/>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>'


def _frame(title: str, desc: str, body: list[str], *, height: int = HEIGHT) -> SafeString:
    # The ids come from the chart's own content, not a counter: the same figures draw the
    # same SVG in any process, so a dossier snapshot holding it is a function of the
    # evidence alone (and two charts on one page still get different ids).
    n = hashlib.sha256("\x00".join([title, desc, *body]).encode()).hexdigest()[:12]
    return mark_safe(  # noqa: S308 - every text below went through escape()
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="chart-t{n} chart-d{n}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="DejaVu Sans, sans-serif" font-size="11">'
        f'<title id="chart-t{n}">{escape(title)}</title><desc id="chart-d{n}">{escape(desc)}</desc>'
        + "".join(body) + "</svg>")


def line_chart(*, title: str, x_labels: list[str], series: list[dict], y_kind: str = "g",
               thresholds: list[tuple[float, str]] = (), y_label: str = "",
               y_max: float | None = None, summary: str = "") -> Chart:
    """``series``: [{"name", "values": [float | None per x]}]; gaps where None."""
    left, right = MARGIN["left"], WIDTH - MARGIN["right"]
    top, bottom = MARGIN["top"], HEIGHT - MARGIN["bottom"]
    values = [v for s in series for v in s["values"] if v is not None]
    peak = max([*values, *(t for t, _ in thresholds), 1e-9])
    ticks = ([y_max * k / 4 for k in range(5)] if y_max is not None
             else _ticks(peak, integer=y_kind == "count"))
    top_value = ticks[-1]
    # tick labels: PSI's values keep three decimals, its round ticks need none
    tick_kind = "g" if y_kind == "psi" else y_kind
    n = max(1, len(x_labels) - 1)

    def x(i: int) -> float:
        return left + (right - left) * i / n

    def y(v: float) -> float:
        return bottom - (bottom - top) * min(v, top_value) / top_value

    body = [f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#555"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#555"/>']
    for v in ticks:
        body.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
                    f'{escape(_fmt(v, tick_kind))}</text>')
        body.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{right}" y2="{y(v):.1f}" '
                    'stroke="#ddd" stroke-width="0.5"/>')
    step = max(1, len(x_labels) // 6)
    for i, label in enumerate(x_labels):
        if i % step == 0 or i == len(x_labels) - 1:
            body.append(f'<text x="{x(i):.1f}" y="{bottom + 16}" text-anchor="middle">'
                        f'{escape(label[5:] if len(label) == 10 else label)}</text>')
    placed: list[tuple[float, float]] = []  # (y, left end) of the threshold labels so far
    labels: list[str] = []
    for value, label in thresholds:
        body.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{right}" y2="{y(value):.1f}" '
                    'stroke="#999" stroke-dasharray="4 4"/>')
        # thresholds close together on a tall axis: put the label left of the one before
        # instead of over it (11 px type is about 6.5 px a character)
        end = min([right - 2, *(start - 10 for ly, start in placed if abs(ly - y(value)) < 12)])
        placed.append((y(value), end - 6.5 * len(label)))
        # drawn over the series (below), on a white ground, so a line never hides it
        labels.append(f'<rect x="{end - 6.5 * len(label) - 2:.1f}" y="{y(value) - 13:.1f}" '
                      f'width="{6.5 * len(label) + 4:.1f}" height="12" fill="#fff" '
                      'fill-opacity="0.85"/>'
                      f'<text x="{end:.1f}" y="{y(value) - 3:.1f}" text-anchor="end" '
                      f'fill="#555">{escape(label)}</text>')
    for k, s in enumerate(series):
        color, dash, shape = PALETTE[k % 7], DASHES[k % 6], MARKERS[k % 6]
        segment: list[str] = []
        for i, v in enumerate(s["values"]):
            if v is None:
                if len(segment) > 1:
                    body.append(_polyline(segment, color, dash))
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(v):.1f}")
            body.append(_marker(shape, x(i), y(v), color))
        if len(segment) > 1:
            body.append(_polyline(segment, color, dash))
        lx = left + 8 + (k % 3) * 200
        ly = bottom + 34 + (k // 3) * 14
        body.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 22}" y2="{ly - 4}" '
                    f'stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>'
                    + _marker(shape, lx + 11, ly - 4, color)
                    + f'<text x="{lx + 28}" y="{ly}">{escape(s["name"][:28])}</text>')
    body += labels
    if y_label:
        body.append(f'<text x="{left}" y="{top - 10}">{escape(y_label)}</text>')
    rows = [[label, *[_fmt(s["values"][i], y_kind) for s in series]]
            for i, label in enumerate(x_labels)]
    return Chart(_frame(title, summary or title, body), title, summary or title,
                 ["Day", *[s["name"] for s in series]], rows)


def _ticks(peak: float, *, integer: bool = False) -> list[float]:
    """Round ticks from 0 to just above ``peak``: the smallest step of 1, 2, 2.5 or 5 × a
    power of ten that needs at most five intervals (whole steps only when ``integer``:
    counts). Nothing to show (a peak of 0) gives 0 to 1."""
    import math

    if peak <= 1e-9:
        return [0.0, 1.0]
    reach = peak * 1.05
    power = 10 ** math.floor(math.log10(reach / 5))
    for step in (m * power for m in (1, 2, 2.5, 5, 10, 20)):
        if integer and (step < 1 or not float(step).is_integer()):
            continue
        intervals = math.ceil(reach / step - 1e-9)
        if intervals <= 5:
            return [round(step * k, 12) for k in range(intervals + 1)]
    return [0.0, float(math.ceil(reach))]


def _nice(value: float) -> float:
    """The next round number at or above ``value`` (1, 2, 2.5 or 5 × a power of ten)."""
    import math

    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _polyline(points: list[str], color: str, dash: str) -> str:
    return (f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" '
            f'stroke-width="2" stroke-dasharray="{dash}"/>')


def drift_chart(series: dict, thresholds: dict) -> Chart:
    """Daily PSI of the features that drifted most, against the thresholds. Days with
    too few values for a verdict are gaps (their PSI is noise, not drift)."""
    days = [d["day"] for d in series["days"]]

    def judged(values: dict) -> list:
        return [values.get(day, (None, ""))[0] if values.get(day, (None, ""))[1]
                not in ("no_data", "") else None for day in days]

    def rank(item) -> tuple:
        values = judged(item[1])
        alerts = sum(1 for day in days if item[1].get(day, (None, ""))[1] == "alert")
        return (-alerts, -max((v or 0) for v in values))

    ranked = sorted(series["drift"].items(), key=rank)[:5]
    lines = [{"name": name, "values": judged(values)} for name, values in ranked]
    warn, alert = thresholds["data_drift_psi"]["warning"], thresholds["data_drift_psi"]["alert"]
    alert_days = {name: sum(1 for day in days if values.get(day, (None, ""))[1] == "alert")
                  for name, values in ranked}
    crossed = [f"{name} ({n} day{'s' if n != 1 else ''})" for name, n in alert_days.items() if n]
    summary = (f"Daily PSI over {len(days)} days for the {len(lines)} features that drifted "
               f"most; warning at {warn}, alert at {alert}; days with too few values for a "
               "verdict are left out. "
               + (f"Days in alert: {', '.join(crossed)}." if crossed else
                  "No feature was in alert on any day."))
    return line_chart(title="Feature drift per day (PSI against the training profile)",
                      x_labels=days, series=lines, y_kind="psi", summary=summary,
                      thresholds=[(warn, f"warning {warn}"), (alert, f"alert {alert}")],
                      y_label="PSI")


def rates_chart(series: dict) -> Chart:
    days = [d["day"] for d in series["days"]]
    lines = [{"name": "review rate", "values": [d.get("review_rate") for d in series["days"]]},
             {"name": "override rate", "values": [d.get("override_rate")
                                                  for d in series["days"]]},
             {"name": "OOD rate", "values": [d.get("ood_rate") for d in series["days"]]}]
    total = sum(d.get("predictions") or 0 for d in series["days"])
    summary = (f"{total} live predictions over {len(days)} days. Share routed to review, "
               "share of decided reviews overridden and share flagged out of distribution, "
               "per day.")
    chart = line_chart(title="Review, override and out-of-distribution rates per day",
                       x_labels=days, series=lines, y_kind="pct", summary=summary,
                       y_label="share of the day's predictions or reviews")
    chart.columns.insert(1, "Predictions")
    for row, day in zip(chart.rows, series["days"], strict=True):
        row.insert(1, str(day.get("predictions") or 0))
    return chart


def performance_chart(series: dict) -> Chart:
    days = [d["day"] for d in series["days"]]
    lines = [{"name": "estimated accuracy", "values": [d.get("estimated_accuracy")
                                                       for d in series["days"]]},
             {"name": "observed accuracy", "values": [
                 d.get("observed_accuracy") if (d.get("outcomes") or 0) >= 10 else None
                 for d in series["days"]]}]
    summary = ("Accuracy per day: estimated from the scores alone (assumes calibrated scores), "
               "and observed from outcomes where a day has at least 10.")
    chart = line_chart(title="Estimated and observed accuracy per day", x_labels=days,
                       series=lines, y_kind="pct", summary=summary, y_max=1.0,
                       y_label="accuracy")
    chart.columns.append("Outcomes")
    for row, day in zip(chart.rows, series["days"], strict=True):
        row.append(str(day.get("outcomes") or 0))
    return chart


def volume_chart(series: dict) -> Chart:
    """Live predictions per day, and the outcomes recorded so far for each day's
    predictions (counted on the day the prediction was made, not the day it arrived)."""
    days = [d["day"] for d in series["days"]]
    lines = [{"name": "live predictions", "values": [d.get("predictions") or 0
                                                     for d in series["days"]]},
             {"name": "outcomes received", "values": [d.get("outcomes") or 0
                                                      for d in series["days"]]}]
    predictions = sum(lines[0]["values"])
    outcomes = sum(lines[1]["values"])
    share = f" ({outcomes / predictions:.1%} of them)" if predictions else ""
    summary = (f"{predictions} live predictions over {len(days)} days; outcomes recorded for "
               f"{outcomes}{share}, counted on the day of the prediction they belong to.")
    return line_chart(title="Live predictions and outcomes received per day", x_labels=days,
                      series=lines, y_kind="count", summary=summary,
                      y_label="predictions per day")


def histogram_chart(drift: dict) -> Chart:
    """A feature's live distribution over the training profile's bins, against training."""
    labels = drift.get("labels") or []
    reference = list(drift.get("reference") or [])
    counts = drift.get("counts")
    name = drift["feature"]
    title = f"{name}: live values against training"
    if counts is None or not labels:
        text = drift.get("withheld") or "No live values in this window."
        return Chart(_frame(title, text, [f'<text x="20" y="40">{escape(text)}</text>']),
                     title, text)
    if drift["kind"] == "numeric":
        reference = [0.0, *reference, 0.0]
    total = sum(counts) or 1
    live = [c / total for c in counts]
    left, right = MARGIN["left"], WIDTH - MARGIN["right"]
    top, bottom = MARGIN["top"], HEIGHT - MARGIN["bottom"] - 24
    ticks = _ticks(max([*live, *reference, 1e-9]))
    peak = ticks[-1]
    slot = (right - left) / len(labels)

    def y(v: float) -> float:
        return bottom - (bottom - top) * v / peak

    body = [f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#555"/>',
            '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#777" '
            'stroke-width="2"/></pattern></defs>']
    for v in ticks:
        body.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
                    f'{_fmt(v, "tick_pct")}</text>')
    for i, label in enumerate(labels):
        x0 = left + i * slot
        w = slot * 0.4
        body.append(f'<rect x="{x0 + slot * 0.08:.1f}" y="{y(reference[i]):.1f}" width="{w:.1f}" '
                    f'height="{bottom - y(reference[i]):.1f}" fill="url(#hatch)" stroke="#555"/>')
        body.append(f'<rect x="{x0 + slot * 0.5:.1f}" y="{y(live[i]):.1f}" width="{w:.1f}" '
                    f'height="{bottom - y(live[i]):.1f}" fill="{PALETTE[0]}"/>')
        if len(labels) <= 24:
            cx = x0 + slot / 2
            body.append(f'<text x="{cx:.1f}" y="{bottom + 10}" text-anchor="end" font-size="9" '
                        f'transform="rotate(-35 {cx:.1f} {bottom + 10})">'
                        f'{escape(label[:18])}</text>')
    body.append(f'<rect x="{left + 8}" y="{HEIGHT - 16}" width="12" height="10" '
                'fill="url(#hatch)" stroke="#555"/>'
                f'<text x="{left + 26}" y="{HEIGHT - 7}">training (profile)</text>'
                f'<rect x="{left + 160}" y="{HEIGHT - 16}" width="12" height="10" '
                f'fill="{PALETTE[0]}"/><text x="{left + 178}" y="{HEIGHT - 7}">live, this window '
                f'({total} values)</text>')
    moved = max(range(len(labels)), key=lambda i: abs(live[i] - reference[i]))
    summary = (f"Share of {name}'s values per training-profile bin, training (hatched) against "
               f"this window (solid). The largest difference is in bin {labels[moved]}: "
               f"{live[moved]:.1%} live against {reference[moved]:.1%} in training. "
               f"PSI {_fmt(drift.get('psi'), 'psi')}.")
    rows = [[label, f"{reference[i]:.1%}", f"{live[i]:.1%}", str(counts[i])]
            for i, label in enumerate(labels)]
    return Chart(_frame(title, summary, body), title, summary,
                 ["Bin", "Training share", "Live share", "Live count"], rows)


def calibration_chart(live: list[dict], validation: list[dict], *, withheld: int = 0,
                      minimum: int | None = None, live_ece: float | None = None) -> Chart:
    """Observed rate against mean score per bin: live outcomes and validation.

    ``live`` holds only the bins that may be shown; ``withheld`` says how many live bins
    were left out for having fewer than ``minimum`` cases (the caller's small-cell rule,
    ``monitoring.selectors.live_calibration``), and ``live_ece`` is the ECE over every
    live outcome, withheld bins included (an aggregate, safe to state)."""
    left, top, side = MARGIN["left"], MARGIN["top"], 280
    right, bottom = left + side, top + side

    def x(v: float) -> float:
        return left + side * v

    def y(v: float) -> float:
        return bottom - (bottom - top) * v

    body = [f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#999" '
            'stroke-dasharray="4 4"/>',
            f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#555"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#555"/>',
            f'<text x="{(left + right) / 2}" y="{bottom + 30}" text-anchor="middle">mean score'
            '</text>', f'<text x="{left}" y="{top - 10}">observed rate of the positive label'
                       '</text>']
    for k in range(6):
        v = k / 5
        body.append(f'<text x="{x(v):.1f}" y="{bottom + 14}" text-anchor="middle">{v:.1f}</text>')
        body.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for k, (name, bins) in enumerate((("live outcomes", live), ("validation", validation))):
        if not bins:
            continue
        color, dash, shape = PALETTE[k], DASHES[k], MARKERS[k]
        points = [f"{x(b['mean_score']):.1f},{y(b['observed_rate']):.1f}" for b in bins]
        if len(points) > 1:
            body.append(_polyline(points, color, dash))
        body += [_marker(shape, x(b["mean_score"]), y(b["observed_rate"]), color) for b in bins]
        lx = right + 24
        body.append(f'<line x1="{lx}" y1="{top + 20 + k * 18}" x2="{lx + 22}" '
                    f'y2="{top + 20 + k * 18}" stroke="{color}" stroke-width="2" '
                    f'stroke-dasharray="{dash}"/>'
                    + _marker(shape, lx + 11, top + 20 + k * 18, color)
                    + f'<text x="{lx + 28}" y="{top + 24 + k * 18}">{name}</text>')
    body.append(f'<text x="{right + 24}" y="{top + 60}" fill="#555">dashed diagonal: perfectly '
                'calibrated</text>')

    def gap(bins: list[dict]) -> str:
        total = sum(b.get("n", 0) for b in bins)
        if not total:
            return "—"
        return f"{sum(b['n'] * abs(b['observed_rate'] - b['mean_score']) for b in bins) / total:.3f}"

    live_gap = _fmt(live_ece, "psi") if live_ece is not None else gap(live)
    held = (f" {withheld} live bin{'s' if withheld != 1 else ''} with fewer than {minimum} "
            "cases withheld (small cells could single out a patient); the ECE counts them."
            if withheld else "")
    summary = (f"Calibration: for each score bin, the share of cases that were positive against "
               f"the mean score. Live outcomes: {len(live)} bins, ECE {live_gap}; validation: "
               + (f"{len(validation)} bins, ECE {gap(validation)}" if validation else
                  "no curve declared in the version's metrics")
               + ". On the diagonal, a score of s "
               f"means a positive outcome s of the time.{held}")
    rows = [[name, f"{b['mean_score']:.3f}", f"{b['observed_rate']:.3f}", str(b.get("n", ""))]
            for name, bins in (("live", live), ("validation", validation)) for b in bins]
    return Chart(_frame("Calibration curve: live outcomes and validation", summary, body,
                        height=bottom + 44),
                 "Calibration curve: live outcomes and validation", summary,
                 ["Curve", "Mean score", "Observed rate", "Cases"], rows)
