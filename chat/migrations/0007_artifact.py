"""Artifacts move from workspaces to chat (the tool that saves them is chat's, and an artifact
points at its chat session): the model's state moves here on the same table, which is then
renamed; every row stays."""

import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0006_message_heartbeat"),
        ("orgs", "0002_invitation"),
        ("specialists", "0001_initial"),
        ("workspaces", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Artifact",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("title", models.CharField(max_length=200)),
                        ("kind", models.CharField(default="document", max_length=50)),
                        ("content", models.TextField()),
                        (
                            "organization",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="orgs.organization"
                            ),
                        ),
                        (
                            "session",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="chat.chatsession",
                            ),
                        ),
                        (
                            "specialist",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="specialists.specialist",
                            ),
                        ),
                        (
                            "workspace",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="artifacts",
                                to="workspaces.workspace",
                            ),
                        ),
                    ],
                    options={"ordering": ["-created_at"], "db_table": "workspaces_artifact"},
                ),
            ],
            database_operations=[],
        ),
    ]
