"""Tax and discounts on billing requests; per-site tax rates and the site's tax mode.

The new NOT NULL columns of the invoice table have database defaults, so on SQLite they
are added with ``ALTER TABLE ... ADD COLUMN ... DEFAULT`` instead of Django's rebuild of
the whole table (one full copy per column otherwise); other databases add them as Django
does (a default in the catalogue, no rewrite).
"""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class AddColumnWithDatabaseDefault(migrations.AddField):
    """``AddField`` of a NOT NULL field with a constant ``db_default``, without SQLite's
    table rebuild."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "sqlite":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        field = model._meta.get_field(self.name)
        definition, params = schema_editor.column_sql(model, field, include_default=True)
        schema_editor.execute(
            f"ALTER TABLE {schema_editor.quote_name(model._meta.db_table)} "
            f"ADD COLUMN {schema_editor.quote_name(field.column)} {definition}",
            params,
        )
        return None


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0014_invoice_lines"),
        ("wagtailcore", "0089_log_entry_data_json_null_to_object"),  # in every Wagtail >= 6.0
    ]

    operations = [
        migrations.AddField(
            model_name="clientbillingsettings",
            name="tax_mode",
            field=models.CharField(
                choices=[
                    ("none", "No tax"),
                    ("rates", "Tax rates I define"),
                    ("stripe_tax", "Stripe Tax (calculated at checkout)"),
                ],
                db_default="none",
                default="none",
                help_text="Tax rates: you define them (Snippets → Tax rates) and pick one per request. Stripe Tax: Stripe calculates tax at checkout from the client's address.",
                max_length=12,
                verbose_name="tax",
            ),
        ),
        AddColumnWithDatabaseDefault(
            model_name="invoice",
            name="automatic_tax",
            field=models.BooleanField(
                db_default=False,
                default=False,
                help_text="Stripe calculates the tax at checkout from the client's address.",
                verbose_name="Stripe Tax",
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="discount_amount",
            field=models.PositiveBigIntegerField(
                blank=True, null=True, verbose_name="discount amount (minor units)"
            ),
        ),
        AddColumnWithDatabaseDefault(
            model_name="invoice",
            name="discount_duration",
            field=models.CharField(
                choices=[("once", "The first payment only"), ("forever", "Every payment")],
                db_default="once",
                default="once",
                max_length=8,
                verbose_name="discount applies to",
            ),
        ),
        AddColumnWithDatabaseDefault(
            model_name="invoice",
            name="discount_kind",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "No discount"),
                    ("amount", "An amount off"),
                    ("percent", "A percentage off"),
                    ("promotion_code", "Let the client enter a promotion code"),
                ],
                db_default="",
                default="",
                max_length=16,
                verbose_name="discount",
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="discount_percent",
            field=models.DecimalField(
                blank=True,
                decimal_places=2,
                max_digits=5,
                null=True,
                verbose_name="discount percentage",
            ),
        ),
        AddColumnWithDatabaseDefault(
            model_name="invoice",
            name="stripe_coupon_id",
            field=models.CharField(
                blank=True, db_default="", default="", editable=False, max_length=255
            ),
        ),
        AddColumnWithDatabaseDefault(
            model_name="invoice",
            name="tax_inclusive",
            field=models.BooleanField(
                db_default=False, default=False, verbose_name="tax included in prices"
            ),
        ),
        AddColumnWithDatabaseDefault(
            model_name="invoice",
            name="tax_name",
            field=models.CharField(
                blank=True, db_default="", default="", max_length=50, verbose_name="tax"
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="tax_percentage",
            field=models.DecimalField(
                blank=True, decimal_places=4, max_digits=7, null=True, verbose_name="tax percentage"
            ),
        ),
        migrations.CreateModel(
            name="TaxRate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "display_name",
                    models.CharField(
                        help_text='As the client reads it, such as "VAT".',
                        max_length=50,
                        verbose_name="name",
                    ),
                ),
                (
                    "percentage",
                    models.DecimalField(
                        decimal_places=4,
                        max_digits=7,
                        validators=[
                            django.core.validators.MinValueValidator(0),
                            django.core.validators.MaxValueValidator(100),
                        ],
                        verbose_name="percentage",
                    ),
                ),
                (
                    "inclusive",
                    models.BooleanField(
                        default=False,
                        help_text="On: the amounts you enter already include this tax. Off: it is added.",
                        verbose_name="included in prices",
                    ),
                ),
                (
                    "country",
                    models.CharField(
                        blank=True,
                        help_text="Two-letter country code, such as DE or US. Optional.",
                        max_length=2,
                        verbose_name="country",
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        blank=True,
                        help_text="The state or region's code without the country, such as CA. Optional.",
                        max_length=10,
                        verbose_name="region",
                    ),
                ),
                (
                    "active",
                    models.BooleanField(default=True, editable=False, verbose_name="active"),
                ),
                ("stripe_ids", models.JSONField(blank=True, default=dict, editable=False)),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                (
                    "replaced_by",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="wagtail_client_billing.taxrate",
                    ),
                ),
                (
                    "site",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="wagtailcore.site",
                        verbose_name="site",
                    ),
                ),
            ],
            options={
                "verbose_name": "tax rate",
                "verbose_name_plural": "tax rates",
                "ordering": ["display_name", "percentage", "pk"],
            },
        ),
        migrations.AddField(
            model_name="invoice",
            name="tax_rate",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="invoices",
                to="wagtail_client_billing.taxrate",
                verbose_name="tax rate",
            ),
        ),
        migrations.AddConstraint(
            model_name="taxrate",
            constraint=models.CheckConstraint(
                condition=models.Q(("percentage__gte", 0), ("percentage__lte", 100)),
                name="wcb_taxrate_percentage_range",
            ),
        ),
    ]
