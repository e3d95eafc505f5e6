from django.db import migrations, models


def mark_operator_circuits(apps, schema_editor):
    """A circuit open today that platform staff opened stays closable only by an operator."""
    Circuit = apps.get_model("billing", "Circuit")
    Circuit.objects.filter(state="open", opened_by__is_staff=True).update(opened_by_operator=True)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0007_alter_creditaccount_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="circuit",
            name="opened_by_operator",
            field=models.BooleanField(
                default=False, help_text="Opened by platform staff (admin or API): only an operator closes it."
            ),
        ),
        migrations.RunPython(mark_operator_circuits, migrations.RunPython.noop),
    ]
