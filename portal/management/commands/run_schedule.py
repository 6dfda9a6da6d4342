"""Run the periodic jobs (CELERY_BEAT_SCHEDULE) in this process: those due, or all.

The embedded shape's web process does this by itself every few seconds
(portal/scheduler.py); this command is for cron, or to catch up by hand.
Exit 1 when a job failed.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from portal import scheduler


class Command(BaseCommand):
    help = "Run the periodic jobs that are due (--all: every one) in this process."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="run every job now")

    def handle(self, *args, **options):
        outcomes = scheduler.run_due(everything=options["all"])
        for _ok, outcome in outcomes:
            self.stdout.write(outcome)
        if not outcomes:
            self.stdout.write("nothing is due")
        failed = [o for ok, o in outcomes if not ok]
        if failed:
            raise CommandError(f"{len(failed)} scheduled job(s) failed", returncode=1)
