"""Artifacts now belong to chat (chat.0007 took over the model on the same table): only the
model's state leaves here, no table or row."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("workspaces", "0001_initial"),
        ("chat", "0007_artifact"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Artifact")],
            database_operations=[],
        ),
    ]
