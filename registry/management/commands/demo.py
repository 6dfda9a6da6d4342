"""Set up the demo: users per role and a real breast-cancer model (idempotent)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from core.env import env_bool
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create demo users (one per role) and register a real demo model."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true",
                            help="run even where ATTEST_REQUIRE_SECRET_KEY marks a production "
                                 "deployment")

    def handle(self, *args, **options):
        if env_bool("ATTEST_REQUIRE_SECRET_KEY", False) and not options["force"]:
            raise CommandError("refusing to create demo users with known passwords in a production "
                               "deployment (use --force if you really mean it)")
        from registry.demo import run_demo

        try:
            run_demo(stdout=self.stdout)
        except ApplicationError as exc:
            raise CommandError(f"demo failed: {exc.message}") from None
