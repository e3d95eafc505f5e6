"""An index of each organization's deliveries by time: its admin page shows its last deliveries,
however long its delivery log."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0007_all_orgs_manager"),
        ("webhooks", "0002_all_orgs_manager"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(fields=["organization", "-created_at"], name="webhooks_delivery_org"),
        ),
    ]
