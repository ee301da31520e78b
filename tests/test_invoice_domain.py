"""The invoice domain (``billing.invoices``): what creating, resending, sending new and
deleting a billing request do, whoever calls them (a view, a bulk action, site code)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django.utils import timezone
from django_q.models import Task
from wagtail import hooks as wagtail_hooks

from tests.utils import make_invoice, make_site, make_user
from wagtail_client_billing import hooks, lifecycle
from wagtail_client_billing.billing import invoices
from wagtail_client_billing.models import (
    BillingType,
    ClientBillingLogEntry,
    EmailStatus,
    Invoice,
    InvoiceStatus,
)

pytestmark = pytest.mark.django_db


def log_actions(invoice: Invoice) -> list[str]:
    return list(
        ClientBillingLogEntry.objects.filter(object_id=str(invoice.pk))
        .order_by("pk")
        .values_list("action", flat=True)
    )


def tasks_run() -> list[str]:
    """The dotted paths of the tasks django-q2 ran (synchronously, in the tests)."""
    return list(Task.objects.order_by("started").values_list("func", flat=True))


def new_request(site, account, **kwargs) -> Invoice:
    """An unsaved billing request, as a valid create form leaves it."""
    values = {
        "site": site,
        "account": account,
        "test_mode": account.test_mode,
        "email": "client@example.com",
        "currency": "USD",
        "amount": 12500,
        "success_url": "https://client.example/thanks",
        "cancel_url": "https://client.example/cancelled",
        **kwargs,
    }
    return Invoice(**values)


# --- create and send -----------------------------------------------------------------------


def test_create_numbers_the_request_logs_it_and_queues_its_email(
    connected_site, account, django_capture_on_commit_callbacks, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    editor = make_user("editor", superuser=True)
    connected_site.clientbillingsettings.payment_link_lifetime_hours = 48
    connected_site.clientbillingsettings.save()
    make_invoice(connected_site, account)  # the site's first number is taken

    with django_capture_on_commit_callbacks(execute=True):
        invoice = invoices.create(new_request(connected_site, account), user=editor)

    invoice.refresh_from_db()
    assert invoice.number == "INV-000002"
    assert invoice.status == InvoiceStatus.PENDING
    assert invoice.created_by == editor
    assert invoice.expires_at == timezone.now() + timedelta(hours=48)
    assert log_actions(invoice) == [invoices.CREATED_ACTION, "wagtail_client_billing.email_sent"]
    assert [m.to for m in mail.outbox] == [["client@example.com"]]
    assert invoice.email_status == EmailStatus.SENT


def test_an_email_is_queued_only_once_the_request_is_committed(
    connected_site, account, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        invoice = invoices.create(new_request(connected_site, account), user=None)

    assert Invoice.objects.get(pk=invoice.pk).email_status == EmailStatus.QUEUED
    assert (tasks_run(), mail.outbox) == ([], [])
    for callback in callbacks:
        callback()
    assert tasks_run() == ["wagtail_client_billing.tasks.send_invoice_email"]
    assert len(mail.outbox) == 1


def test_check_new_refuses_a_site_outside_the_users_scope(connected_site, account):
    user = make_user("limited", perms=("wagtail_client_billing.add_invoice",))
    request = RequestFactory().post("/")
    request.user = user

    def no_sites(user, sites):
        return sites.none()

    with (
        wagtail_hooks.register_temporarily(hooks.SITES_FOR_USER, no_sites),
        pytest.raises(ValidationError) as refused,
    ):
        invoices.check_new(request, new_request(connected_site, account))
    assert refused.value.messages == [
        "Client Billing is not available for this site to your account."
    ]


def test_check_new_runs_the_before_create_hook_which_may_refuse_or_adjust(connected_site, account):
    request = RequestFactory().post("/")
    request.user = make_user("root", superuser=True)

    def house_rules(request, invoice):
        if invoice.amount > 100_000:
            raise ValidationError({"amount": "Ask a manager first."})
        invoice.description = "Adjusted by the hook"

    invoice = new_request(connected_site, account)
    with wagtail_hooks.register_temporarily(hooks.BEFORE_CREATE_INVOICE, house_rules):
        invoices.check_new(request, invoice)
        with pytest.raises(ValidationError) as refused:
            invoices.check_new(request, new_request(connected_site, account, amount=200_000))

    assert invoice.description == "Adjusted by the hook"
    assert refused.value.message_dict == {"amount": ["Ask a manager first."]}


# --- resend ----------------------------------------------------------------------------------


def test_resend_queues_the_email_of_a_payable_request_with_its_attempts_reset(
    connected_site, account, django_capture_on_commit_callbacks
):
    invoice = make_invoice(connected_site, account, email_status=EmailStatus.FAILED)
    Invoice.objects.filter(pk=invoice.pk).update(email_attempts=5)

    with django_capture_on_commit_callbacks(execute=True):
        invoices.resend(invoice)

    invoice.refresh_from_db()
    assert (invoice.email_status, invoice.email_attempts) == (EmailStatus.SENT, 1)
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("status", [InvoiceStatus.PAID, InvoiceStatus.EXPIRED])
def test_resend_refuses_a_request_that_cannot_be_paid(connected_site, account, status):
    invoice = make_invoice(connected_site, account, status=status, email_status=EmailStatus.SENT)

    with pytest.raises(invoices.NotAllowed) as refused:
        invoices.resend(invoice)

    assert str(refused.value) == (
        f"{invoice.label} is {status}: only pending billing requests can be resent."
    )
    assert Invoice.objects.get(pk=invoice.pk).email_status == EmailStatus.SENT
    assert mail.outbox == []


def test_resend_refuses_a_pending_request_past_its_expiry(connected_site, account):
    invoice = make_invoice(connected_site, account, expires_at=timezone.now() - timedelta(1))

    with pytest.raises(invoices.NotAllowed):
        invoices.resend(invoice)


# --- send new: the model-level copy -----------------------------------------------------------


def test_every_invoice_field_is_either_copied_to_a_new_request_or_deliberately_not():
    """A field added to ``Invoice`` fails this until it is put in one of the two lists:
    "Send new invoice" must not silently carry over (or drop) what it holds."""
    fields = {f.name for f in Invoice._meta.concrete_fields} | {
        f.name for f in Invoice._meta.many_to_many
    }
    copied, not_copied = set(Invoice.COPIED_FIELDS), set(Invoice.NOT_COPIED_FIELDS)

    assert copied.isdisjoint(not_copied), copied & not_copied
    assert len(copied) == len(Invoice.COPIED_FIELDS)
    assert len(not_copied) == len(Invoice.NOT_COPIED_FIELDS)
    assert fields - copied - not_copied == set(), "classify the new fields"
    assert (copied | not_copied) - fields == set(), "fields that are gone"


def test_a_new_request_carries_what_the_editor_asked_for_and_nothing_that_happened(
    connected_site, account
):
    page = connected_site.root_page
    source = make_invoice(
        connected_site,
        account,
        email="accounts@client.example",
        currency="EUR",
        amount=98_765,
        description="Hosting, 2026",
        note="Renewed every March",
        billing_type=BillingType.YEARLY,
        success_url="https://client.example/paid",
        cancel_url="https://client.example/not-yet",
        test_mode=True,
        publish_page_when_paid=page,
        unpublish_page_when_expired=page,
        metadata={"po": {"number": "PO-7"}},
        checkout_session_id="cs_test_old",
        checkout_session_url="https://checkout.example/cs_test_old",
        checkout_attempt=3,
        email_status=EmailStatus.SENT,
        email_attempts=2,
        payment_failure="card_declined",
        created_by=make_user("first", superuser=True),
    )
    lifecycle.expire(source, source=lifecycle.Source.SWEEP)
    source = Invoice.objects.select_related("site").get(pk=source.pk)

    copy = invoices.copy(source)

    fresh = Invoice()
    assert copy.pk is None and copy.copied_from == source
    for name in Invoice.COPIED_FIELDS:
        attname = Invoice._meta.get_field(name).attname
        assert getattr(copy, attname) == getattr(source, attname), name
    for name in set(Invoice.NOT_COPIED_FIELDS) - {"token", "created_at", "copied_from"}:
        attname = Invoice._meta.get_field(name).attname
        assert getattr(copy, attname) == getattr(fresh, attname), name
    assert copy.token != source.token
    copy.metadata["po"]["number"] = "PO-8"
    assert source.metadata == {"po": {"number": "PO-7"}}  # its own copy of the JSON


def test_send_new_is_created_as_a_request_of_its_own(
    connected_site, account, django_capture_on_commit_callbacks
):
    source = make_invoice(connected_site, account, status=InvoiceStatus.DELETED)

    copy = invoices.copy(source)
    copy.account = account  # as the create form picks it: the site's, for the mode
    with django_capture_on_commit_callbacks(execute=True):
        new = invoices.create(copy, user=None)

    assert new.number != source.number
    assert new.status == InvoiceStatus.PENDING
    assert ClientBillingLogEntry.objects.get(action=invoices.CREATED_ACTION).data[
        "copied_from"
    ] == (source.pk)


@pytest.mark.parametrize(
    "status", [InvoiceStatus.PENDING, InvoiceStatus.PROCESSING, InvoiceStatus.PAID]
)
def test_send_new_refuses_a_request_that_may_still_be_or_was_paid(connected_site, account, status):
    source = make_invoice(connected_site, account, status=status)

    assert not invoices.can_send_new(source)
    with pytest.raises(invoices.NotAllowed):
        invoices.copy(source)


def test_a_pending_request_past_its_expiry_may_be_sent_new(connected_site, account):
    source = make_invoice(connected_site, account, expires_at=timezone.now() - timedelta(1))

    assert invoices.can_send_new(source)
    assert invoices.copy(source).copied_from == source


# --- delete ----------------------------------------------------------------------------------


def test_delete_withdraws_the_request_and_queues_its_session_expiry(
    connected_site, account, django_capture_on_commit_callbacks
):
    editor = make_user("editor", superuser=True)
    invoice = make_invoice(connected_site, account)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert invoices.delete(invoice, user=editor) is True

    invoice.refresh_from_db()
    assert (invoice.status, invoice.deleted_by) == (InvoiceStatus.DELETED, editor)
    assert tasks_run() == []
    for callback in callbacks:
        callback()
    assert tasks_run() == ["wagtail_client_billing.tasks.expire_checkout_session"]
    # Already deleted: nothing changes, nothing is queued.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert invoices.delete(invoice, user=editor) is False
    assert callbacks == []


def test_delete_of_a_paid_request_is_refused_with_the_lifecycles_message(connected_site, account):
    invoice = make_invoice(connected_site, account)
    lifecycle.mark_paid(invoice, source=lifecycle.Source.WEBHOOK)

    with pytest.raises(lifecycle.TransitionNotAllowed) as refused:
        invoices.delete(invoice, user=None)

    assert str(refused.value) == "A paid invoice cannot be deleted; refund it instead."
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID


def test_delete_many_deletes_the_deletable_ones_and_leaves_the_paid(connected_site, account):
    pending = make_invoice(connected_site, account)
    expired = make_invoice(connected_site, account, status=InvoiceStatus.EXPIRED)
    paid = make_invoice(connected_site, account)
    stale = Invoice.objects.get(pk=paid.pk)  # loaded before it was paid
    lifecycle.mark_paid(paid, source=lifecycle.Source.WEBHOOK)
    other = make_invoice(make_site("other.example"), account, status=InvoiceStatus.DELETED)

    assert invoices.delete_many([pending, expired, stale, other], user=None) == 2

    statuses = dict(Invoice.objects.values_list("pk", "status"))
    assert statuses == {
        pending.pk: InvoiceStatus.DELETED,
        expired.pk: InvoiceStatus.DELETED,
        paid.pk: InvoiceStatus.PAID,
        other.pk: InvoiceStatus.DELETED,
    }
