"""A withdrawn invoice leaves no payable Checkout Session behind, whatever ran at the
same moment: an editor's delete (single or bulk) or the expiry sweep against the client's
click on the pay link, in each order the two can interleave, and a lost expiry task.

The interleavings are played step by step with the real pieces (the delete as the admin
calls it, the pay view's ``checkout_url``, the Stripe emulator over HTTP); the same race
with real threads on PostgreSQL is in ``tests/test_races.py``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from tests.test_faults import sessions_of
from tests.utils import make_user
from wagtail_client_billing import gateway, lifecycle, tasks
from wagtail_client_billing.billing import checkout
from wagtail_client_billing.billing.invoices import delete as delete_invoice
from wagtail_client_billing.models import Invoice, InvoiceStatus
from wagtail_client_billing.views.admin_invoices import InvoiceDeleteBulkAction

pytestmark = pytest.mark.django_db


def payable_sessions(emulator, invoice) -> list[str]:
    return [s["id"] for s in sessions_of(emulator, invoice) if s["status"] == "open"]


def withdraw(how: str, invoice: Invoice, editor) -> None:
    """Withdraw ``invoice`` (as loaded) the way an editor or the sweep does."""
    if how == "delete":
        delete_invoice(invoice, user=editor)
    elif how == "bulk delete":
        InvoiceDeleteBulkAction.execute_action([invoice], user=editor)
    else:
        Invoice.objects.filter(pk=invoice.pk).update(expires_at=timezone.now())
        tasks.expire_due_invoices()


WAYS = ["delete", "bulk delete", "expiry sweep"]


@pytest.mark.parametrize("how", WAYS)
def test_withdrawn_while_stripe_makes_the_session_expires_it_and_shows_the_page(
    stripe_emulator, emulated_invoice, django_capture_on_commit_callbacks, how
):
    """The editor's page and the client's click load the invoice (no session yet); the
    withdrawal and its expiry task run while Stripe is making the session; then the
    click goes on to record it."""
    invoice = emulated_invoice
    editor = make_user("editor", superuser=True)
    as_the_editor_loaded = Invoice.objects.get(pk=invoice.pk)
    as_the_click_loaded = Invoice.objects.select_related("account", "site").get(pk=invoice.pk)

    with django_capture_on_commit_callbacks(execute=True):
        withdraw(how, as_the_editor_loaded, editor)
    try:
        url = checkout.checkout_url(as_the_click_loaded)
    except checkout.NotPayable:
        url = None

    (made,) = sessions_of(stripe_emulator, invoice)
    assert made["status"] == "expired"
    assert url is None  # the pay view shows the invoice's page instead of Checkout
    invoice.refresh_from_db()
    assert invoice.status != InvoiceStatus.PENDING
    assert invoice.checkout_session_url == ""


@pytest.mark.parametrize("how", WAYS)
def test_session_stored_just_before_the_withdrawal_is_expired_by_its_task(
    stripe_emulator, emulated_invoice, django_capture_on_commit_callbacks, how
):
    """The client's click stores its session after the editor's page loaded the invoice
    and before the delete: the delete's task expires the session in the database, not
    the (missing) one of the invoice as the editor's page loaded it."""
    invoice = emulated_invoice
    editor = make_user("editor", superuser=True)
    as_the_editor_loaded = Invoice.objects.get(pk=invoice.pk)
    checkout.checkout_url(Invoice.objects.select_related("account", "site").get(pk=invoice.pk))
    assert len(payable_sessions(stripe_emulator, invoice)) == 1

    with django_capture_on_commit_callbacks(execute=True):
        withdraw(how, as_the_editor_loaded, editor)

    assert payable_sessions(stripe_emulator, invoice) == []
    invoice.refresh_from_db()
    assert invoice.checkout_session_id == ""  # Stripe confirmed it expired


def test_a_lost_expiry_task_is_found_again_by_the_sweep(
    stripe_emulator, emulated_invoice, django_capture_on_commit_callbacks, time_machine
):
    """The worker holding the delete's expiry task died: the sweep of withdrawn invoices,
    reading only the database, expires the session once the task had its chance."""
    invoice = emulated_invoice
    checkout.checkout_url(Invoice.objects.select_related("account", "site").get(pk=invoice.pk))
    with django_capture_on_commit_callbacks(execute=False):  # the task never runs
        delete_invoice(Invoice.objects.get(pk=invoice.pk), user=make_user("editor", superuser=True))
    assert len(payable_sessions(stripe_emulator, invoice)) == 1

    assert tasks.resume_session_expiry() == 0  # the task may still be on its way
    time_machine.move_to(timezone.now() + tasks.claim_lease() + timedelta(seconds=1))
    assert tasks.resume_session_expiry() == 1

    assert payable_sessions(stripe_emulator, invoice) == []
    assert tasks.resume_session_expiry() == 0  # confirmed expired: not asked again


def test_the_sweep_leaves_payable_paid_and_run_out_sessions_alone(
    stripe_emulator, emulated_invoice, time_machine
):
    invoice = emulated_invoice
    checkout.checkout_url(Invoice.objects.select_related("account", "site").get(pk=invoice.pk))
    time_machine.move_to(timezone.now() + tasks.claim_lease() + timedelta(seconds=1))

    assert tasks.resume_session_expiry() == 0  # pending: the client may be paying
    invoice.refresh_from_db()
    stripe_emulator.pay(invoice.checkout_session_id)
    lifecycle.mark_paid(invoice, source=lifecycle.Source.WEBHOOK)
    assert tasks.resume_session_expiry() == 0

    Invoice.objects.filter(pk=invoice.pk).update(
        status=InvoiceStatus.EXPIRED,
        checkout_session_url="https://checkout.example/x",
        checkout_session_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert tasks.resume_session_expiry() == 0  # Stripe expired it by itself


def test_the_sweep_asks_stripe_with_a_key_the_lost_retries_did_not_spend(
    stripe_emulator, emulated_invoice, django_capture_on_commit_callbacks, time_machine
):
    """During an outage the delete's task got 500s that Stripe keeps replaying for their
    idempotency keys, and its last retry was lost with its worker: the sweep's request
    must not be answered with one of those stored failures."""
    invoice = emulated_invoice
    checkout.checkout_url(Invoice.objects.select_related("account", "site").get(pk=invoice.pk))
    with django_capture_on_commit_callbacks(execute=False):
        delete_invoice(Invoice.objects.get(pk=invoice.pk), user=make_user("editor", superuser=True))
    session_id = Invoice.objects.get(pk=invoice.pk).checkout_session_id
    path = f"/v1/checkout/sessions/{session_id}/expire"
    for key_attempt in range(tasks.EXPIRE_SESSION_MAX_ATTEMPTS):
        stripe_emulator.inject_fault("500-stored", path_prefix=path)
        with pytest.raises(gateway.GatewayError):
            tasks.expire_checkout_session(invoice.pk, key_attempt, key_attempt)
    Schedule.objects.filter(name__startswith="client_billing_expire_session_").delete()  # lost

    time_machine.move_to(timezone.now() + tasks.claim_lease() + timedelta(seconds=1))
    assert tasks.resume_session_expiry() == 1

    assert payable_sessions(stripe_emulator, invoice) == []
