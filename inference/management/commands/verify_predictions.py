"""Verify the prediction log: exit 0 when intact, 1 naming the first problem.

Recomputes every row's hash, every model's chain (to its recorded head), every
anchor's digest (and finds it in the audit chain),
the sha256 of every raw input still stored, and looks for references without their row
(``inference.log.verify_prediction_log``). Run ``verify_audit`` too: the anchors are only
as good as the chain that holds them. Rows older than ATTEST_ANCHOR_WINDOW_SECONDS
still unanchored also exit 1: they are covered by their chain alone.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from inference.log import verify_prediction_log


class Command(BaseCommand):
    help = "Verify the prediction log's row hashes, anchors and stored inputs."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        verdict = verify_prediction_log()
        if options["json"]:
            self.stdout.write(json.dumps(verdict.as_dict(), indent=2))
        elif verdict.ok:
            legacy = (f"; {verdict.legacy_inputs_unmatched} inputs stored before they were "
                      "kept as canonical text do not re-hash to their input_sha256"
                      if verdict.legacy_inputs_unmatched else "")
            self.stdout.write(f"ok: {verdict.checked} predictions checked, {verdict.anchored} "
                              f"anchored in the audit chain, {verdict.unanchored} not yet; "
                              f"{verdict.chains} model chains end at their heads; "
                              f"{verdict.inputs_checked} stored inputs checked{legacy}")
        if not verdict.ok:
            problem = verdict.first_problem
            raise CommandError(f"prediction {problem['id']}: {problem['problem']}; "
                               f"{verdict.checked} predictions verified before it",
                               returncode=1)
        if verdict.overdue:
            minutes = -(-verdict.window_seconds // 60)
            raise CommandError(f"{verdict.unanchored_overdue} predictions older than {minutes} "
                               "minutes are not anchored in the audit chain (is the scheduler "
                               "running? see docs/operations.md)", returncode=1)
