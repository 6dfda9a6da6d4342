"""Recompute the audit hash chain: exit 0 when intact, 1 naming the first broken link.

It also reconciles the rows the portal shows with the chain (``audits.reconcile``):
every signature against its sign-off event, every version's state and content hash
against its events; exit 1 naming each row that disagrees.
With ``--checkpoint FILE`` also prove the chain still extends a signed checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audits.chain import verify_chain
from audits.checkpoints import verify_against_checkpoint
from audits.reconcile import reconcile
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain (and optionally a signed checkpoint)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument("--checkpoint", metavar="FILE",
                            help="a checkpoint file written by audit_checkpoint")

    def handle(self, *args, **options):
        verdict = None
        if options["checkpoint"]:
            try:
                data = Path(options["checkpoint"]).read_bytes()
            except OSError as exc:
                raise CommandError(f"cannot read {options['checkpoint']}: {exc.strerror}") from None
            try:
                verdict = verify_against_checkpoint(data)
            except ApplicationError as exc:
                raise CommandError(exc.message, returncode=1) from None
        result = verify_chain()
        rows = reconcile()
        if options["json"]:
            out = result.as_dict()
            out["reconciliation"] = rows.as_dict()
            if verdict is not None:
                out["checkpoint"] = verdict.as_dict()
            self.stdout.write(json.dumps(out, indent=2))
        else:
            if result.ok:
                self.stdout.write(f"ok: {result.checked} events checked; head #{result.head_seq} "
                                  f"{result.head_hash}")
            if rows.ok:
                self.stdout.write(f"ok: {rows.summary()}")
            for finding in rows.findings:
                self.stderr.write(f"mismatch: {finding.line()}")
            if verdict is not None and verdict.ok:
                self.stdout.write(f"checkpoint ok: {verdict.message}")
        if not result.ok:
            broken = result.first_broken
            raise CommandError(f"broken at event #{broken.seq} (id {broken.id}, {broken.time}): "
                               f"{broken.problem}; {result.checked} events verified before it",
                               returncode=1)
        if verdict is not None and not verdict.ok:
            raise CommandError(f"checkpoint check failed: {verdict.message}", returncode=1)
        if not rows.ok:
            first = rows.findings[0]
            raise CommandError(f"{len(rows.findings)} row(s) disagree with the audit trail, first "
                               f"{first.line()}", returncode=1)
