from django.db import migrations, models


def copy_pending_invitations(apps, schema_editor):
    """Invitations sent before: their own email and name were the (placeholder) account's."""
    Membership = apps.get_model("orgs", "Membership")
    for membership in Membership.objects.filter(status="invited").select_related("user"):
        membership.invited_email = membership.user.email
        membership.invited_name = membership.user.name
        membership.save(update_fields=["invited_email", "invited_name"])


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0003_auditentry"),
    ]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="invited_email",
            field=models.EmailField(blank=True, max_length=254),
        ),
        migrations.AddField(
            model_name="membership",
            name="invited_name",
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.RunPython(copy_pending_invitations, migrations.RunPython.noop),
    ]
