"""Write a signed checkpoint of the audit chain to the artifact store (and a file)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audits.checkpoints import audit_checkpoint_write
from core.context import acting_as
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Sign the audit chain's head with the server key and store the checkpoint."

    def add_arguments(self, parser):
        parser.add_argument("--output", help="also write the checkpoint file here")

    def handle(self, *args, **options):
        try:
            with acting_as(None, via="command"):
                checkpoint = audit_checkpoint_write()
        except ApplicationError as exc:
            raise CommandError(exc.message, returncode=1) from None
        if options["output"]:
            try:
                Path(options["output"]).write_bytes(checkpoint.as_bytes())
            except OSError as exc:
                raise CommandError(f"cannot write {options['output']}: {exc.strerror}") from None
        p = checkpoint.payload
        self.stdout.write(f"checkpoint: {p['count']} events, head #{p['head_seq']} "
                          f"{p['head_hash']}, key {p['key_id']}, stored as "
                          f"{checkpoint.storage_key}")
