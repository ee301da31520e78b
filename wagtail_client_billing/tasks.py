"""django-q2 task functions and the schedules they run on. (Being built: issue 7.)

Views queue work through the ``queue_*`` helpers here, never with ``async_task``
directly, so that every task is queued only after the transaction commits.
"""

from __future__ import annotations

from django.db import transaction
from django_q.tasks import async_task

from .models import EmailStatus, Invoice


def queue_invoice_email(invoice: Invoice) -> None:
    """Mark the invoice's email queued and send it from a worker after commit."""
    Invoice.objects.filter(pk=invoice.pk).update(email_status=EmailStatus.QUEUED)
    invoice.email_status = EmailStatus.QUEUED
    pk = invoice.pk
    transaction.on_commit(lambda: async_task(send_invoice_email, pk))


def send_invoice_email(invoice_id: int) -> None:
    raise NotImplementedError


def queue_expire_checkout_session(invoice: Invoice) -> None:
    """Expire the invoice's open Checkout Session on Stripe, from a worker, after commit."""
    if not invoice.checkout_session_id:
        return
    pk = invoice.pk
    transaction.on_commit(lambda: async_task(expire_checkout_session, pk))


def expire_checkout_session(invoice_id: int) -> None:
    raise NotImplementedError
