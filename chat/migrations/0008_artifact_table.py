"""The moved artifacts' table takes chat's name (a rename: the rows stay)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0007_artifact"),
        ("workspaces", "0002_artifact_moves_to_chat"),
    ]

    operations = [
        migrations.AlterModelTable(name="artifact", table=None),
    ]
