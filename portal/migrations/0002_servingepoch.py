from django.db import migrations, models

from portal import epoch


def install(apps, schema_editor):
    for sql in epoch.trigger_statements(apps, schema_editor.connection.vendor, install=True):
        schema_editor.execute(sql)


def uninstall(apps, schema_editor):
    for sql in epoch.trigger_statements(apps, schema_editor.connection.vendor, install=False):
        schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("portal", "0001_initial"),
        ("registry", "0004_serving_runtime"),
    ]

    operations = [
        migrations.CreateModel(
            name="ServingEpoch",
            fields=[
                ("id", models.PositiveSmallIntegerField(primary_key=True, serialize=False)),
                ("value", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(install, uninstall),
    ]
