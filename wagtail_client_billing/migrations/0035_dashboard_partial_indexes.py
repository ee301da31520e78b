"""Three invoice indexes that SQLite's planner could not use for the dashboard.

The billing overview counts pending invoices expiring in the next 24 hours, disputes to
answer and past-due subscriptions. At 1,000,000 invoices on SQLite those counts took
150 to 300 milliseconds each, because:

- ``wcb_invoice_pending_expiry`` held only ``expires_at``: a query's ``status =
  'pending'`` was an equality on ``wcb_invoice_status_created`` too, which the planner
  preferred without statistics (or with those of a limited ``ANALYZE``), and read every
  pending invoice. It now leads with ``status``, so it is the better of the two.
- ``wcb_invoice_dispute_response`` and ``wcb_invoice_past_due`` had an ``IN`` list as
  their condition. SQLite uses a partial index only when the query's terms imply its
  condition, and Django binds the query's ``IN`` list as parameters, which never do: the
  counts scanned the table. ``wcb_invoice_disputed`` and ``wcb_invoice_subscription``
  hold the invoices with a dispute, or a subscription, at all (``<> ''``), a condition
  the queries state (``billing.overview``).

PostgreSQL used the old ones and uses the new ones alike; there, the indexes are built
and dropped ``CONCURRENTLY`` (not atomic; ``_operations.Concurrently``), so a large
invoice table stays writable meanwhile.
"""

from django.db import migrations, models

from ._operations import Concurrently


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("wagtail_client_billing", "0034_partial_session_and_tax_rate_indexes"),
    ]

    operations = [
        Concurrently(
            migrations.RemoveIndex(model_name="invoice", name="wcb_invoice_pending_expiry")
        ),
        Concurrently(
            migrations.AddIndex(
                model_name="invoice",
                index=models.Index(
                    condition=models.Q(("status", "pending")),
                    fields=["status", "expires_at"],
                    name="wcb_invoice_pending_expiry",
                ),
            )
        ),
        Concurrently(
            migrations.RemoveIndex(model_name="invoice", name="wcb_invoice_dispute_response")
        ),
        Concurrently(
            migrations.AddIndex(
                model_name="invoice",
                index=models.Index(
                    condition=models.Q(("dispute_status", ""), _negated=True),
                    fields=["site"],
                    name="wcb_invoice_disputed",
                ),
            )
        ),
        Concurrently(migrations.RemoveIndex(model_name="invoice", name="wcb_invoice_past_due")),
        Concurrently(
            migrations.AddIndex(
                model_name="invoice",
                index=models.Index(
                    condition=models.Q(("subscription_status", ""), _negated=True),
                    fields=["site"],
                    name="wcb_invoice_subscription",
                ),
            )
        ),
    ]
