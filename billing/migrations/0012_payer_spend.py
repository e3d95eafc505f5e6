"""What each payer (specialist, member, API key) of an org spent per budget period, kept by every
settlement from now on (PostgreSQL) and counted here from the ledger for the periods before."""

import django.db.models.deletion
import django.db.models.manager
import uuid
from django.db import migrations, models


def count_from_the_ledger(apps, schema_editor):
    """Every period's spend of every payer, from the usage entries (a budget period is the calendar
    month in UTC). PostgreSQL only: elsewhere the caps read the ledger."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in ("specialist_id", "user_id", "api_key_id"):
        schema_editor.execute(
            "INSERT INTO billing_payerspend (id, organization_id, payer, payer_id, period_start, spent) "
            f"SELECT gen_random_uuid(), organization_id, '{column}', {column}, "
            "date_trunc('month', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS period, -SUM(amount) "
            f"FROM billing_ledgerentry WHERE kind = 'usage' AND {column} IS NOT NULL "
            f"GROUP BY organization_id, {column}, period HAVING SUM(amount) < 0"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0011_all_orgs_manager"),
        ("orgs", "0007_all_orgs_manager"),
    ]

    operations = [
        migrations.CreateModel(
            name="PayerSpend",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                (
                    "payer",
                    models.CharField(
                        choices=[("specialist_id", "Specialist"), ("user_id", "Member"), ("api_key_id", "Api Key")],
                        max_length=20,
                    ),
                ),
                ("payer_id", models.UUIDField()),
                ("period_start", models.DateTimeField()),
                ("spent", models.DecimalField(decimal_places=6, default=0, max_digits=20)),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="orgs.organization"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("organization", "payer", "payer_id", "period_start"), name="payer_spend_once_per_period"
                    ),
                    models.CheckConstraint(condition=models.Q(("spent__gte", 0)), name="payer_spend_non_negative"),
                ],
            },
            managers=[
                ("all_orgs", django.db.models.manager.Manager()),
            ],
        ),
        migrations.RunPython(count_from_the_ledger, migrations.RunPython.noop),
    ]
