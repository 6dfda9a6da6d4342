"""Parsing the moments users type: ISO date-times, or dates meaning a whole day."""

from __future__ import annotations

import re
from datetime import datetime, time

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .errors import ValidationFailed

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_moment(value: str | None, *, field: str = "at", end_of_day: bool = True,
                 default_now: bool = True) -> datetime | None:
    """An aware datetime from ISO text; a bare date means its end (or start) of day.

    Empty text gives now (or None when ``default_now`` is false). Bad text raises
    ValidationFailed naming ``field``.
    """
    value = (value or "").strip()
    if not value:
        return timezone.now() if default_now else None
    # A bare date is a whole day (Python 3.11+ would read it as that day's midnight).
    moment = None if _DATE_ONLY.match(value) else parse_datetime(value)
    if moment is None:
        try:
            day = parse_date(value)
        except ValueError:
            day = None
        if day is None:
            raise ValidationFailed("Use an ISO date or date-time, e.g. 2026-01-31 or "
                                   "2026-01-31T12:00:00Z.", code="invalid_date", field=field)
        moment = datetime.combine(day, time.max if end_of_day else time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    return moment
