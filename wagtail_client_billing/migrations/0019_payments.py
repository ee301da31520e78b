"""Payments: one row per payment an invoice received.

Filled in from what is recorded already: one payment per paid invoice (its Checkout
Session, payment intent and the amount Checkout charged, else the invoice's amount),
and one per :class:`SubscriptionRenewal` (its Stripe invoice, amount and date). A
recurring invoice's first payment has no Stripe invoice id yet; the next ``invoice.paid``
of it (a redelivery) fills it in rather than adding a second first payment.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


BATCH = 1000


def backfill_payments(apps, schema_editor):
    db = schema_editor.connection.alias
    Invoice = apps.get_model("wagtail_client_billing", "Invoice")
    Payment = apps.get_model("wagtail_client_billing", "Payment")
    Renewal = apps.get_model("wagtail_client_billing", "SubscriptionRenewal")
    batch = []
    seen_sessions, seen_intents = set(), set()
    paid = Invoice.objects.using(db).filter(status="paid").order_by("pk")
    for invoice in paid.iterator(chunk_size=BATCH):
        session = (
            invoice.checkout_session_id if invoice.checkout_session_id not in seen_sessions else ""
        )
        intent = invoice.payment_intent_id if invoice.payment_intent_id not in seen_intents else ""
        seen_sessions.add(session)
        seen_intents.add(intent)
        recurring = invoice.billing_type != "one_time"
        if invoice.checkout_amount_total is not None and invoice.checkout_currency:
            amount, currency = invoice.checkout_amount_total, invoice.checkout_currency
        else:
            amount, currency = invoice.amount, invoice.currency
        batch.append(
            Payment(
                invoice_id=invoice.pk,
                kind="subscription_create" if recurring else "checkout",
                checkout_session_id=session,
                payment_intent_id=intent,
                amount=amount,
                currency=currency.upper(),
                paid_at=invoice.paid_at or invoice.status_changed_at or invoice.created_at,
            )
        )
        if len(batch) >= BATCH:
            Payment.objects.using(db).bulk_create(batch)
            batch = []
    renewals = Renewal.objects.using(db).select_related("invoice").order_by("pk")
    for renewal in renewals.iterator(chunk_size=BATCH):
        batch.append(
            Payment(
                invoice_id=renewal.invoice_id,
                kind="renewal",
                stripe_invoice_id=renewal.stripe_invoice_id,
                amount=max(renewal.amount, 0),
                currency=(renewal.currency or renewal.invoice.currency).upper(),
                paid_at=renewal.paid_at,
            )
        )
        if len(batch) >= BATCH:
            Payment.objects.using(db).bulk_create(batch)
            batch = []
    if batch:
        Payment.objects.using(db).bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("wagtail_client_billing", "0018_unused_invoice_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="StripeInvoicePayment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "stripe_invoice_id",
                    models.CharField(max_length=255, unique=True, verbose_name="Stripe invoice"),
                ),
                ("payment_intent_id", models.CharField(blank=True, default="", max_length=255)),
                ("charge_id", models.CharField(blank=True, default="", max_length=255)),
                ("received_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "Stripe invoice payment",
                "verbose_name_plural": "Stripe invoice payments",
            },
        ),
        migrations.CreateModel(
            name="Payment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("checkout", "Payment"),
                            ("subscription_create", "First subscription payment"),
                            ("renewal", "Renewal"),
                        ],
                        default="checkout",
                        max_length=32,
                        verbose_name="kind",
                    ),
                ),
                (
                    "checkout_session_id",
                    models.CharField(
                        blank=True, default="", max_length=255, verbose_name="Checkout Session"
                    ),
                ),
                (
                    "payment_intent_id",
                    models.CharField(
                        blank=True, default="", max_length=255, verbose_name="payment intent"
                    ),
                ),
                (
                    "charge_id",
                    models.CharField(blank=True, default="", max_length=255, verbose_name="charge"),
                ),
                (
                    "stripe_invoice_id",
                    models.CharField(
                        blank=True, default="", max_length=255, verbose_name="Stripe invoice"
                    ),
                ),
                (
                    "amount",
                    models.PositiveBigIntegerField(default=0, verbose_name="amount (minor units)"),
                ),
                ("currency", models.CharField(max_length=3, verbose_name="currency")),
                (
                    "amount_refunded",
                    models.PositiveBigIntegerField(
                        db_default=0, default=0, verbose_name="amount refunded (minor units)"
                    ),
                ),
                ("paid_at", models.DateTimeField(verbose_name="paid at")),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="recorded at"
                    ),
                ),
                (
                    "invoice",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="payments",
                        to="wagtail_client_billing.invoice",
                        verbose_name="invoice",
                    ),
                ),
            ],
            options={
                "verbose_name": "payment",
                "verbose_name_plural": "payments",
                "ordering": ["paid_at", "pk"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("checkout_session_id", ""), _negated=True),
                        fields=("checkout_session_id",),
                        name="wcb_payment_checkout_session_id",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("payment_intent_id", ""), _negated=True),
                        fields=("payment_intent_id",),
                        name="wcb_payment_payment_intent_id",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("charge_id", ""), _negated=True),
                        fields=("charge_id",),
                        name="wcb_payment_charge_id",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("stripe_invoice_id", ""), _negated=True),
                        fields=("stripe_invoice_id",),
                        name="wcb_payment_stripe_invoice_id",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("kind", "subscription_create")),
                        fields=("invoice",),
                        name="wcb_payment_one_first_payment",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("amount_refunded__lte", models.F("amount"))),
                        name="wcb_payment_refund_within_amount",
                    ),
                ],
            },
        ),
        migrations.RunPython(backfill_payments, migrations.RunPython.noop),
    ]
