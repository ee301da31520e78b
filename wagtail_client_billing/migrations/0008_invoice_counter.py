"""Each site's invoice numbers move off its settings row into a row of their own.

The settings form saves the settings row; an invoice created while an editor saved it
could lose its increment, and the next invoice then failed on ``(site, sequence)``.
The counts are carried over in both directions, so nothing is lost either way.
"""

from django.db import migrations, models
from django.db.models import Max


def settings_to_counters(apps, schema_editor):
    """One counter per site that has a count, never below the site's highest invoice."""
    Settings = apps.get_model("wagtail_client_billing", "ClientBillingSettings")
    Invoice = apps.get_model("wagtail_client_billing", "Invoice")
    Counter = apps.get_model("wagtail_client_billing", "InvoiceCounter")
    last = dict(
        Settings.objects.filter(last_invoice_sequence__gt=0).values_list(
            "site_id", "last_invoice_sequence"
        )
    )
    for site_id, highest in Invoice.objects.values("site_id").annotate(
        highest=Max("sequence")
    ).values_list("site_id", "highest"):
        last[site_id] = max(last.get(site_id, 0), highest or 0)
    Counter.objects.bulk_create(
        [Counter(site_id=site_id, last_sequence=value) for site_id, value in last.items()]
    )


def counters_to_settings(apps, schema_editor):
    Settings = apps.get_model("wagtail_client_billing", "ClientBillingSettings")
    Counter = apps.get_model("wagtail_client_billing", "InvoiceCounter")
    for site_id, value in Counter.objects.values_list("site_id", "last_sequence"):
        Settings.objects.update_or_create(
            site_id=site_id, defaults={"last_invoice_sequence": value}
        )


class Migration(migrations.Migration):

    dependencies = [
        ('wagtail_client_billing', '0007_lost_tasks_and_withdrawn_sessions'),
    ]

    operations = [
        migrations.CreateModel(
            name='InvoiceCounter',
            fields=[
                ('site', models.OneToOneField(on_delete=models.deletion.CASCADE, primary_key=True, related_name='client_billing_invoice_counter', serialize=False, to='wagtailcore.site', verbose_name='site')),
                ('last_sequence', models.PositiveIntegerField(default=0, verbose_name='last invoice sequence')),
            ],
            options={
                'verbose_name': 'invoice counter',
                'verbose_name_plural': 'invoice counters',
            },
        ),
        migrations.RunPython(settings_to_counters, counters_to_settings),
        migrations.RemoveField(
            model_name='clientbillingsettings',
            name='last_invoice_sequence',
        ),
    ]
