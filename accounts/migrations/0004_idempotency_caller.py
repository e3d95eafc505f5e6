from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion


def callers_from_users(apps, schema_editor):
    """Every earlier record was a user's: its caller is the user's id."""
    record = apps.get_model("accounts", "IdempotencyRecord")
    for row in record.objects.all().only("pk", "user_id"):
        record.objects.filter(pk=row.pk).update(caller=str(row.user_id))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_remove_onetimetoken_membership"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="idempotencyrecord", name="unique_idempotency_key"),
        migrations.AddField(
            model_name="idempotencyrecord",
            name="caller",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(callers_from_users, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="user",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="idempotencyrecord",
            constraint=models.UniqueConstraint(fields=("caller", "scope", "key"), name="unique_idempotency_caller_key"),
        ),
    ]
