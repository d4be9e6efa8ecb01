"""Formatting for the reviewer pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def pct(value, digits: int = 1):
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def num(value, digits: int = 2):
    if value is None or value == "":
        return "—"
    return f"{float(value):.{int(digits)}f}"


@register.filter
def get(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter
def age(seconds):
    """Seconds → "42 s", "7 min", "3.2 h", "2.0 days"."""
    if seconds is None:
        return "never"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@register.filter
def ordinal(value):
    """1 → "1st", 2 → "2nd", 11 → "11th"; "—" for nothing."""
    if value is None or value == "":
        return "—"
    number = int(value)
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


@register.filter
def seconds(milliseconds):
    """Milliseconds → "38 s" or "2 min 5 s"."""
    if milliseconds is None or milliseconds == "":
        return "—"
    total = round(float(milliseconds) / 1000)
    return f"{total} s" if total < 90 else f"{total // 60} min {total % 60} s"
