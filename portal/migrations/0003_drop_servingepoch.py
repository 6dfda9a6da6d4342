"""Drop the serving epoch: its PostgreSQL triggers, their function and its table.

Predictions go through Django's one request path; nothing caches an authorization
across requests any more, so nothing needs the epoch.
"""

from django.db import migrations

FUNCTION = "attest_serving_epoch_bump"
TABLES = ("portal_apitoken", "auth_user", "auth_user_groups", "auth_group",
          "registry_modelaccessgrant", "registry_registeredmodel", "registry_modelversion")


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        name = f"{FUNCTION}_{table}"[:63]
        schema_editor.execute(f'DROP TRIGGER IF EXISTS "{name}" ON "{table}";')
        schema_editor.execute(f'DROP TRIGGER IF EXISTS "{name[:55]}_trunc" ON "{table}";')
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}();")


class Migration(migrations.Migration):

    dependencies = [("portal", "0002_servingepoch")]

    operations = [
        migrations.RunPython(drop_triggers, migrations.RunPython.noop),
        migrations.DeleteModel(name="ServingEpoch"),
    ]
