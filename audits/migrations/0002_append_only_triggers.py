from django.db import migrations


def install(apps, schema_editor):
    from audits.triggers import run

    run(schema_editor.connection, install=True)


def remove(apps, schema_editor):
    from audits.triggers import run

    run(schema_editor.connection, install=False)


class Migration(migrations.Migration):
    dependencies = [("audits", "0001_initial")]
    operations = [migrations.RunPython(install, remove)]
