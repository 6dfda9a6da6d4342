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
