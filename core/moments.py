"""Parsing the moments users type: ISO date-times, or dates meaning a whole day."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .errors import ValidationFailed

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HINT = "Use an ISO date or date-time, e.g. 2026-01-31 or 2026-01-31T12:00:00Z."


def parse_moment(value: str | None, *, field: str = "at", end_of_day: bool = True,
                 default_now: bool = True) -> datetime | None:
    """An aware datetime from ISO text; a bare date means its end (or start) of day.

    Empty text gives now (or None when ``default_now`` is false). Bad text raises
    ValidationFailed (code ``invalid_date``) naming ``field``: text that is not a date,
    a date that does not exist (2024-02-30), and a moment that exists only in its own
    offset (9999-12-31T23:59:59-23:59 is in year 10000 in UTC, where the database
    compares it: left alone, it fails deep inside the query).
    """
    value = (value or "").strip()
    if not value:
        return timezone.now() if default_now else None
    try:
        # A bare date is a whole day (Python 3.11+ would read it as that day's midnight).
        moment = None if _DATE_ONLY.match(value) else parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is None:
                raise ValueError(value)
            moment = datetime.combine(day, time.max if end_of_day else time.min)
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, timezone.get_current_timezone())
    except ValueError:  # shaped like a date, but not one (month 13, February 30th)
        raise ValidationFailed(_HINT, code="invalid_date", field=field) from None
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValidationFailed("That moment is outside the years 1 to 9999 once converted to "
                               "UTC. " + _HINT, code="invalid_date", field=field) from None
    return moment
