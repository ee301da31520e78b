"""Line items and the per-site catalogue.

Every existing invoice gets one line from its amount and description (quantity 1), so
``Invoice.amount`` is the sum of its lines from here on. Reversing drops the lines: the
invoice's amount and description were never changed, so nothing is lost.
"""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
import modelcluster.fields
from django.db import migrations, models


def one_line_per_invoice(apps, schema_editor):
    """One ``INSERT ... SELECT``: the database copies the rows, not Python, at any size."""
    Invoice = apps.get_model("wagtail_client_billing", "Invoice")
    InvoiceLine = apps.get_model("wagtail_client_billing", "InvoiceLine")
    qn = schema_editor.connection.ops.quote_name
    lines, invoices = qn(InvoiceLine._meta.db_table), qn(Invoice._meta.db_table)
    schema_editor.execute(
        f"INSERT INTO {lines} ({qn('invoice_id')}, {qn('position')}, {qn('description')}, "  # noqa: S608
        f"{qn('quantity')}, {qn('unit_amount')}) "
        f"SELECT {qn('id')}, 0, {qn('description')}, 1, {qn('amount')} FROM {invoices}"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0013_subscription_renewal_and_idempotency_columns"),
        ("wagtailcore", "0089_log_entry_data_json_null_to_object"),  # in every Wagtail >= 6.0
    ]

    operations = [
        migrations.CreateModel(
            name="Product",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=255, verbose_name="name")),
                (
                    "description",
                    models.CharField(
                        blank=True,
                        help_text="What the client reads on the line. Blank: the name.",
                        max_length=500,
                        verbose_name="description",
                    ),
                ),
                (
                    "unit_amount",
                    models.PositiveBigIntegerField(verbose_name="unit amount (minor units)"),
                ),
                ("currency", models.CharField(max_length=3, verbose_name="currency")),
                ("active", models.BooleanField(default=True, verbose_name="active")),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, editable=False, verbose_name="created"
                    ),
                ),
                (
                    "site",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="client_billing_products",
                        to="wagtailcore.site",
                        verbose_name="site",
                    ),
                ),
            ],
            options={
                "verbose_name": "catalogue product",
                "verbose_name_plural": "catalogue products",
                "ordering": ["site", "name", "pk"],
            },
        ),
        migrations.CreateModel(
            name="InvoiceLine",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("position", models.PositiveIntegerField(default=0, verbose_name="position")),
                (
                    "description",
                    models.CharField(blank=True, max_length=500, verbose_name="description"),
                ),
                (
                    "quantity",
                    models.PositiveIntegerField(
                        default=1,
                        validators=[django.core.validators.MinValueValidator(1)],
                        verbose_name="quantity",
                    ),
                ),
                (
                    "unit_amount",
                    models.PositiveBigIntegerField(verbose_name="unit amount (minor units)"),
                ),
                (
                    "invoice",
                    modelcluster.fields.ParentalKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="lines",
                        to="wagtail_client_billing.invoice",
                        verbose_name="invoice",
                    ),
                ),
                (
                    "product",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="lines",
                        to="wagtail_client_billing.product",
                        verbose_name="catalogue product",
                    ),
                ),
            ],
            options={
                "verbose_name": "invoice line",
                "verbose_name_plural": "invoice lines",
                "ordering": ["invoice", "position", "pk"],
            },
        ),
        migrations.AddIndex(
            model_name="product",
            index=models.Index(fields=["site", "active", "name"], name="wcb_product_site"),
        ),
        migrations.AddConstraint(
            model_name="invoiceline",
            constraint=models.CheckConstraint(
                condition=models.Q(("quantity__gte", 1)), name="wcb_line_quantity_min"
            ),
        ),
        migrations.RunPython(one_line_per_invoice, migrations.RunPython.noop),
    ]
