"""Renewals, the recorded subscription state and a settled delayed payment as data.

"Was this renewal counted?", "is a newer subscription state recorded?" and "was this
session's delayed payment settled?" used to be searches of the audit log and of stored
webhook payloads; they are now a ``SubscriptionRenewal`` row per Stripe invoice,
``Invoice.subscription_state_at`` and ``Invoice.delayed_payment_resolved_session``.
What happened before the upgrade is filled in from the same evidence (the
``renewal_paid`` log entries, the processed events whose payload is still stored), so
an event redelivered or reprocessed after the upgrade is not applied twice.
"""

from datetime import UTC, datetime

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models
from django.utils.dateparse import parse_datetime

APP = "wagtail_client_billing"
RENEWAL_ACTION = "wagtail_client_billing.renewal_paid"
ASYNC_TYPES = (
    "checkout.session.async_payment_failed",
    "checkout.session.async_payment_succeeded",
)
BATCH = 1000


def _object_id(payload):
    data = payload.get("data") if isinstance(payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def _created(payload):
    value = payload.get("created") if isinstance(payload, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _renewals_from_the_log(apps, db):
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model(APP, "ClientBillingLogEntry")
    Invoice = apps.get_model(APP, "Invoice")
    Renewal = apps.get_model(APP, "SubscriptionRenewal")
    content_type = ContentType.objects.using(db).filter(app_label=APP, model="invoice").first()
    if content_type is None:
        return
    entries = (
        LogEntry.objects.using(db)
        .filter(content_type_id=content_type.pk, action=RENEWAL_ACTION)
        .order_by("timestamp", "pk")
        .values_list("object_id", "data", "timestamp")
    )
    seen: set[str] = set()
    rows = []
    for object_id, data, timestamp in entries.iterator():
        data = data if isinstance(data, dict) else {}
        stripe_invoice = data.get("stripe_invoice")
        if not (isinstance(stripe_invoice, str) and stripe_invoice and str(object_id).isdigit()):
            continue
        if stripe_invoice in seen:
            continue
        seen.add(stripe_invoice)
        amount = data.get("amount")
        paid_at = parse_datetime(str(data.get("paid_at") or "")) or timestamp
        rows.append(
            Renewal(
                invoice_id=int(object_id),
                stripe_invoice_id=stripe_invoice[:255],
                amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else 0,
                currency=str(data.get("currency") or "")[:3],
                billing_reason=str(data.get("billing_reason") or "")[:64],
                paid_at=paid_at,
            )
        )
    existing = set(
        Invoice.objects.using(db)
        .filter(pk__in={row.invoice_id for row in rows})
        .values_list("pk", flat=True)
    )
    Renewal.objects.using(db).bulk_create(
        [row for row in rows if row.invoice_id in existing],
        batch_size=BATCH,
        ignore_conflicts=True,
    )


def _states_from_the_events(apps, db):
    Invoice = apps.get_model(APP, "Invoice")
    WebhookEvent = apps.get_model(APP, "WebhookEvent")
    processed = WebhookEvent.objects.using(db).filter(outcome="processed", invoice__isnull=False)
    subscriptions = dict(
        Invoice.objects.using(db)
        .filter(webhook_events__type__startswith="customer.subscription.")
        .values_list("pk", "subscription_id")
        .distinct()
    )
    newest: dict[int, datetime] = {}
    events = processed.filter(type__startswith="customer.subscription.").values_list(
        "invoice_id", "payload"
    )
    for invoice_id, payload in events.iterator():
        created = _created(payload)
        subscription = subscriptions.get(invoice_id)
        if created is None or (subscription and _object_id(payload) != subscription):
            continue  # purged, or about another subscription
        if invoice_id not in newest or created > newest[invoice_id]:
            newest[invoice_id] = created
    for invoice_id, created in newest.items():
        Invoice.objects.using(db).filter(pk=invoice_id, subscription_state_at__isnull=True).update(
            subscription_state_at=created
        )

    settled: dict[int, tuple[datetime, str]] = {}
    events = processed.filter(type__in=ASYNC_TYPES).values_list("invoice_id", "payload")
    for invoice_id, payload in events.iterator():
        session = _object_id(payload)
        if not session:
            continue  # purged
        created = _created(payload) or datetime.min.replace(tzinfo=UTC)
        if invoice_id not in settled or created >= settled[invoice_id][0]:
            settled[invoice_id] = (created, session[:255])
    for invoice_id, (_created_at, session) in settled.items():
        Invoice.objects.using(db).filter(pk=invoice_id, delayed_payment_resolved_session="").update(
            delayed_payment_resolved_session=session
        )


def fill_from_existing_evidence(apps, schema_editor):
    db = schema_editor.connection.alias
    _renewals_from_the_log(apps, db)
    _states_from_the_events(apps, db)


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("wagtail_client_billing", "0012_invoice_checkout_attempt_started_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="invoice",
            name="delayed_payment_resolved_session",
            field=models.CharField(
                blank=True, db_default="", default="", editable=False, max_length=255
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="subscription_state_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.CreateModel(
            name="SubscriptionRenewal",
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
                ("amount", models.BigIntegerField(default=0, verbose_name="amount")),
                ("currency", models.CharField(blank=True, max_length=3, verbose_name="currency")),
                (
                    "billing_reason",
                    models.CharField(blank=True, max_length=64, verbose_name="billing reason"),
                ),
                ("paid_at", models.DateTimeField(verbose_name="paid at")),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, verbose_name="created"),
                ),
                (
                    "invoice",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="renewals",
                        to="wagtail_client_billing.invoice",
                        verbose_name="invoice",
                    ),
                ),
            ],
            options={
                "verbose_name": "subscription renewal",
                "verbose_name_plural": "subscription renewals",
                "ordering": ["-paid_at", "-pk"],
            },
        ),
        migrations.RunPython(fill_from_existing_evidence, migrations.RunPython.noop),
    ]
