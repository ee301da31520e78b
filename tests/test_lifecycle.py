import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from wagtail import hooks as wagtail_hooks
from wagtail.models import Page

from tests.testapp.models import SimplePage
from tests.utils import make_account, make_invoice, make_site, make_user
from wagtail_client_billing import hooks, lifecycle
from wagtail_client_billing.lifecycle import Source, TransitionNotAllowed
from wagtail_client_billing.models import ClientBillingLogEntry, Invoice, InvoiceStatus
from wagtail_client_billing.signals import invoice_status_changed

S = InvoiceStatus
pytestmark = pytest.mark.django_db

ALL = [S.PENDING, S.PROCESSING, S.PAID, S.EXPIRED, S.DELETED]
ALLOWED = {
    (S.PENDING, S.PROCESSING),
    (S.PENDING, S.PAID),
    (S.PENDING, S.EXPIRED),
    (S.PENDING, S.DELETED),
    (S.PROCESSING, S.PAID),
    (S.PROCESSING, S.PENDING),
    (S.PROCESSING, S.EXPIRED),
    (S.EXPIRED, S.PAID),
    (S.EXPIRED, S.DELETED),
    (S.DELETED, S.PAID),
}


def invoice_in(status, **kwargs):
    invoice = make_invoice(**kwargs)
    Invoice.objects.filter(pk=invoice.pk).update(status=status)
    invoice.refresh_from_db()
    return invoice


def logs(invoice):
    return list(
        ClientBillingLogEntry.objects.filter(object_id=str(invoice.pk)).values_list(
            "action", flat=True
        )
    )


@pytest.mark.parametrize("old", ALL)
@pytest.mark.parametrize("new", ALL)
def test_transition_table(old, new):
    assert lifecycle.can_transition(old, new) == ((old, new) in ALLOWED)


@pytest.mark.parametrize("old", ALL)
def test_mark_paid_from_every_status(old):
    invoice = invoice_in(old)
    changed = lifecycle.mark_paid(invoice, source=Source.WEBHOOK, payment_intent_id="pi_1")
    invoice.refresh_from_db()
    assert changed == (old != S.PAID)
    assert invoice.status == S.PAID
    assert invoice.late_payment == (old in (S.EXPIRED, S.DELETED))
    if changed:
        assert invoice.payment_intent_id == "pi_1"
        assert invoice.status_source == "webhook"
        assert "wagtail_client_billing.paid" in logs(invoice)


@pytest.mark.parametrize("old", ALL)
def test_expire_only_from_pending(old):
    invoice = invoice_in(old)
    assert lifecycle.expire(invoice, source=Source.SWEEP) == (old == S.PENDING)
    invoice.refresh_from_db()
    assert invoice.status == (S.EXPIRED if old == S.PENDING else old)


@pytest.mark.parametrize("old", [S.PAID, S.PROCESSING])
def test_paid_or_processing_invoice_cannot_be_deleted(old):
    invoice = invoice_in(old)
    with pytest.raises(TransitionNotAllowed):
        lifecycle.delete(invoice, user=None)
    invoice.refresh_from_db()
    assert invoice.status == old
    assert logs(invoice) == []


def test_delete_records_who_and_when():
    editor = make_user("ed")
    invoice = make_invoice()
    assert lifecycle.delete(invoice, user=editor)
    invoice.refresh_from_db()
    assert invoice.status == S.DELETED
    assert invoice.deleted_by == editor
    assert invoice.deleted_at is not None
    entry = ClientBillingLogEntry.objects.get(object_id=str(invoice.pk))
    assert (entry.action, entry.user) == ("wagtail_client_billing.deleted", editor)


def test_stale_instance_cannot_overwrite_a_newer_status():
    invoice = make_invoice()
    stale = Invoice.objects.get(pk=invoice.pk)
    assert lifecycle.mark_paid(invoice, source=Source.WEBHOOK)
    # The stale copy still says pending; expiring it must not undo the payment.
    assert not lifecycle.expire(stale, source=Source.SWEEP)
    assert stale.status == S.PAID
    assert Invoice.objects.get(pk=invoice.pk).status == S.PAID


