from __future__ import annotations

from django import template

from monitoring.health import STATUS_TEXT

register = template.Library()


@register.filter
def num(value, digits: int = 3) -> str:
    """A figure with ``digits`` decimals, or a dash when there is none."""
    try:
        return f"{float(value):.{int(digits)}f}"
    except (TypeError, ValueError):
        return "—"


@register.filter
def pvalue(value) -> str:
    try:
        p = float(value)
    except (TypeError, ValueError):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


@register.filter
def share(value) -> str:
    try:
        return f"{float(value) * 100:.1f}%"
    except (TypeError, ValueError):
        return "—"


@register.filter
def status_text(status: str) -> str:
    return STATUS_TEXT.get(status, status or "—")


@register.filter
def dig(mapping, key):
    """``mapping[key]`` for dict keys the template language cannot spell."""
    return mapping.get(key) if isinstance(mapping, dict) else None
