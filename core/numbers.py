"""Numbers as people read them, the same on every page."""

from __future__ import annotations


def range_text(lo, hi, unit: str = "") -> str:
    """A validated range: "6.98–28.1 mm", "≥ 0", "≤ 120" (``unit`` with its leading
    space); bounds in Python's ``g`` format, as the form's placeholders and checks."""
    if lo is not None and hi is not None:
        return f"{lo:g}–{hi:g}{unit}"
    return f"≥ {lo:g}{unit}" if lo is not None else f"≤ {hi:g}{unit}"
