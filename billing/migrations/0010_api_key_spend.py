"""The API key a turn was started with, on its holds and its ledger entries (a plain id, like the
user's: history outlives the key), and an index of each key's usage by time (its api_key_budget,
its spentThisPeriod, the apiKeyId filter), built CONCURRENTLY on PostgreSQL as in 0009: the ledger
takes a row on every model call."""

import importlib

from django.db import migrations, models

AddIndexConcurrentlyOnPostgres = importlib.import_module(
    "billing.migrations.0009_ledger_usage_summary_index"
).AddIndexConcurrentlyOnPostgres

INDEX = models.Index(
    condition=models.Q(("api_key_id__isnull", False), ("kind", "usage")),
    fields=["organization", "api_key_id", "created_at"],
    name="ledger_usage_by_api_key",
)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("billing", "0009_ledger_usage_summary_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="ledgerentry",
            name="api_key_id",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reservation",
            name="api_key_id",
            field=models.UUIDField(blank=True, null=True),
        ),
        AddIndexConcurrentlyOnPostgres(model_name="ledgerentry", index=INDEX),
    ]
