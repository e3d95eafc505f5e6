"""Every fresh install gets the bundled model rates and credit packages."""

import json
from decimal import Decimal
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).resolve().parent.parent / "data"


def load(apps, schema_editor):
    ModelRate = apps.get_model("billing", "ModelRate")
    CreditPackage = apps.get_model("billing", "CreditPackage")
    for row in json.loads((DATA / "model_rates.json").read_text()):
        ModelRate.objects.update_or_create(
            model=row["model"],
            defaults={
                "provider": row["provider"],
                "display_name": row["displayName"],
                "input_credits_per_million": Decimal(row["inputCreditsPerMillion"]),
                "output_credits_per_million": Decimal(row["outputCreditsPerMillion"]),
                "context_window": row["contextWindow"],
                "max_output_tokens": row.get("maxOutputTokens", 4096),
                "active": row.get("active", True),
            },
        )
    for row in json.loads((DATA / "packages.json").read_text()):
        CreditPackage.objects.get_or_create(
            name=row["name"],
            defaults={
                "credits": Decimal(row["credits"]),
                "price_cents": row["priceCents"],
                "currency": row["currency"],
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
