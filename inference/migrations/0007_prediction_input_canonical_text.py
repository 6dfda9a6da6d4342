"""Prediction.input: canonical JSON text (json on PostgreSQL) instead of jsonb."""

from django.db import migrations

import core.fields
import inference.triggers


class Migration(migrations.Migration):

    dependencies = [
        ('inference', '0006_batch_chunk_seconds'),
    ]

    operations = [
        migrations.AlterField(
            model_name='prediction',
            name='input',
            field=core.fields.CanonicalJSONField(blank=True, null=True),
        ),
        # SQLite rebuilds the table for the change, dropping its triggers; on PostgreSQL
        # the column is rewritten as json (jsonb's text: equal values, spaced). A large log
        # is rewritten under an exclusive lock: docs/operations.md, "Upgrading".
        migrations.RunPython(inference.triggers.reinstall, migrations.RunPython.noop),
    ]
