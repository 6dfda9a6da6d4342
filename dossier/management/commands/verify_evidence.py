"""Check a dossier's evidence package offline: exit 0 with "ok: …", 1 with one line per
failure, 2 when the ZIP or checkpoint cannot be read.

The check is the client's (``attest_client.evidence``, the same as ``attest dossier
verify``), run here without the database: the client never imports the server, and the
server does not declare the client as a dependency, so one implementation lives on the
side that must work without the server, imported here when the command runs.
``./dev env`` installs the client beside the server; elsewhere ``pip install
clients/python``.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Verify a dossier's evidence package (ZIP) offline: the manifest's sha256 and "
            "sizes, no unlisted file, the audit export's chain and head, and a checkpoint.")

    def add_arguments(self, parser):
        parser.add_argument("package", metavar="ZIP")
        parser.add_argument("--checkpoint", metavar="FILE",
                            help="a signed checkpoint file (audit_checkpoint or `attest audit "
                                 "checkpoint`)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        try:
            from attest_client.errors import UsageError
            from attest_client.evidence import verify_package
        except ImportError:
            raise CommandError("the attest client is not installed (pip install "
                               "clients/python); it holds the offline check",
                               returncode=2) from None
        checkpoint = None
        if options["checkpoint"]:
            try:
                checkpoint = Path(options["checkpoint"]).read_bytes()
            except OSError as exc:
                raise CommandError(f"cannot read {options['checkpoint']}: {exc.strerror}",
                                   returncode=2) from None
        try:
            verdict = verify_package(Path(options["package"]), checkpoint)
        except UsageError as exc:
            raise CommandError(exc.message, returncode=2) from None
        if options["json"]:
            self.stdout.write(json.dumps(verdict.as_dict(), indent=2, default=str))
        elif verdict.ok:
            self.stdout.write(verdict.summary())
        if not verdict.ok:
            if not options["json"]:
                for line in verdict.failures:
                    self.stdout.write(line)
            raise CommandError(f"{len(verdict.failures)} problem(s) in {options['package']}",
                               returncode=1)
