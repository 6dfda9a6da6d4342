"""Freeze the release policy into each version at submit (issue: no one releases alone).

Versions already submitted take the policy their model holds now: it is the one
their sign-offs were collected under, since the policy could not change while a
version was in review.
"""

from django.db import migrations, models


def freeze_existing(apps, schema_editor):
    ModelVersion = apps.get_model("registry", "ModelVersion")
    for version in (ModelVersion.objects.filter(submitted_at__isnull=False)
                    .select_related("model").iterator()):
        version.required_signoffs = list(version.model.required_signoffs)
        version.save(update_fields=["required_signoffs"])


class Migration(migrations.Migration):
    dependencies = [("registry", "0006_trusted_types")]

    operations = [
        migrations.AddField(model_name="modelversion", name="required_signoffs",
                            field=models.JSONField(blank=True, default=list)),
        migrations.RunPython(freeze_existing, migrations.RunPython.noop),
    ]
