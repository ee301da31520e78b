"""Django signals for the domain events of this app.

``invoice_status_changed`` is sent after the transaction that changed an invoice's
status commits, once per real change, with keyword arguments:

- ``invoice``: the :class:`~wagtail_client_billing.models.Invoice` (its new state),
- ``old`` / ``new``: the status values before and after,
- ``source``: what caused it (:class:`wagtail_client_billing.lifecycle.Source`).

Example::

    from django.dispatch import receiver
    from wagtail_client_billing.signals import invoice_status_changed

    @receiver(invoice_status_changed)
    def notify_accounts(sender, invoice, old, new, source, **kwargs):
        if new == "paid":
            ...

``stripe_event_applied`` is sent inside the transaction that applies a Stripe webhook
event, after the app's own handling, for every event (handled or not), with ``event``
(the event dict), ``record`` (the :class:`~wagtail_client_billing.models.WebhookEvent`),
``outcome`` and ``invoice`` (or ``None``). A receiver that raises rolls the whole event
back and marks it failed, so Stripe retries it: handle your own event types here,
idempotently.

``dispute_changed`` is sent after the transaction that recorded a dispute's state
commits, with ``invoice``, ``dispute`` (the
:class:`~wagtail_client_billing.models.InvoiceDispute`) and ``what`` (``opened``,
``updated`` or ``closed``); a stale or repeated event sends nothing.

``subscription_changed`` is sent after a recurring invoice's subscription changed and
the change committed, with ``invoice`` and ``what``: ``cancelled``,
``cancellation_scheduled``, ``cancellation_undone``, ``renewal_failed`` or ``updated``.

The same events run the hooks ``client_billing_dispute_changed`` and
``client_billing_subscription_changed`` with the same arguments, positionally.
"""

from django.dispatch import Signal

invoice_status_changed = Signal()
stripe_event_applied = Signal()
dispute_changed = Signal()
subscription_changed = Signal()
