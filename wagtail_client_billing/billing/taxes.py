"""Tax rates and discounts: what an editor defines, and what Checkout needs of Stripe.

* A :class:`~..models.TaxRate` is made on a connected account as a Stripe tax rate the
  first time a Checkout Session there needs it (:func:`stripe_tax_rate_id`), and its id
  is kept per account. Stripe does not let a tax rate's percentage or inclusiveness
  change, so :func:`revise` makes a new rate for any change an editor makes and archives
  the old one, here at once and (``active=false``) on every account it was made on by a
  task (:func:`archive_on_stripe`), retried while Stripe fails.
* A request's editor-set discount becomes a coupon on the connected account the first
  time a Checkout Session needs it (:func:`coupon_id`).
* Stripe Tax needs the connected account's tax settings to be active
  (:func:`stripe_tax_problem`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import gateway, taskqueue
from ..models import (
    ClientBillingSettings,
    DiscountKind,
    Invoice,
    StripeAccount,
    TaxMode,
    TaxRate,
)

logger = logging.getLogger(__name__)


def site_tax_mode(site_id: int) -> str:
    settings = ClientBillingSettings.objects.filter(site_id=site_id).only("tax_mode").first()
    return settings.tax_mode if settings else TaxMode.NONE


def revise(rate: TaxRate, changes: dict[str, object]) -> TaxRate:
    """Apply an editor's ``changes`` (field name → value) to ``rate``.

    Nothing changed: ``rate`` itself. Otherwise a new, active rate with the changes
    replaces it; ``rate`` is archived (``active`` false, ``replaced_by`` the new one) and
    its Stripe tax rates are archived by a task once this commits (:func:`archive_on_stripe`,
    retried while Stripe fails): Checkout only ever uses the new rate's from now on.
    """
    changed = {
        name: value
        for name, value in changes.items()
        if name in TaxRate.VERSIONED_FIELDS and getattr(rate, name) != value
    }
    if not changed:
        return rate
    with transaction.atomic():
        old = TaxRate.objects.select_for_update().get(pk=rate.pk)
        new = TaxRate(site_id=old.site_id)
        for name in TaxRate.VERSIONED_FIELDS:
            setattr(new, name, changed.get(name, getattr(old, name)))
        new.save()
        TaxRate.objects.filter(pk=old.pk).update(active=False, replaced_by=new)
        _queue_stripe_archive(old)
    return new


def archive(rate: TaxRate) -> None:
    """Stop offering ``rate`` for new requests, and archive its Stripe tax rates."""
    with transaction.atomic():
        TaxRate.objects.filter(pk=rate.pk).update(active=False)
        _queue_stripe_archive(rate)


def _queue_stripe_archive(rate: TaxRate) -> None:
    """Have a worker archive ``rate``'s Stripe tax rates once this transaction commits
    (the editor's save does not wait for Stripe, nor fail with it); the due time lets
    ``tasks.resume_tax_rate_archives`` find the work again if the task is lost."""
    made_on_stripe = TaxRate.objects.filter(pk=rate.pk).exclude(stripe_ids={})
    if not made_on_stripe.update(stripe_archive_due_at=timezone.now()):
        return
    taskqueue.on_commit(
        f"{taskqueue.TASKS}.archive_stripe_tax_rates", rate.pk, group="client_billing_stripe"
    )


def archive_on_stripe(rate_pk: int, attempt: int) -> str:
    """Archive the Stripe tax rates of an archived rate, on every account it was made on.

    Archiving is idempotent on Stripe (``active=false`` again changes nothing), so a try
    repeats the accounts an earlier one already did. Raises the first
    :class:`~..gateway.GatewayError`, for the task to record and retry; done, the rate is
    no longer due. Returns what happened, for the task's result.
    """
    rate = TaxRate.objects.filter(pk=rate_pk, stripe_archive_due_at__isnull=False).first()
    if rate is None:
        return "not due"
    modes = dict(
        StripeAccount.objects.filter(stripe_id__in=list(rate.stripe_ids)).values_list(
            "stripe_id", "test_mode"
        )
    )
    for account_id, tax_rate_id in rate.stripe_ids.items():
        if account_id in modes:  # an account deleted since has nothing to archive
            gateway.archive_tax_rate(
                test_mode=modes[account_id],
                account_id=account_id,
                tax_rate_id=tax_rate_id,
                attempt=attempt,
            )
    TaxRate.objects.filter(pk=rate.pk).update(
        stripe_archive_due_at=None, stripe_archive_attempts=attempt + 1, stripe_archive_error=""
    )
    return "archived"


def archive_retry_failed(
    rate_pk: int, attempt: int, error: Exception, retry_at: datetime | None
) -> bool:
    """Record try number ``attempt + 1``'s failure on the rate: due again at ``retry_at``,
    or, ``None``, given up (no longer due). Returns whether the rate was still due."""
    return bool(
        TaxRate.objects.filter(pk=rate_pk, stripe_archive_due_at__isnull=False).update(
            stripe_archive_due_at=retry_at,
            stripe_archive_attempts=attempt + 1,
            stripe_archive_error=str(error)[:500],
        )
    )


def archives_due(older_than: datetime) -> list[tuple[int, int]]:
    """``(pk, attempts)`` of the rates whose Stripe archive was due before ``older_than``:
    a task lost with its worker, or a retry whose schedule did not run."""
    return list(
        TaxRate.objects.filter(stripe_archive_due_at__lt=older_than)
        .order_by("pk")
        .values_list("pk", "stripe_archive_attempts")[:500]
    )


def stripe_tax_rate_id(invoice: Invoice) -> str | None:
    """The Stripe tax rate for the invoice's tax on its account, made the first time.

    The invoice's own copy of the figures is what Stripe gets: a request sent before its
    rate was changed is charged as it was sent (its Stripe tax rate is made from the
    copy, keyed by the figures, and reused by every request with the same figures).
    """
    if invoice.tax_percentage is None or invoice.automatic_tax:
        return None
    account_id = invoice.account.stripe_id
    rate = invoice.tax_rate
    same = (
        rate is not None
        and rate.percentage == invoice.tax_percentage
        and rate.inclusive == invoice.tax_inclusive
        and rate.display_name == invoice.tax_name
    )
    if same and rate is not None and rate.stripe_ids.get(account_id):
        return str(rate.stripe_ids[account_id])
    made = gateway.create_tax_rate(
        test_mode=invoice.test_mode,
        account_id=account_id,
        display_name=invoice.tax_name or _("Tax"),
        percentage=invoice.tax_percentage,
        inclusive=invoice.tax_inclusive,
        country=rate.country if rate is not None else "",
        state=rate.state if rate is not None else "",
        key=f"{rate.pk if rate is not None else 0}",
    )
    if same and rate is not None:
        with transaction.atomic():
            locked = TaxRate.objects.select_for_update().get(pk=rate.pk)
            locked.stripe_ids = {**locked.stripe_ids, account_id: made}
            TaxRate.objects.filter(pk=rate.pk).update(stripe_ids=locked.stripe_ids)
            rate.stripe_ids = locked.stripe_ids
    return made


def coupon_id(invoice: Invoice) -> str | None:
    """The coupon for the invoice's editor-set discount, made the first time."""
    if invoice.discount_kind not in (DiscountKind.AMOUNT, DiscountKind.PERCENT):
        return None
    if invoice.stripe_coupon_id:
        return invoice.stripe_coupon_id
    made = gateway.create_coupon(invoice)
    Invoice.objects.filter(pk=invoice.pk, stripe_coupon_id="").update(stripe_coupon_id=made)
    invoice.stripe_coupon_id = made
    return made


def prepare_checkout(invoice: Invoice) -> gateway.CheckoutExtras:
    """Make (or find) the tax rate and coupon the invoice's Checkout Session names.

    Raises:
        gateway.GatewayError: Stripe refused or could not be reached.
    """
    return gateway.CheckoutExtras(
        tax_rate_id=stripe_tax_rate_id(invoice), coupon_id=coupon_id(invoice)
    )


def stripe_tax_problem(account: StripeAccount | None) -> str | None:
    """Why ``account`` cannot use Stripe Tax, in words for an editor; ``None`` if it can."""
    if account is None:
        return None
    try:
        status = gateway.retrieve_tax_settings_status(
            test_mode=account.test_mode, account_id=account.stripe_id
        )
    except gateway.GatewayError as exc:
        return _(
            "Could not ask Stripe whether the account %(account)s can use Stripe Tax: %(problem)s"
        ) % {"account": account.stripe_id, "problem": exc}
    if status != "active":
        return _(
            "Stripe Tax is not set up on the Stripe account %(account)s: add its head office "
            "address and tax registrations in its Stripe Dashboard (Tax → Settings), or "
            "choose another way to tax requests."
        ) % {"account": account.stripe_id}
    return None
