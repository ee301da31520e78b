"""What the paying Checkout Session charged, and a flag when it was not the invoice's amount.

New nullable columns, and two with database defaults: invoices paid before this
migration simply have nothing recorded, and rows inserted by older code still fit.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0004_listing_search_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="invoice",
            name="amount_mismatch",
            field=models.BooleanField(
                db_default=False, default=False, editable=False, verbose_name="paid amount differs"
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="checkout_amount_discount",
            field=models.PositiveBigIntegerField(
                blank=True, editable=False, null=True, verbose_name="discount (minor units)"
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="checkout_amount_shipping",
            field=models.PositiveBigIntegerField(
                blank=True, editable=False, null=True, verbose_name="shipping (minor units)"
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="checkout_amount_subtotal",
            field=models.PositiveBigIntegerField(
                blank=True, editable=False, null=True, verbose_name="subtotal paid (minor units)"
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="checkout_amount_tax",
            field=models.PositiveBigIntegerField(
                blank=True, editable=False, null=True, verbose_name="tax (minor units)"
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="checkout_amount_total",
            field=models.PositiveBigIntegerField(
                blank=True, editable=False, null=True, verbose_name="total paid (minor units)"
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="checkout_currency",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                max_length=3,
                verbose_name="currency paid",
            ),
        ),
    ]
