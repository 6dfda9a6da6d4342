"""Signature.document_sha256 and document_ref: a sign-off of a document about a version
(the IRB's review of a compliance dossier) records the document's sha256 and id.

A release sign-off stays one per meaning per version (the constraint now holds for rows
without a document); a document sign-off is one per signer per document. Existing rows
are release sign-offs: both new fields empty.

SQLite rebuilds the table for these changes, dropping its append-only triggers; they are
dropped and installed again afterwards (on PostgreSQL they survive, and reinstalling is
harmless), as in inference 0012.
"""

from django.db import migrations, models

TABLE = "registry_signature"


def reinstall_triggers(apps, schema_editor):
    from audits.triggers import run

    run(schema_editor.connection, install=False, table=TABLE)
    run(schema_editor.connection, install=True, table=TABLE)


class Migration(migrations.Migration):

    dependencies = [
        ("registry", "0007_version_required_signoffs"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="signature",
            name="one_signature_per_meaning",
        ),
        migrations.AddField(
            model_name="signature",
            name="document_sha256",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="signature",
            name="document_ref",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
        migrations.AddConstraint(
            model_name="signature",
            constraint=models.UniqueConstraint(condition=models.Q(("document_sha256", "")),
                                               fields=("version", "meaning"),
                                               name="one_signature_per_meaning"),
        ),
        migrations.AddConstraint(
            model_name="signature",
            constraint=models.UniqueConstraint(
                condition=models.Q(("document_sha256", ""), _negated=True),
                fields=("version", "meaning", "document_sha256", "signer"),
                name="one_document_signature_per_signer"),
        ),
        migrations.RunPython(reinstall_triggers, reinstall_triggers),
    ]