def test_processing_then_failure_returns_to_pending_or_expired():
    invoice = make_invoice()
    assert lifecycle.mark_processing(invoice, source=Source.WEBHOOK, payment_intent_id="pi_2")
    assert lifecycle.payment_failed(invoice, source=Source.WEBHOOK, reason="Insufficient funds")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.payment_failure) == (S.PENDING, "Insufficient funds")

    late = make_invoice(
        site=invoice.site, account=invoice.account, expires_at=timezone.now() - timedelta(minutes=1)
    )
    lifecycle.mark_processing(late, source=Source.WEBHOOK)
    lifecycle.payment_failed(late, source=Source.WEBHOOK, reason="Debit returned")
    late.refresh_from_db()
    assert late.status == S.EXPIRED


def test_signal_is_sent_once_per_real_change_after_commit(django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, invoice, old, new, source, **kwargs):
        received.append((invoice.pk, old, new, source))

    invoice_status_changed.connect(receiver)
    try:
        invoice = make_invoice()
        with django_capture_on_commit_callbacks(execute=True):
            lifecycle.mark_paid(invoice, source=Source.RETURN)
            lifecycle.mark_paid(invoice, source=Source.WEBHOOK)  # no change: no signal
        assert received == [(invoice.pk, "pending", "paid", "return")]
    finally:
        invoice_status_changed.disconnect(receiver)


def test_expire_due_sweeps_only_due_pending_invoices_with_bulk_logs():
    site, account = make_site(), make_account()
    now = timezone.now()
    due = [make_invoice(site, account, expires_at=now - timedelta(minutes=i + 1)) for i in range(3)]
    not_due = make_invoice(site, account, expires_at=now + timedelta(hours=1))
    paid = make_invoice(site, account, expires_at=now - timedelta(hours=1))
    lifecycle.mark_paid(paid, source=Source.WEBHOOK)

    expired = lifecycle.expire_due(now=now, batch_size=2)

    assert sorted(e.pk for e in expired) == sorted(i.pk for i in due)
    statuses = dict(Invoice.objects.values_list("pk", "status"))
    assert all(statuses[i.pk] == S.EXPIRED for i in due)
    assert statuses[not_due.pk] == S.PENDING
    assert statuses[paid.pk] == S.PAID
    assert all(logs(i) == ["wagtail_client_billing.expired"] for i in due)


def test_expire_due_query_count_does_not_grow_with_the_number_due(django_assert_max_num_queries):
    site, account = make_site(), make_account()
    past = timezone.now() - timedelta(minutes=5)
    Invoice.objects.bulk_create(
        [
            Invoice(
                site=site,
                account=account,
                sequence=i + 1,
                number=f"INV-{i + 1:06d}",
                email="c@example.com",
                currency="USD",
                amount=100,
                success_url="https://x.example",
                cancel_url="https://x.example",
                expires_at=past,
            )
            for i in range(200)
        ]
    )
    # one UPDATE, one content type lookup (cached after), one bulk insert per batch of 1000
    with django_assert_max_num_queries(6):
        assert len(lifecycle.expire_due(batch_size=1000)) == 200


def due_invoices(count: int, site=None, account=None, **kwargs):
    site, account = site or make_site(), account or make_account()
    past = timezone.now() - timedelta(minutes=5)
    return [make_invoice(site, account, expires_at=past, **kwargs) for _ in range(count)]


def test_sweep_runs_hooks_and_receivers_for_every_expired_invoice_after_commit(
    django_capture_on_commit_callbacks,
):
    due = due_invoices(5)
    hooked, received = [], []

    def hook(invoice, old, new, source):
        hooked.append((invoice, old, new, source))

    def receiver(sender, invoice, old, new, source, **kwargs):
        received.append((invoice, old, new, source))

    invoice_status_changed.connect(receiver)
    try:
        with (
            wagtail_hooks.register_temporarily(hooks.INVOICE_STATUS_CHANGED, hook),
            django_capture_on_commit_callbacks(execute=False) as callbacks,
        ):
            assert len(lifecycle.expire_due(batch_size=2)) == 5
        assert hooked == received == []  # nothing before the transactions commit
        with wagtail_hooks.register_temporarily(hooks.INVOICE_STATUS_CHANGED, hook):
            for callback in callbacks:
                callback()
    finally:
        invoice_status_changed.disconnect(receiver)

    for calls in (hooked, received):
        assert sorted(invoice.pk for invoice, *_ in calls) == sorted(i.pk for i in due)
        assert {tuple(rest) for _, *rest in calls} == {(S.PENDING, S.EXPIRED, Source.SWEEP)}
        for invoice, *_ in calls:  # full instances, as the change left them
            assert isinstance(invoice, Invoice)
            assert not invoice.get_deferred_fields()
            assert (invoice.status, invoice.email) == (S.EXPIRED, "client@example.com")
            assert invoice.expired_at is not None


