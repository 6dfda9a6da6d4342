from django.db import migrations

TABLE = "registry_signature"


def install(apps, schema_editor):
    from audits.triggers import run

    run(schema_editor.connection, install=True, table=TABLE)


def remove(apps, schema_editor):
    from audits.triggers import run

    run(schema_editor.connection, install=False, table=TABLE)


class Migration(migrations.Migration):
    dependencies = [("registry", "0002_signatures_and_shadow"), ("audits", "0002_append_only_triggers")]
    operations = [migrations.RunPython(install, remove)]
