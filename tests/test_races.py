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

from tests.test_faults import sessions_of
from tests.utils import (
    connect,
    make_account,
    make_emulated_account,
    make_invoice,
    make_site,
    make_user,
)
from tests.webhook_helpers import account_event, completed, post_event, subscription_obj
from wagtail_client_billing import lifecycle
from wagtail_client_billing.billing import checkout
from wagtail_client_billing.billing.invoices import delete as delete_invoice
from wagtail_client_billing.lifecycle import LOG_ACTIONS, TRANSITIONS, TransitionNotAllowed
from wagtail_client_billing.models import ClientBillingLogEntry, Invoice, InvoiceStatus
from wagtail_client_billing.views.admin_invoices import InvoiceDeleteBulkAction

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
    stripe_emulator.webhooks_enabled = False  # the test posts the webhooks itself
    account = make_emulated_account(stripe_emulator, "races.example")
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
            checkout.checkout_url(invoice)  # the client opened Checkout
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
            return_url = urlsplit(invoice.public_url("return")).path + f"?session_id={session_id}"

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
        checkout.checkout_url(invoice)
        stripe_emulator.pay(invoice.checkout_session_id)
        event = completed(invoice, invoice.checkout_session_id)
        return_url = (
            urlsplit(invoice.public_url("return")).path
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


# --- a withdrawn invoice against the client's click --------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_deleting_while_the_client_opens_checkout_leaves_no_payable_session(
    stripe_emulator, emulated_account
):
    """Deletes (single and bulk) and clicks on the pay links at the same instant: every
    invoice ends deleted, and every session a click made is expired on Stripe."""
    site, account = emulated_account
    editor = make_user("racer", superuser=True)
    left_open: list[str] = []
    made = 0
    for _round in range(ROUNDS):
        invoices = [
            make_invoice(site, account, email=f"click{i}@example.com")
            for i in range(INVOICES_PER_ROUND)
        ]
        codes: list[int] = []
        jobs = [
            lambda pk=invoice.pk: delete_invoice(Invoice.objects.get(pk=pk), user=editor)
            for invoice in invoices[:2]
        ]
        jobs.append(
            lambda pks=[i.pk for i in invoices[2:]]: InvoiceDeleteBulkAction.execute_action(
                list(Invoice.objects.filter(pk__in=pks)), user=editor
            )
        )
        for invoice in invoices:
            path = urlsplit(invoice.get_pay_url()).path
            jobs.append(lambda path=path, codes=codes: codes.append(Client().get(path).status_code))
        run_together(jobs)

        assert set(codes) <= {303, 410}, codes
        for invoice in invoices:
            invoice.refresh_from_db()
            assert invoice.status == S.DELETED
            sessions = sessions_of(stripe_emulator, invoice)
            made += len(sessions)
            left_open += [s["id"] for s in sessions if s["status"] == "open"]

    assert made, "no click reached Stripe before its delete: nothing raced"
    assert left_open == [], f"{len(left_open)} deleted invoices can still be paid"


# --- webhook handlers that read, check and write ---------------------------------------------

#: Rounds of each handler race: enough to lose an unlocked update many times over.
HANDLER_ROUNDS = 30


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_subscription_deleted_and_updated_at_once_end_canceled():
    site, account = make_site("subscriptions.example"), make_account("acct_test_races")
    created = int(timezone.now().timestamp())
    ended = []
    for round_ in range(HANDLER_ROUNDS):
        invoice = make_invoice(site, account, billing_type="monthly")
        subscription = f"sub_race_{round_}"
        Invoice.objects.filter(pk=invoice.pk).update(
            subscription_id=subscription, subscription_status="active"
        )
        updated = account_event(
            "customer.subscription.updated",
            subscription_obj(invoice, subscription, status="active"),
            account.stripe_id,
            created=created - 1,
        )
        deleted = account_event(
            "customer.subscription.deleted",
            subscription_obj(invoice, subscription, status="canceled"),
            account.stripe_id,
            created=created,
        )
        run_together([lambda e=e: post_event(Client(), e) for e in (updated, deleted)])
        invoice.refresh_from_db()
        ended.append(invoice.subscription_status)

    assert ended == ["canceled"] * HANDLER_ROUNDS


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_account_updates_at_once_keep_the_newer_state():
    account = make_account("acct_test_races", charges_enabled=False)
    start = int(timezone.now().timestamp())
    newer_won = []
    for round_ in range(HANDLER_ROUNDS):
        enabled = round_ % 2 == 0  # the newer snapshot's state, alternating

        def snapshot(charges_enabled: bool, created: int) -> dict:
            obj = {
                "id": account.stripe_id,
                "object": "account",
                "charges_enabled": charges_enabled,
                "payouts_enabled": charges_enabled,
                "details_submitted": True,
                "requirements": {"currently_due": [], "disabled_reason": None},
            }
            return account_event("account.updated", obj, account.stripe_id, created=created)

        older = snapshot(not enabled, start + 2 * round_)
        newer = snapshot(enabled, start + 2 * round_ + 1)
        run_together([lambda e=e: post_event(Client(), e) for e in (older, newer)])
        account.refresh_from_db()
        newer_won.append(account.charges_enabled is enabled)

    assert all(newer_won), f"the older state won {newer_won.count(False)} of {HANDLER_ROUNDS}"
