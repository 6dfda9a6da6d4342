"""Recompute the audit hash chain: exit 0 when intact, 1 naming the first broken link."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from audits.chain import verify_chain


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        result = verify_chain()
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
        elif result.ok:
            self.stdout.write(f"ok: {result.checked} events checked; head #{result.head_seq} "
                              f"{result.head_hash}")
        if not result.ok:
            broken = result.first_broken
            raise CommandError(f"broken at event #{broken.seq} (id {broken.id}, {broken.time}): "
                               f"{broken.problem}; {result.checked} events verified before it",
                               returncode=1)
