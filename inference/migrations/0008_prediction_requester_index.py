"""The "My predictions" index: a requester's single predictions, newest first.

Built with CREATE INDEX CONCURRENTLY on PostgreSQL, so a deployment with a large
prediction log keeps logging while the index builds (docs/operations.md, Upgrades)."""

from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.migrations.operations import AddIndex


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """CONCURRENTLY where the database has it (PostgreSQL), a plain index elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("inference", "0007_prediction_input_canonical_text"),
        ("registry", "0004_serving_runtime"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="prediction",
            index=models.Index(condition=models.Q(("batch__isnull", True)),
                               fields=["requester", "-id"], name="prediction_requester_id"),
        ),
    ]
