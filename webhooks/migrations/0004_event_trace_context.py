"""An event keeps the trace context of the cause that recorded it: each attempt's job continues that
trace (empty while tracing is off). Adding a column with a constant default rewrites no rows."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0003_delivery_org_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="trace_context",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
