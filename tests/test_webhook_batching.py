"""New webhook deliveries are kept, and queued in batches by the web process (issue 24):
one django-q2 task per batch, whose worker stores each delivery as an event (once per
event id) and applies it; a delivery whose batch never reached the queue (its process
was killed) is found again by the resume sweep and applied once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.test import TestCase
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage

from tests.utils import make_invoice
from tests.webhook_helpers import completed, post_event
from wagtail_client_billing import taskqueue, tasks
from wagtail_client_billing.models import Payment, WebhookDelivery, WebhookEvent
from wagtail_client_billing.webhooks import intake

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch, settings):
    """django-q2 as a deployment runs it (not ``sync``), on the tests' ORM broker; yields
    a function that takes the queued tasks off the broker as ``(func, args)``."""
    monkeypatch.setattr(Conf, "SYNC", False)
    broker = get_broker()
    broker.purge_queue()
    intake.deliveries.flush()
    intake.batcher.flush()

    def take() -> list[tuple[str, tuple]]:
        tasks_ = []
        while message := broker.dequeue():
            for ack_id, body in message:
                task = SignedPackage.loads(body)
                tasks_.append((task["func"], task["args"]))
                broker.acknowledge(ack_id)
        return tasks_

    yield take
    intake.deliveries.flush()
    intake.batcher.flush()
    broker.purge_queue()


def pending_invoices(invoice, n: int) -> list:
    return [
        make_invoice(invoice.site, invoice.account, checkout_session_id=f"cs_test_a1batch{i}")
        for i in range(n)
    ]


def test_deliveries_kept_together_are_queued_as_one_task_stored_and_applied(
    client, invoice, queued, settings
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_QUEUE_BATCH": 3,
        "WEBHOOK_QUEUE_DELAY": 3600,
    }
    invoices = pending_invoices(invoice, 2)
    events = [completed(paid, paid.checkout_session_id) for paid in invoices]
    for event in [*events, events[0]]:  # the first one delivered twice
        assert post_event(client, event).status_code == 200
    assert {i.__class__.objects.get(pk=i.pk).status for i in invoices} == {"pending"}

    (task,) = queued()  # the third delivery filled the batch
    kept = list(WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True))
    assert task == ("wagtail_client_billing.tasks.admit_webhook_deliveries", (kept,))
    assert not WebhookEvent.objects.exists()

    outcomes = tasks.admit_webhook_deliveries(*task[1])
    assert outcomes == {"processed": 2, "already stored": 1}
    assert {i.__class__.objects.get(pk=i.pk).status for i in invoices} == {"paid"}
    assert sorted(WebhookEvent.objects.values_list("event_id", flat=True)) == sorted(
        e["id"] for e in events
    )
    assert not WebhookDelivery.objects.exists()
    # Stored and applied once: a second run of the same task finds nothing to admit.
    assert tasks.admit_webhook_deliveries(*task[1]) == {"already stored": 3}


def test_a_partial_batch_waits_in_the_process_until_it_is_flushed(
    client, invoice, queued, settings
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_QUEUE_BATCH": 100,
        "WEBHOOK_QUEUE_DELAY": 3600,
    }
    post_event(client, completed(invoice, "cs_test_a1current"))
    assert queued() == []
    assert intake.deliveries.waiting() == 1

    assert intake.deliveries.flush() == 1  # what the timer, or the process's exit, does

    ((func, (pks,)),) = queued()
    assert pks == [WebhookDelivery.objects.get().pk]


def test_a_batch_size_of_one_queues_each_event_at_once(client, invoice, queued, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_QUEUE_BATCH": 1,
    }
    post_event(client, completed(invoice, "cs_test_a1current"))
    assert len(queued()) == 1
    assert intake.deliveries.waiting() == 0


def test_the_timer_thread_queues_a_partial_batch_after_the_delay(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    sent: list[list[int]] = []
    done = threading.Event()
    batcher = taskqueue.Batcher("x.y", group="g", limits=lambda: (10, 0.05))

    def send(batch):
        sent.append(batch)
        done.set()

    batcher._send = send  # type: ignore[method-assign]
    batcher.add(1)
    batcher.add(2)
    assert done.wait(30)  # a deadline for a broken timer, not a timing assertion
    assert sent == [[1, 2]]
    assert batcher.waiting() == 0
    batcher.add(3)  # the timer keeps serving later batches
    done.clear()
    assert done.wait(30)
    assert sent == [[1, 2], [3]]


def test_events_lost_with_a_killed_web_process_are_applied_by_the_sweep(
    client, invoice, queued, settings
):
    """SIGKILL of a web worker takes the batch it held with it: the deliveries were kept
    and acknowledged to Stripe, so nothing redelivers them; the sweep finds them."""
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_QUEUE_BATCH": 100,
        "WEBHOOK_QUEUE_DELAY": 3600,
    }
    others = pending_invoices(invoice, 2)
    with time_machine.travel(timezone.now() - timedelta(minutes=10)):
        for paid in [invoice, *others]:
            assert post_event(client, completed(paid, paid.checkout_session_id)).status_code == 200
    assert intake.deliveries.waiting() == 3
    intake.deliveries._reset()  # the process dies: what it held is gone, not queued
    assert queued() == []

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.resume_received_webhook_events() == 3
    batches = queued()
    assert [func for func, _args in batches] == [
        "wagtail_client_billing.tasks.admit_webhook_deliveries"
    ]
    for _func, args in batches:
        tasks.admit_webhook_deliveries(*args)
    assert set(WebhookEvent.objects.values_list("outcome", flat=True)) == {"processed"}
    assert {i.__class__.objects.get(pk=i.pk).status for i in [invoice, *others]} == {"paid"}


def test_one_event_that_raises_does_not_stop_the_rest_of_its_batch(invoice, monkeypatch):
    others = pending_invoices(invoice, 2)
    records = [intake.store(completed(i, i.checkout_session_id))[0] for i in [invoice, *others]]
    real = tasks.apply_webhook_event

    def broken_database(pk):
        if pk == records[0].pk:
            raise RuntimeError("connection lost")
        return real(pk)

    monkeypatch.setattr(tasks, "apply_webhook_event", broken_database)
    with pytest.raises(RuntimeError):
        tasks.apply_webhook_events([r.pk for r in records])
    outcomes = [WebhookEvent.objects.get(pk=r.pk).outcome for r in records]
    assert outcomes == ["received", "processed", "processed"]  # the first waits for the sweep


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # commits, as in a worker
def test_the_receipts_of_a_batch_of_events_are_queued_as_one_task_and_sent(
    invoice, queued, settings, mailoutbox
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_QUEUE_BATCH": 100,
        # A timer far shorter than applying an event: the batch's receipts still go as
        # one task, when the batch ends (the worker holds its timer meanwhile).
        "WEBHOOK_QUEUE_DELAY": 0.001,
    }
    invoices = pending_invoices(invoice, 3)
    records = [
        intake.store(completed(i, i.checkout_session_id, payment_intent=f"pi_test_{n}"))[0].pk
        for n, i in enumerate(invoices)
    ]
    intake.batcher.flush()
    queued()  # the events' own task: applied here, as a worker would

    assert tasks.apply_webhook_events(records) == {"processed": 3}

    # One task for the three receipts, queued when the batch ended, not on the timer.
    [(func, (items,))] = queued()
    assert func == "wagtail_client_billing.tasks.send_receipts"
    payments = sorted(Payment.objects.filter(invoice__in=invoices).values_list("pk", flat=True))
    assert sorted(items) == [("payment", pk) for pk in payments]
    assert not mailoutbox

    assert tasks.send_receipts(items) == {"sent": 3}
    assert sorted(m.to[0] for m in mailoutbox) == sorted(i.email for i in invoices)
    # A second delivery of the task sends nothing again.
    assert tasks.send_receipts(items) == {"already handled": 3}
    assert len(mailoutbox) == 3


def test_a_delivery_kept_just_now_is_left_to_its_own_task(client, invoice, queued, settings):
    """The sweep queues a delivery again only once its task is overdue: one still held
    by its web process (or waiting in the queue) is not queued twice."""
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_QUEUE_BATCH": 100,
        "WEBHOOK_QUEUE_DELAY": 3600,
    }
    post_event(client, completed(invoice, "cs_test_a1current"))

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.resume_received_webhook_events() == 0
    intake.deliveries.flush()  # the web process's batch goes (here, the same process)
    kept = WebhookDelivery.objects.get().pk
    assert queued() == [("wagtail_client_billing.tasks.admit_webhook_deliveries", ([kept],))]
