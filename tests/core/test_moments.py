from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from core.moments import parse_moment


def test_a_bare_date_means_the_whole_day():
    end = parse_moment("2024-07-19")
    start = parse_moment("2024-07-19", end_of_day=False)
    assert (end.hour, end.minute) == (23, 59) and (start.hour, start.minute) == (0, 0)


def test_date_times_and_bad_text():
    assert parse_moment("2024-07-19T12:30:00Z").hour == 12
    assert parse_moment("", default_now=False) is None
    with pytest.raises(ValidationFailed):
        parse_moment("yesterday")
    with pytest.raises(ValidationFailed):
        parse_moment("2024-13-45")


@pytest.mark.parametrize("text", [
    "9999-12-31T23:59:59-23:59",  # year 10000 in UTC
    "0001-01-01T00:00:00+23:59",  # year 0 in UTC
    "2024-02-30T00:00:00",  # shaped like a date-time, no such day
    "2024-02-30",
])
def test_moments_that_do_not_exist_in_utc_are_invalid_dates(text):
    with pytest.raises(ValidationFailed) as caught:
        parse_moment(text, field="until")
    assert [(i.code, i.field) for i in caught.value.items] == [("invalid_date", "until")]


def test_a_last_day_is_refused_where_its_end_is_past_9999_in_utc(settings):
    settings.TIME_ZONE = "America/New_York"
    with pytest.raises(ValidationFailed):
        parse_moment("9999-12-31")
    assert parse_moment("9999-12-31", end_of_day=False).year == 9999
