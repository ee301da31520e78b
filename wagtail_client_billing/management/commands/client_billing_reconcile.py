"""``manage.py client_billing_reconcile``: ask Stripe about open Checkout Sessions, now.

For webhooks that never arrived (endpoint down, a secret misconfigured): each pending,
processing or recently expired invoice that holds a Checkout Session has that session
read from Stripe and applied through the same function the webhooks use. The schedule
(``tasks.reconcile_open_sessions``) does the same every 15 minutes.

Then the disputes of every connected account with a payment within
``RECONCILE_PAYMENTS_WINDOW_DAYS`` are read, and one whose webhook was lost recorded.
Then the refunds of payments made within the same window are listed from Stripe and
applied, for a refund whose webhook was lost. The 15-minute schedule does all three.
"""

from django.core.management.base import BaseCommand

from ...billing import disputes
from ...billing.checkout import reconcile_open_sessions
from ...billing.refunds import reconcile_refunds


class Command(BaseCommand):
    help = (
        "Read the Checkout Session of every unpaid invoice from Stripe and apply its state "
        "(paid, processing, expired session), for webhooks that never arrived."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit", type=int, default=None, help="Check at most this many invoices."
        )

    def handle(self, *args, limit=None, **options):
        report = reconcile_open_sessions(limit=limit)
        self.stdout.write(f"Reconciled Checkout Sessions: {report}.")
        for error in report.errors:
            self.stderr.write(error)
        refunds = reconcile_refunds(limit=limit)
        self.stdout.write(f"Reconciled refunds: {refunds}.")
        for error in refunds.errors:
            self.stderr.write(error)
        if limit is None:
            found = disputes.reconcile()
            self.stdout.write(f"Reconciled disputes: {found}.")
            for error in found.errors:
                self.stderr.write(error)
