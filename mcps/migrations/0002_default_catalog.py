"""The bundled catalog of well-known systems; operators edit it in the admin."""

import json
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).resolve().parent.parent / "data" / "catalog.json"


def load(apps, schema_editor):
    CatalogEntry = apps.get_model("mcps", "CatalogEntry")
    for row in json.loads(DATA.read_text()):
        CatalogEntry.objects.update_or_create(
            key=row["key"],
            defaults={
                "name": row["name"],
                "description": row["description"],
                "transport": row["transport"],
                "url_template": row["urlTemplate"],
                "auth_type": row["authType"],
                "docs_url": row["docsUrl"],
            },
        )


class Migration(migrations.Migration):
    dependencies = [("mcps", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
