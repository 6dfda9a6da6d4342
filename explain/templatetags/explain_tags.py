from __future__ import annotations

from django import template

from ..present import fmt

register = template.Library()


@register.filter
def explain_number(value) -> str:
    return fmt(value)


@register.filter
def percent_of_one(value) -> str:
    if value is None:
        return "—"
    return f"{round(100 * float(value))}%"
