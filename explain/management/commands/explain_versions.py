"""Ask for the explanation figures of submitted versions that have none (versions
submitted before explanations existed, or while ATTEST_EXPLAIN_ON_SUBMIT was off)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from core.context import acting_as
from explain.services import versions_explanation_backfill


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        with acting_as(None, via="command"):
            made = versions_explanation_backfill()
        self.stdout.write(f"{len(made)} version(s): explanation figures queued or under way")
