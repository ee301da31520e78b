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
"""

from django.dispatch import Signal

invoice_status_changed = Signal()
