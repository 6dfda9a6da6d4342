"""Prediction.imputed: the features whose missing value was imputed (monitoring counts
them as missing).

Nullable: rows logged before have none (unknown). The append-only triggers are dropped
and installed again so that SQLite's column list (UPDATE OF ...) freezes the new column
too, as in 0011.
"""

from django.db import migrations, models

import inference.triggers


def reinstall_triggers(apps, schema_editor):
    inference.triggers.run(schema_editor.connection, install=False)
    inference.triggers.run(schema_editor.connection, install=True)


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0011_prediction_cpu_ms"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="imputed",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunPython(reinstall_triggers, reinstall_triggers),
    ]
