"""Template filters for the clinician pages."""

from __future__ import annotations

import re

from django import template

from ..validation import OOD_FEATURE_TEXTS

register = template.Library()

_LOW = re.compile(r"low_confidence: ([0-9.]+) < threshold ([0-9.]+)")


def _phrase(part: str) -> str:
    low = _LOW.fullmatch(part)
    if low:
        return f"confidence {low.group(1)}, below the threshold {low.group(2)}"
    if part == "ood:tail":
        return "many features lie beyond the training data's 1st–99th percentiles"
    if part.startswith("ood:"):
        code, _, feature = part[4:].partition(":")
        if code in OOD_FEATURE_TEXTS and feature:
            return OOD_FEATURE_TEXTS[code].format(feature)
    return part


@register.filter
def reason_text(reason: str) -> str:
    """A prediction's routing reason (``low_confidence: 0.655 < threshold 0.850;
    ood:out_of_range:mean radius``, as logged) in words, for people."""
    if not reason:
        return ""
    text = "; ".join(_phrase(p.strip()) for p in reason.split("; ") if p.strip())
    return text[:1].upper() + text[1:]
