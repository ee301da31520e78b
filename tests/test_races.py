"""Races on PostgreSQL: the expiry sweep, Stripe's webhook, the client's return from
Checkout and an editor's delete, all at once on the same invoices, round after round.

Each actor is the real thing in its own thread with its own database connection: the
sweep is ``lifecycle.expire_due``, the webhook a signed ``checkout.session.completed``
POSTed through Django's test client into the webhook view, the return a GET of the
return view (which asks the Stripe emulator for the session over HTTP), the delete
``lifecycle.delete`` as the admin calls it. Whatever order they land in, each invoice
must end where the lifecycle rules say, a payment must always win, and its history must
hold exactly one entry per change that happened, chained old -> new.
"""

from __future__ import annotations

import contextlib
import random
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from tests.utils import connect, make_account, make_invoice, make_site, make_user
from tests.webhook_helpers import completed, post_event
from wagtail_client_billing import gateway, lifecycle, payments
from wagtail_client_billing.lifecycle import LOG_ACTIONS, TRANSITIONS, TransitionNotAllowed
from wagtail_client_billing.models import ClientBillingLogEntry, Invoice, InvoiceStatus

S = InvoiceStatus

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (DATABASE_URL): SQLite serialises every writer, so nothing races",
    ),
]

ROUNDS = 12
INVOICES_PER_ROUND = 4
STATUS_ACTIONS = set(LOG_ACTIONS.values())
#: What an unpaid invoice raced by the sweep and a delete may end as, by the rules.
UNPAID_PATHS = [[S.DELETED]] + (
    [[S.EXPIRED, S.DELETED]] if lifecycle.can_transition(S.EXPIRED, S.DELETED) else [[S.EXPIRED]]
)


def run_together(jobs):
    """Start every job at the same instant (a barrier), each in its own thread."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job):
        try:
            barrier.wait()
            job()
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    if errors:
        raise errors[0]


def status_history(invoice: Invoice) -> list[tuple[str, str]]:
    """The invoice's status log entries as ``(old, new)``, in the order they committed.

    Each change updates the row and inserts its entry in one transaction; a second
    writer waits on the row lock until the first commits, so ids follow commit order.
    """
    entries = ClientBillingLogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Invoice),
        object_id=str(invoice.pk),
        action__in=STATUS_ACTIONS,
    ).order_by("pk")
    history = []
    for entry in entries:
        old, new = entry.data["old"], entry.data["new"]
        assert entry.action == LOG_ACTIONS[new], entry.action
        history.append((old, new))
    return history


def assert_history_is_one_valid_path(invoice: Invoice, history: list[tuple[str, str]]) -> None:
    current = S.PENDING
    for old, new in history:
        assert old == current, f"{invoice.number}: {history} does not chain"
        assert new in TRANSITIONS[old], f"{invoice.number}: {old} -> {new} is not allowed"
        current = new
    assert current == invoice.status, f"{invoice.number}: log ends {current}, row {invoice.status}"


@pytest.fixture
def emulated_account(stripe_emulator):
    state = gateway.create_account(
        test_mode=True,
        country="US",
        privacy_policy_url="https://agency.example/privacy",
        terms_of_service_url="https://agency.example/terms",
        site_url="https://races.example/",
        idempotency_key="wcb-test-races-account",
    )
    stripe_emulator.complete_onboarding(state.id)
    stripe_emulator.webhooks_enabled = False  # the test posts the webhooks itself
    account = make_account(state.id)
    site = make_site("races.example")
    connect(site, account)
    return site, account


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_sweep_webhook_return_and_delete_racing_end_where_the_rules_say(
    stripe_emulator, emulated_account
):
    site, account = emulated_account
    editor = make_user("racer", superuser=True)
    rng = random.Random(11)  # a reproducible shuffle
    outcomes: dict[str, int] = {}

    for _round in range(ROUNDS):
        invoices, paid = [], set()
        for i in range(INVOICES_PER_ROUND):
            invoice = make_invoice(site, account, email=f"race{i}@example.com")
            payments.checkout_url(invoice)  # the client opened Checkout
            if i % 2 == 0:  # half of them: the client pays, just as the link runs out
                stripe_emulator.pay(invoice.checkout_session_id)
                paid.add(invoice.pk)
            invoices.append(invoice)
        Invoice.objects.filter(pk__in=[i.pk for i in invoices]).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )

        jobs = [lambda: lifecycle.expire_due()]
        for invoice in invoices:
            session_id = invoice.checkout_session_id
            return_url = (
                urlsplit(payments.site_url(invoice, "return")).path + f"?session_id={session_id}"
            )

            def delete(pk=invoice.pk):
                # Paid first: the editor is told it cannot be deleted.
                with contextlib.suppress(TransitionNotAllowed):
                    lifecycle.delete(Invoice.objects.get(pk=pk), user=editor)

            def client_returns(url=return_url):
                assert Client().get(url).status_code == 303

            jobs += [delete, client_returns]
            if invoice.pk in paid:

                def webhook(invoice=invoice, session_id=session_id):
                    event = completed(invoice, session_id, payment_intent="pi_race")
                    assert post_event(Client(), event).status_code == 200

                jobs.append(webhook)
        rng.shuffle(jobs)
        run_together(jobs)

        for invoice in invoices:
            invoice.refresh_from_db()
            history = status_history(invoice)
            assert_history_is_one_valid_path(invoice, history)
            passed = [new for _old, new in history]
            if invoice.pk in paid:
                assert invoice.status == S.PAID, "money received must win"
                assert passed.count(S.PAID) == 1
                was_withdrawn = bool({S.EXPIRED, S.DELETED} & set(passed[:-1]))
                assert invoice.late_payment is was_withdrawn
                assert invoice.paid_at is not None
            else:
                # Unpaid: the editor's delete wins from pending; after the sweep it lands
                # only if the rules let an expired invoice be deleted.
                assert passed in UNPAID_PATHS, passed
                if invoice.status == S.DELETED:
                    assert invoice.deleted_by_id == editor.pk
                assert not invoice.late_payment
            key = "->".join(passed)
            outcomes[key] = outcomes.get(key, 0) + 1

    # The rounds really raced: more than one interleaving was seen for the paid invoices.
    paid_paths = [k for k in outcomes if k.endswith(S.PAID)]
    assert len(paid_paths) >= 2, outcomes


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_duplicate_webhooks_racing_the_return_log_one_payment(stripe_emulator, emulated_account):
    """The same event delivered three times at once, and the client's return: one change."""
    site, account = emulated_account
    for _round in range(8):
        invoice = make_invoice(site, account)
        payments.checkout_url(invoice)
        stripe_emulator.pay(invoice.checkout_session_id)
        event = completed(invoice, invoice.checkout_session_id)
        return_url = (
            urlsplit(payments.site_url(invoice, "return")).path
            + f"?session_id={invoice.checkout_session_id}"
        )
        codes: list[int] = []

        def deliver(event=event, codes=codes):
            codes.append(post_event(Client(), event).status_code)

        run_together([deliver, deliver, deliver, lambda url=return_url: Client().get(url)])

        invoice.refresh_from_db()
        assert codes == [200, 200, 200]
        assert invoice.status == S.PAID
        assert status_history(invoice) == [(S.PENDING, S.PAID)]
