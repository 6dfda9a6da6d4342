"""Set up the demo: users per role, a real breast-cancer model and six weeks of its
history (predictions, reviews, outcomes, a rollback, a drift), idempotent."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from core.env import env_bool
from core.errors import ApplicationError


class Command(BaseCommand):
    help = ("Create demo users (one per role), register a real demo model and replay a few "
            "weeks of its history so every page has something to show.")

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true",
                            help="run even where ATTEST_REQUIRE_SECRET_KEY marks a production "
                                 "deployment")

    def handle(self, *args, **options):
        if env_bool("ATTEST_REQUIRE_SECRET_KEY", False) and not options["force"]:
            raise CommandError("refusing to create demo users with known passwords in a production "
                               "deployment (use --force if you really mean it)")
        # The history needs inference and monitoring, which sit above the registry: the
        # command lives in the shell, the one layer that may use them all.
        from django.conf import settings

        from portal.demo import run_demo_with_history

        # Without a broker, explanation jobs run in a daemon thread beside a request; this
        # process exits when the history is written, which would kill them mid-run and
        # leave them "running". Run them in line here, so the demo's versions have their
        # figures (and the demo dossier its explanations section).
        settings.ATTEST_EXPLAIN_EAGER_THREAD = False
        try:
            run_demo_with_history(stdout=self.stdout)
        except ApplicationError as exc:
            raise CommandError(f"demo failed: {exc.message}") from None
