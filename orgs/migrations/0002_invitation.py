"""Invitations move from identity to organizations: the token stays in accounts, the link to the
membership it opens becomes an orgs.Invitation row (copied here, before accounts drops its
column)."""

import uuid

import django.db.models.deletion
from django.db import migrations, models


def copy_links(apps, schema_editor):
    OneTimeToken = apps.get_model("accounts", "OneTimeToken")
    Invitation = apps.get_model("orgs", "Invitation")
    links = OneTimeToken.objects.filter(membership__isnull=False).values_list("id", "membership_id", "created_at")
    Invitation.objects.bulk_create(
        Invitation(token_id=token_id, membership_id=membership_id, created_at=created_at)
        for token_id, membership_id, created_at in links
    )


def copy_back(apps, schema_editor):
    OneTimeToken = apps.get_model("accounts", "OneTimeToken")
    Invitation = apps.get_model("orgs", "Invitation")
    for token_id, membership_id in Invitation.objects.values_list("token_id", "membership_id"):
        OneTimeToken.objects.filter(pk=token_id).update(membership_id=membership_id)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_initial"),
        ("orgs", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Invitation",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "membership",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="invitations", to="orgs.membership"
                    ),
                ),
                (
                    "token",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="invitation",
                        to="accounts.onetimetoken",
                    ),
                ),
            ],
            options={"ordering": ["-created_at"]},
        ),
        migrations.RunPython(copy_links, copy_back),
    ]
