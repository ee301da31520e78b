"""A renewal's ``invoice.paid`` and its ``invoice_payment.paid`` applied at once, on
PostgreSQL, by two workers.

Since API version 2025-03-31.basil the payment intent that paid a Stripe invoice comes in
``invoice_payment.paid`` only; the renewal's payment is recorded by ``invoice.paid``.
Whichever is applied first, the payment must end with that payment intent, or a refund
or dispute of the renewal (which names only the payment intent) finds no payment. One
worker is held inside its transaction, after its handler ran and before its commit, while
the other applies its event; the held one is let go once the other has finished or waits
for a lock.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

from tests.test_payment_records import subscription_events
from tests.utils import connect, make_account, make_invoice, make_site
from wagtail_client_billing.models import Payment, WebhookEvent
from wagtail_client_billing.signals import stripe_event_applied
from wagtail_client_billing.webhooks import intake

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (DATABASE_URL): SQLite serialises every writer, so nothing races",
    ),
]


def apply(event: dict) -> None:
    record, _created = intake.store(event)
    receipt = intake.process(record.pk)
    assert not receipt.failed, receipt.record.error


def waiting_for_a_lock() -> bool:
    """Whether another session of this database waits for a row or an index entry.

    PostgreSQL holds a transaction's view of ``pg_stat_activity`` still from its first
    read; cleared first, a caller inside a transaction sees each new wait.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def apply_with_first_held(first: dict, second: dict) -> None:
    """Apply ``first`` in a thread held before its commit, then ``second`` in another;
    let ``first`` commit once ``second`` is done or waits for a lock."""
    reached, resume, second_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(sender, event, **kwargs):
        if event["id"] == first["id"]:
            reached.set()
            assert resume.wait(timeout=30), "never released"

    def run(event: dict, done: threading.Event | None = None) -> None:
        try:
            apply(event)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            if done is not None:
                done.set()
            connections.close_all()

    stripe_event_applied.connect(hold, sender=WebhookEvent, weak=False)
    held = threading.Thread(target=run, args=(first,))
    other = threading.Thread(target=run, args=(second, second_done))
    try:
        held.start()
        assert reached.wait(timeout=30), "the first event was never applied"
        other.start()
        while not second_done.wait(timeout=0.01) and not waiting_for_a_lock():
            assert other.is_alive()
    finally:
        resume.set()
        held.join(timeout=60)
        other.join(timeout=60)
        stripe_event_applied.disconnect(hold, sender=WebhookEvent)
    assert not held.is_alive() and not other.is_alive(), "a worker hung"
    if errors:
        raise errors[0]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("held", ["invoice.paid", "invoice_payment.paid"])
def test_a_renewal_applied_beside_its_invoice_payment_keeps_its_payment_intent(held):
    site, account = make_site("renewals.example"), make_account("acct_test_renewals")
    connect(site, account)
    monthly = make_invoice(
        site, account, billing_type="monthly", checkout_session_id="cs_test_a1sub"
    )
    # Checkout, the first payment and its payment intent, then the renewal's two events.
    completed, first_paid, first_payment, paid, payment = subscription_events(monthly)
    for event in (completed, first_paid, first_payment):
        apply(event)

    apply_with_first_held(*((paid, payment) if held == "invoice.paid" else (payment, paid)))

    recorded = Payment.objects.get(stripe_invoice_id="in_test_second")
    assert (recorded.kind, recorded.payment_intent_id, recorded.amount) == (
        "renewal",
        "pi_test_second",
        monthly.amount,
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_admitting_the_same_events_in_opposite_orders_both_finish(monkeypatch):
    """Stripe delivers events again while their first deliveries wait in another batch:
    two workers admit batches holding the same two events, in opposite orders. Each
    admission is one transaction, and PostgreSQL makes a second insert of an event id
    wait for the transaction of the first. In opposite orders the two waited for each
    other, PostgreSQL aborted one batch ("deadlock detected") and its events waited
    for the 5-minute resume sweep. Stored in event-id order, one waits for the other."""
    import json

    from tests.test_races import run_together
    from tests.webhook_helpers import completed
    from wagtail_client_billing.models import WebhookDelivery

    site, account = make_site("admissions.example"), make_account("acct_test_admissions")
    events = []
    for n in range(2):
        invoice = make_invoice(site, account, checkout_session_id=f"cs_test_a1admit{n}")
        events.append(json.dumps(completed(invoice, invoice.checkout_session_id)))
    x, y = events
    first_batch = [WebhookDelivery.objects.create(body=body).pk for body in (x, y)]
    second_batch = [WebhookDelivery.objects.create(body=body).pk for body in (y, x)]

    # Each worker, after storing its first event, waits until the other has stored its
    # first or waits for a lock: the two transactions overlap as in a busy cluster.
    stored_one = {"first": threading.Event(), "second": threading.Event()}
    names = threading.local()
    store = intake.store

    def overlapping_store(*args, **kwargs):
        result = store(*args, **kwargs)
        mine, other = names.value, "second" if names.value == "first" else "first"
        if not stored_one[mine].is_set():
            stored_one[mine].set()
            deadline = time.monotonic() + 30
            while not stored_one[other].wait(timeout=0.01) and not waiting_for_a_lock():
                assert time.monotonic() < deadline, "the other worker neither stored nor waited"
        return result

    monkeypatch.setattr(intake, "store", overlapping_store)
    due: dict[str, list[int]] = {}

    def admit(name: str, pks: list[int]) -> None:
        names.value = name
        try:
            due[name] = intake.admit(pks)
        finally:
            stored_one[name].set()  # one that failed first lets the other go on

    run_together([lambda: admit("first", first_batch), lambda: admit("second", second_batch)])

    assert sorted(due["first"] + due["second"]) == sorted(
        WebhookEvent.objects.values_list("pk", flat=True)
    )
    assert WebhookEvent.objects.count() == 2  # each event stored once, to apply once
    assert not WebhookDelivery.objects.exists()  # every delivery admitted
