from __future__ import annotations

import markdown as md
import nh3
from django import template
from django.utils.safestring import mark_safe

from core.numbers import range_text

register = template.Library()

_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "h1", "h2", "h3", "h4",
         "blockquote", "table", "thead", "tbody", "tr", "th", "td", "a", "hr"}


@register.filter
def markdown(text: str) -> str:
    """Render Markdown from model cards and runbooks, sanitized (no scripts, no raw HTML)."""
    html = md.markdown(text or "", extensions=["tables", "fenced_code"], output_format="html")
    return mark_safe(nh3.clean(html, tags=_TAGS, attributes={"a": {"href", "title"}},  # noqa: S308
                               url_schemes={"http", "https", "mailto"}))


@register.filter
def short_hash(value: str, length: int = 12) -> str:
    return (value or "")[:length]


@register.filter
def percent(value) -> str:
    """A share as a percentage with one decimal; never a rounded 100.0% or 0.0% for a
    share that is not exactly 1 or 0 (a probability of 0.99982 is ">99.9%")."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        return "—"
    if 0.999 < share < 1:
        return ">99.9%"
    if 0 < share < 0.001:
        return "<0.1%"
    return f"{share * 100:.1f}%"


@register.filter
def validated_range(feature) -> str:
    """A schema feature's validated range as the predict form shows it, or "—"."""
    lo, hi = feature.get("min"), feature.get("max")
    if lo is None and hi is None:
        return "—"
    return range_text(lo, hi)


@register.filter
def get_item(mapping, key):
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None


@register.filter
def bar_width(value) -> str:
    """A metric in 0..1 as a CSS width for the bar charts."""
    try:
        return f"{max(0.0, min(1.0, float(value))) * 100:.1f}%"
    except (TypeError, ValueError):
        return "0%"
