"""``manage.py client_billing_expire``: run the expiry sweep once, now.

The same work the every-minute schedule does; handy in cron without a cluster, or
to check what the schedule would do.
"""

from django.core.management.base import BaseCommand

from ...tasks import expire_due_invoices


class Command(BaseCommand):
    help = (
        "Expire every pending invoice whose payment link has run out, and queue the "
        "expiry of their open Stripe Checkout Sessions."
    )

    def handle(self, *args, **options):
        count = expire_due_invoices()
        self.stdout.write(f"Expired {count} invoice{'s' if count != 1 else ''}.")
