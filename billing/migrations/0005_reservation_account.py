"""Each hold names its org's credit account, so that settlement locks both rows in one statement.
Existing holds get their org's account (every org has one)."""

import django.db.models.deletion
from django.db import migrations, models


def fill_accounts(apps, schema_editor):
    Reservation = apps.get_model("billing", "Reservation")
    CreditAccount = apps.get_model("billing", "CreditAccount")
    for account in CreditAccount.objects.all().only("id", "organization_id").iterator():
        Reservation.objects.filter(organization_id=account.organization_id).update(account=account)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_ledger_survives_its_org"),
    ]

    operations = [
        migrations.AddField(
            model_name="reservation",
            name="account",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="reservations",
                to="billing.creditaccount",
            ),
        ),
        migrations.RunPython(fill_accounts, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="reservation",
            name="account",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="reservations",
                to="billing.creditaccount",
            ),
        ),
    ]
