"""A failed webhook event keeps the traceback of where applying it raised, for the event log."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0009_invoice_status_length"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="traceback",
            field=models.TextField(blank=True, default="", verbose_name="traceback"),
        ),
    ]
