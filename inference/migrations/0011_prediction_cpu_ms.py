"""Prediction.cpu_ms: the CPU time a row cost the server (monitoring's cost per 1,000).

Nullable: rows logged before have none. The append-only triggers are dropped and
installed again so that SQLite's column list (UPDATE OF ...) freezes the new column too.
"""

from django.db import migrations, models

import inference.triggers


def reinstall_triggers(apps, schema_editor):
    inference.triggers.run(schema_editor.connection, install=False)
    inference.triggers.run(schema_editor.connection, install=True)


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0010_batch_passthrough_columns"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="cpu_ms",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.RunPython(reinstall_triggers, reinstall_triggers),
    ]
