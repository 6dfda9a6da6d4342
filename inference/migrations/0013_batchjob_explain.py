"""BatchJob.explain, explain_parts and explanation: a batch's "explain all rows" (the
method asked for, each chunk's stored contributions, and the record of what was
computed). Batch jobs have no append-only triggers, so none are reinstalled."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0012_prediction_imputed"),
    ]

    operations = [
        migrations.AddField(
            model_name="batchjob",
            name="explain",
            field=models.CharField(blank=True, max_length=8),
        ),
        migrations.AddField(
            model_name="batchjob",
            name="explain_parts",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="batchjob",
            name="explanation",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
