"""The pages an invoice publishes when paid and unpublishes when it expires.

An invoice may name a page to publish when it is paid (hand a client their new site
the moment they pay) and one to unpublish when it expires. :mod:`.lifecycle` runs
:func:`run_page_actions` after the status change commits, before it sends
:data:`~wagtail_client_billing.signals.invoice_status_changed`. It is deliberately not a
receiver of that signal: the signal is for the site's own code, so
``invoice_status_changed.has_listeners()`` says whether anyone needs every changed
invoice loaded in full, and the expiry sweep loads only the invoices that have a page
to unpublish when nobody does.

The actions run as the editor who created the invoice, and only if that editor may
publish the page: Wagtail's own publish and unpublish actions check it, so the app
never lets a billing request do what its author could not.
"""

from __future__ import annotations

import logging
from typing import Any

from wagtail.actions.publish_page_revision import PublishPagePermissionError
from wagtail.actions.unpublish_page import UnpublishPagePermissionError
from wagtail.log_actions import log

from .models import Invoice, InvoiceStatus

logger = logging.getLogger(__name__)


def has_page_action(invoice: Invoice, new: str) -> bool:
    """Whether :func:`run_page_actions` has anything to do for a change to ``new``."""
    if new == InvoiceStatus.PAID:
        return invoice.publish_page_when_paid_id is not None
    if new == InvoiceStatus.EXPIRED:
        return invoice.unpublish_page_when_expired_id is not None
    return False


def run_page_actions(invoice: Invoice, new: str) -> None:
    """Publish or unpublish the invoice's page for a change to ``new``, if it names one."""
    if not has_page_action(invoice, new):
        return
    if new == InvoiceStatus.PAID:
        publish_page_for(invoice)
    else:
        unpublish_page_for(invoice)


def publish_page_for(invoice: Invoice) -> bool:
    """Publish the invoice's "publish when paid" page as the invoice's author."""
    page = invoice.publish_page_when_paid
    if page is None:
        return False
    page = page.specific
    user = invoice.created_by
    try:
        revision = page.latest_revision or page.save_revision(user=user, log_action=False)
        revision.publish(user=user)
    except PublishPagePermissionError:
        return _refused(invoice, page, "publish")
    _log_both(invoice, page, "wagtail_client_billing.page_published", user)
    return True


def unpublish_page_for(invoice: Invoice) -> bool:
    """Unpublish the invoice's "unpublish when expired" page as the invoice's author."""
    page = invoice.unpublish_page_when_expired
    if page is None:
        return False
    page = page.specific
    if not page.live:
        return False
    user = invoice.created_by
    try:
        page.unpublish(user=user)
    except UnpublishPagePermissionError:
        return _refused(invoice, page, "unpublish")
    _log_both(invoice, page, "wagtail_client_billing.page_unpublished", user)
    return True


def _log_both(invoice: Invoice, page: Any, action: str, user: Any) -> None:
    data = {
        "invoice": invoice.number,
        "invoice_id": invoice.pk,
        "page": page.pk,
        "title": page.title,
    }
    log(instance=invoice, action=action, user=user, data=data)
    log(instance=page, action=action, user=user, data=data)


def _refused(invoice: Invoice, page: Any, what: str) -> bool:
    logger.warning(
        "Invoice %s: %s of page %s refused: its author lacks permission",
        invoice.number,
        what,
        page.pk,
    )
    log(
        instance=invoice,
        action="wagtail_client_billing.page_action_refused",
        user=invoice.created_by,
        data={"page": page.pk, "title": page.title, "action": what},
    )
    return False
