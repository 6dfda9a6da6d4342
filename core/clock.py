"""A replayed clock: ``django.utils.timezone.now`` answers a chosen moment.

For replaying a history through the real services — the demo's weeks of predictions,
reviews, releases and a rollback, and tests of time windows — so that every row and
audit event carries the time it would have had. Never used while serving requests.
Every module here calls ``timezone.now()`` through the module (no ``from … import
now``), which is what lets this work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

from django.utils import timezone


class ReplayClock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def advance(self, delta: timedelta) -> datetime:
        self.moment = self.moment + delta
        return self.moment

    def set(self, moment: datetime) -> datetime:
        self.moment = moment
        return moment


@contextmanager
def replayed_time(start: datetime) -> Iterator[ReplayClock]:
    clock = ReplayClock(start)
    with mock.patch.object(timezone, "now", clock.now):
        yield clock