def test_sweep_loads_no_invoice_when_nobody_needs_them(django_capture_on_commit_callbacks):
    due_invoices(3)
    with (
        CaptureQueriesContext(connection) as ctx,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        assert len(lifecycle.expire_due()) == 3
    assert callbacks == []
    table = Invoice._meta.db_table
    reads = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in reads if f'FROM "{table}"' in sql], reads


def test_sweep_unpublishes_the_page_of_the_invoices_that_name_one(
    django_capture_on_commit_callbacks,
):
    page = Page.get_first_root_node().add_child(
        instance=SimplePage(title="Offer", slug="offer", live=True)
    )
    page.save_revision()
    author = make_user("boss", superuser=True)
    plain = due_invoices(2)
    (named,) = due_invoices(
        1, plain[0].site, plain[0].account, unpublish_page_when_expired=page, created_by=author
    )

    with (
        CaptureQueriesContext(connection) as ctx,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert len(lifecycle.expire_due()) == 3

    page.refresh_from_db()
    assert not page.live
    assert "wagtail_client_billing.page_unpublished" in logs(named)
    assert all(logs(i) == ["wagtail_client_billing.expired"] for i in plain)
    # Only the invoice with a page to unpublish was loaded for the after-commit step.
    table = Invoice._meta.db_table
    loads = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith(f'SELECT "{table}"."id"') and "IN (" in q["sql"]
    ]
    assert len(loads) == 1 and str(named.pk) in loads[0], loads


def test_a_failing_hook_for_one_invoice_leaves_the_others_announced(
    django_capture_on_commit_callbacks,
):
    due = due_invoices(3)
    seen = []

    def hook(invoice, old, new, source):
        seen.append(invoice.pk)
        if len(seen) == 1:
            raise RuntimeError("receiver bug")

    with (
        wagtail_hooks.register_temporarily(hooks.INVOICE_STATUS_CHANGED, hook),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert len(lifecycle.expire_due()) == 3
    assert sorted(seen) == sorted(i.pk for i in due)
    assert Invoice.objects.filter(status=S.EXPIRED).count() == 3


def test_invoice_numbers_are_per_site_and_sequential():
    a, b = make_site("a.example"), make_site("b.example")
    account = make_account()
    numbers = [make_invoice(a, account).number for _ in range(3)] + [
        make_invoice(b, account).number
    ]
    assert numbers == ["INV-000001", "INV-000002", "INV-000003", "INV-000001"]


postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL) for real concurrency"
)


def _in_threads(n, fn):
    errors = []
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait()
            fn(i)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_paid_always_wins_a_race_against_expiry():
    site, account = make_site(), make_account()
    for _round in range(20):
        invoice = make_invoice(site, account, expires_at=timezone.now() - timedelta(seconds=1))

        def act(i, pk=invoice.pk):
            copy = Invoice.objects.get(pk=pk)
            if i % 2:
                lifecycle.mark_paid(copy, source=Source.WEBHOOK)
            else:
                lifecycle.expire(copy, source=Source.SWEEP)

        _in_threads(4, act)
        invoice.refresh_from_db()
        assert invoice.status == S.PAID
        actions = logs(invoice)
        assert actions.count("wagtail_client_billing.paid") == 1
        assert actions.count("wagtail_client_billing.expired") <= 1


@postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_creation_never_duplicates_a_number():
    site, account = make_site(), make_account()
    _in_threads(8, lambda i: [make_invoice(site, account) for _ in range(5)])
    numbers = list(Invoice.objects.filter(site=site).values_list("number", flat=True))
    assert len(numbers) == 40
    assert len(set(numbers)) == 40
