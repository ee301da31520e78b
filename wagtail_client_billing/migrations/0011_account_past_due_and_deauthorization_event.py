"""A connected account keeps Stripe's ``requirements.past_due`` apart from
``currently_due``, and the deauthorization event it recorded.

"Was this deauthorization logged already?" used to be a search of the audit log; it is
now ``StripeAccount.deauthorized_event_id``. Accounts whose deauthorization was logged
before this migration get the event's id from that log entry, so the event redelivered
(or reprocessed) after the upgrade is not logged again. What is past due is filled in
by the account's next ``account.updated`` event or Refresh status.
"""

from django.db import migrations, models

APP = "wagtail_client_billing"
UNLINKED_ACTION = "wagtail_client_billing.account_unlinked"


def event_ids_from_the_log(apps, schema_editor):
    db = schema_editor.connection.alias
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model(APP, "ClientBillingLogEntry")
    StripeAccount = apps.get_model(APP, "StripeAccount")
    content_type = (
        ContentType.objects.using(db).filter(app_label=APP, model="stripeaccount").first()
    )
    if content_type is None:
        return
    entries = (
        LogEntry.objects.using(db)
        .filter(content_type_id=content_type.pk, action=UNLINKED_ACTION)
        .order_by("timestamp", "pk")
        .values_list("object_id", "data")
    )
    first_event: dict[int, str] = {}
    for object_id, data in entries.iterator():
        event = data.get("event") if isinstance(data, dict) else None
        if isinstance(event, str) and event and str(object_id).isdigit():
            first_event.setdefault(int(object_id), event[:255])
    for pk, event in first_event.items():
        StripeAccount.objects.using(db).filter(pk=pk, deauthorized_event_id="").update(
            deauthorized_event_id=event
        )


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("wagtail_client_billing", "0010_webhookevent_traceback"),
    ]

    operations = [
        migrations.AddField(
            model_name="stripeaccount",
            name="requirements_past_due",
            field=models.JSONField(
                blank=True,
                db_default=models.Value([], models.JSONField()),
                default=list,
                verbose_name="requirements past due",
            ),
        ),
        migrations.AddField(
            model_name="stripeaccount",
            name="deauthorized_event_id",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                max_length=255,
                verbose_name="deauthorization event",
            ),
        ),
        migrations.RunPython(event_ids_from_the_log, migrations.RunPython.noop),
    ]
