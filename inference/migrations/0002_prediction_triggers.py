from django.db import migrations


def install(apps, schema_editor):
    from inference.triggers import run

    run(schema_editor.connection, install=True)


def remove(apps, schema_editor):
    from inference.triggers import run

    run(schema_editor.connection, install=False)


class Migration(migrations.Migration):
    dependencies = [("inference", "0001_initial")]
    operations = [migrations.RunPython(install, remove)]
