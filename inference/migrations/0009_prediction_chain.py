"""Chain the prediction log per model (issue: the log was not tamper-evident between
anchors, which is all of it in a deployment that never ran the anchor job).

Rows already logged are chained as they stand, in id order, from their stored row hash:
the migration cannot vouch for them more than their row hashes and anchors already do
(run ``verify_predictions`` before upgrading to know they are intact). The append-only
triggers are lifted for the backfill only and reinstalled over the new column.
"""

import hashlib

import django.db.models.deletion
from django.db import migrations, models

import inference.triggers

GENESIS = "0" * 64


def chain_existing(apps, schema_editor):
    Prediction = apps.get_model("inference", "Prediction")
    Head = apps.get_model("inference", "PredictionChainHead")
    connection = schema_editor.connection
    inference.triggers.run(connection, install=False)
    heads: dict[int, list] = {}
    last = 0
    while True:
        rows = list(Prediction.objects.filter(id__gt=last).order_by("id")
                    .values_list("id", "model_id", "row_hash")[:5000])
        if not rows:
            break
        with connection.cursor() as cursor:
            updates = []
            for pk, model_id, row_hash in rows:
                head = heads.setdefault(model_id, [GENESIS, 0, 0])
                head[0] = hashlib.sha256((head[0] + row_hash).encode("ascii")).hexdigest()
                head[1] += 1
                head[2] = pk
                updates.append((head[0], pk))
            cursor.executemany("UPDATE inference_prediction SET chain_hash = %s WHERE id = %s",
                               updates)
        last = rows[-1][0]
    for model_id, (link, count, last_id) in heads.items():
        Head.objects.create(model_id=model_id, head=link, count=count, last_id=last_id)
    inference.triggers.run(connection, install=True)


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0008_prediction_requester_index"),
        ("registry", "0007_version_required_signoffs"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="chain_hash",
            field=models.CharField(default="", max_length=64),
        ),
        migrations.CreateModel(
            name="PredictionChainHead",
            fields=[
                ("model", models.OneToOneField(
                    on_delete=django.db.models.deletion.PROTECT, primary_key=True,
                    related_name="+", serialize=False, to="registry.registeredmodel")),
                ("head", models.CharField(default=GENESIS, max_length=64)),
                ("last_id", models.BigIntegerField(default=0)),
                ("count", models.BigIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
    ]
