"""``manage.py client_billing_purge_webhook_payloads``: purge old webhook payloads now.

The same work the daily schedule does (``WEBHOOK_PAYLOAD_RETENTION``); handy in cron
without a cluster, or right after shortening the retention period.
"""

from django.core.management.base import BaseCommand

from ...tasks import purge_webhook_payloads


class Command(BaseCommand):
    help = (
        "Empty the stored payload of every processed, ignored or failed Stripe webhook "
        "event older than WEBHOOK_PAYLOAD_RETENTION; the events and their outcomes stay."
    )

    def handle(self, *args, **options):
        count = purge_webhook_payloads()
        self.stdout.write(f"Purged {count} webhook payload{'s' if count != 1 else ''}.")
