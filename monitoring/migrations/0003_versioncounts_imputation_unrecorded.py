"""VersionCounts.imputation_unrecorded: rows counted whose log does not record which
features were imputed (Prediction.imputed, inference 0012).

Every row counted before this migration was logged without that record, so the stored
counts start with all their rows counted from an input (predictions - inputs_unavailable).
"""

from django.db import migrations, models
from django.db.models import F


def unrecorded_so_far(apps, schema_editor):
    VersionCounts = apps.get_model("monitoring", "VersionCounts")
    VersionCounts.objects.update(
        imputation_unrecorded=F("predictions") - F("inputs_unavailable"))


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0002_versioncounts_cpu"),
    ]

    operations = [
        migrations.AddField(
            model_name="versioncounts",
            name="imputation_unrecorded",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunPython(unrecorded_so_far, migrations.RunPython.noop),
    ]
