"""What the sweeps need to find lost work from the database alone.

``email_queued_at`` tells an invoice email whose task the broker lost (queued, never
claimed, for longer than a task may run); ``reminder_claimed_at`` a reminder whose
worker died; the partial index serves the sweep of withdrawn invoices whose Checkout
Session may still be open.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('wagtail_client_billing', '0006_access_log_entries'),
    ]

    operations = [
        migrations.AddField(
            model_name='invoice',
            name='email_queued_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='invoice',
            name='reminder_claimed_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name='invoice',
            index=models.Index(condition=models.Q(('status__in', ['expired', 'deleted']), models.Q(('checkout_session_url', ''), _negated=True)), fields=['status_changed_at'], name='wcb_invoice_withdrawn_session'),
        ),
    ]
