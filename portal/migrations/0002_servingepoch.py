from django.db import migrations, models

# The serving epoch (a trigger-maintained authorization cache for a WSGI fast lane) was
# removed by 0003: its triggers are no longer installed here, and 0003 drops them (and
# the table) where an older release installed them.


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
    ]
