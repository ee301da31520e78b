"""Paid notices: the billing contacts hear when a client pays.

Per site (``ClientBillingSettings.paid_notices``): a short email for each payment, a
daily digest, or nothing. :func:`record_payment` makes a :class:`~.models.PaidNotice`
per payment (the first one and each renewal) inside the transaction that records the
payment, unique by its key, so a redelivered event adds nothing. A notice of the
``each`` kind is sent by its task; the daily digest (a scheduled task) claims the rows
of a site not yet sent with one ``UPDATE``, so each payment is in exactly one digest.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from .. import emails, taskqueue
from ..models import ClientBillingSettings, Invoice, PaidNotice
from ..money import format_money

logger = logging.getLogger(__name__)

EACH = "each"
DAILY = "daily"
#: Email templates under ``wagtail_client_billing/emails/``.
PAID_NOTICE = "paid_notice"
PAID_DIGEST = "paid_digest"


def record_payment(
    invoice: Invoice, *, key: str, amount: int, currency: str, paid_at: datetime
) -> PaidNotice | None:
    """Note a payment for the billing contacts, if the invoice's site wants to hear."""
    mode = ClientBillingSettings.for_site(invoice.site).paid_notices
    if mode not in (EACH, DAILY):
        return None
    notice, created = PaidNotice.objects.get_or_create(
        key=key[:300],
        defaults={
            "invoice": invoice,
            "mode": mode,
            "amount": amount,
            "currency": currency or invoice.currency,
            "paid_at": paid_at,
        },
    )
    if created and mode == EACH:
        taskqueue.on_commit(f"{taskqueue.TASKS}.send_paid_notice", notice.pk)
    return notice if created else None


def send_one(notice_pk: int, attempt: int) -> tuple[str, emails.DeliveryError | None]:
    """Send an ``each`` notice once: claimed for ``attempt``, like the other notices."""
    claimed = PaidNotice.objects.filter(
        pk=notice_pk, sent_at__isnull=True, mode=EACH, attempts=attempt
    ).update(attempts=attempt + 1)
    if not claimed:
        return "already handled", None
    notice = PaidNotice.objects.select_related("invoice__site", "invoice__created_by").get(
        pk=notice_pk
    )
    invoice = notice.invoice
    to = emails.billing_contacts(invoice)
    if to:
        error = emails.send_notice(
            invoice,
            PAID_NOTICE,
            to,
            paid_amount=format_money(notice.amount, notice.currency or invoice.currency),
            paid_at=timezone.localtime(notice.paid_at),
            renewal=notice.key.startswith("renewal:"),
        )
        if error is not None:
            return "failed", error
    PaidNotice.objects.filter(pk=notice.pk).update(sent_at=timezone.now())
    return "sent", None


def each_due(older_than: datetime, max_attempts: int) -> list[tuple[int, int]]:
    """``(pk, attempts)`` of ``each`` notices not sent whose task may have been lost."""
    return list(
        PaidNotice.objects.filter(
            mode=EACH, sent_at__isnull=True, paid_at__lt=older_than, attempts__lt=max_attempts
        )
        .order_by("pk")
        .values_list("pk", "attempts")[:500]
    )


def send_digests(now: datetime | None = None) -> dict[str, int]:
    """Send each site's digest of the payments not yet in one; ``{"digests", "payments"}``.

    A run claims a site's rows with one ``UPDATE ... SET digest = <run> WHERE digest =
    ''`` (rows a failed run claimed but did not send, older than a day, are claimed
    again), sends one email per site, and marks them sent; a payment recorded while it
    runs waits for tomorrow's digest.
    """
    now = now or timezone.now()
    run = uuid.uuid4().hex
    stale = now - timedelta(hours=23)
    waiting = PaidNotice.objects.filter(mode=DAILY, sent_at__isnull=True)
    site_ids = set(waiting.values_list("invoice__site_id", flat=True).distinct())
    digests = payments = 0
    for site_id in sorted(site_ids):
        mine = waiting.filter(invoice__site_id=site_id)
        claimed = mine.filter(Q(digest="") | Q(digest__lt=_stamp(stale))).update(
            digest=f"{_stamp(now)}-{run}"
        )
        if not claimed:
            continue
        rows = list(
            PaidNotice.objects.filter(digest=f"{_stamp(now)}-{run}", invoice__site_id=site_id)
            .select_related("invoice__site", "invoice__created_by")
            .order_by("paid_at", "pk")
        )
        first = rows[0].invoice
        to = emails.billing_contacts(first)
        if to:
            error = emails.send_notice(first, PAID_DIGEST, to, payments=_lines(rows))
            if error is not None:
                logger.warning("Paid digest for site %s failed: %s", site_id, error.message)
                continue  # claimed; a run after the day's lease takes them again
        PaidNotice.objects.filter(pk__in=[r.pk for r in rows]).update(sent_at=now)
        digests += 1
        payments += len(rows)
    return {"digests": digests, "payments": payments}


def _stamp(at: datetime) -> str:
    """A sortable run stamp: claims older than another compare lower."""
    return at.strftime("%Y%m%d%H%M%S")


def _lines(rows: list[PaidNotice]) -> list[dict[str, Any]]:
    return [
        {
            "number": row.invoice.number,
            "client": row.invoice.email,
            "amount": format_money(row.amount, row.currency or row.invoice.currency),
            "paid_at": timezone.localtime(row.paid_at),
            "renewal": row.key.startswith("renewal:"),
        }
        for row in rows
    ]
