# The customer portal configuration of a connected account (the client portal).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0031_link_invoices_to_clients"),
    ]

    operations = [
        migrations.AddField(
            model_name="stripeaccount",
            name="portal_configuration_id",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                max_length=255,
                verbose_name="customer portal configuration",
            ),
        ),
    ]
