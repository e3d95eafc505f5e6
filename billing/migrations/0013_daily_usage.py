"""What each organization's usage cost per UTC day and model, for the days that are over: counted once
from the ledger when a page first asks for a day (billing.usage_days), so that the admin's
organization page reads 30 days of usage from a few rows instead of every entry."""

import uuid

import django.db.models.deletion
import django.db.models.manager
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0012_payer_spend"),
        ("orgs", "0007_all_orgs_manager"),
    ]

    operations = [
        migrations.CreateModel(
            name="DailyUsage",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("day", models.DateField()),
                ("model", models.CharField(blank=True, max_length=100)),
                ("credits", models.DecimalField(decimal_places=6, default=0, max_digits=20)),
                ("entries", models.PositiveIntegerField(default=0)),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="orgs.organization"
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "daily usage",
                "constraints": [
                    models.UniqueConstraint(fields=("organization", "day", "model"), name="daily_usage_once_per_model")
                ],
            },
            managers=[
                ("all_orgs", django.db.models.manager.Manager()),
            ],
        ),
    ]
