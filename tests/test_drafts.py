"""Drafts (issue 19): a billing request saved unsent, edited, then sent.

A draft has no number, sends no email and cannot be paid; sending it numbers it from
the site's counter (so sent invoices stay numbered without gaps), starts its payment
link's lifetime and queues its email.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from tests.test_admin_invoices import form_data, messages_of, url
from tests.test_rollup import recomputed as rollup_recomputed
from tests.test_rollup import stored as rollup_stored
from tests.utils import make_invoice, make_user
from wagtail_client_billing import lifecycle, status
from wagtail_client_billing.billing import invoices
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    EmailStatus,
    Invoice,
    InvoiceCounter,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def admin(db, client):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


def save_draft(client, site, **overrides):
    data = form_data(site, **overrides)
    data["action-draft"] = "draft"
    return client.post(url("add"), data, follow=True)


def test_save_draft_keeps_the_request_unsent_unnumbered_and_unpayable(
    client, admin, connected_site, django_capture_on_commit_callbacks
):
    form = client.get(url("add")).content.decode()
    assert 'name="action-draft"' in form and "Save draft" in form
    with django_capture_on_commit_callbacks(execute=True):
        response = save_draft(client, connected_site)

    invoice = Invoice.objects.get()
    assert invoice.status == "draft"
    assert invoice.number == "" and invoice.sequence is None
    assert invoice.email_status == EmailStatus.NOT_SENT
    assert mail.outbox == []
    assert not InvoiceCounter.objects.filter(site=connected_site, last_sequence__gt=0).exists()
    assert "Draft for client@example.com saved. It has not been sent." in messages_of(response)
    # The editor lands on the draft's edit form.
    assert response.redirect_chain[-1][0] == url("edit_draft", invoice.pk)

    page = client.get(invoice.get_pay_url())
    assert page.status_code == 200
    assert "cannot be paid yet" in page.content.decode()
    assert (
        client.get(reverse("wagtail_client_billing:invoice_status", args=[invoice.token])).json()[
            "payable"
        ]
        is False
    )


def test_draft_is_edited_with_every_field_then_sent_from_its_edit_form(
    client, admin, connected_site, account, django_capture_on_commit_callbacks
):
    save_draft(client, connected_site)
    draft = Invoice.objects.get()
    form = client.get(url("edit_draft", draft.pk))
    assert form.status_code == 200
    assert "Send billing request" in form.content.decode()

    # Edited: amount and email change, still a draft.
    data = form_data(connected_site, amount="300", email="boss@client.example")
    client.post(url("edit_draft", draft.pk), data)
    draft.refresh_from_db()
    assert draft.status == "draft" and draft.amount == 30000
    assert draft.email == "boss@client.example"

    # Sent from the edit form, two days later: numbered and emailed now, the lifetime
    # counted from now.
    ClientBillingSettings.objects.filter(site=connected_site).update(payment_link_lifetime_hours=48)
    later = NOW + timedelta(days=2)
    with (
        time_machine.travel(later, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(
            url("edit_draft", draft.pk), {**data, "action-send": "send"}, follow=True
        )
    draft.refresh_from_db()
    assert draft.status == "pending"
    assert draft.number == "INV-000001"
    assert draft.expires_at == later + timedelta(hours=48)
    assert "Billing request INV-000001 sent to boss@client.example" in messages_of(response)
    assert [m.to for m in mail.outbox] == [["boss@client.example"]]
    assert ClientBillingLogEntry.objects.filter(
        object_id=str(draft.pk), action="wagtail_client_billing.sent", user=admin
    ).exists()
    # No longer a draft: its edit form is the notes-only one again.
    assert client.get(url("edit_draft", draft.pk)).status_code == 302
    # The dashboard's figures (the rollup) followed the edit: the sent invoice counts
    # with its edited amount, and no draft is left over.
    assert rollup_stored() == rollup_recomputed()


def test_draft_sent_from_the_inspect_page(
    client, admin, connected_site, django_capture_on_commit_callbacks
):
    save_draft(client, connected_site)
    draft = Invoice.objects.get()
    inspect = client.get(url("inspect", draft.pk)).content.decode()
    assert url("send", draft.pk) in inspect
    assert url("resend", draft.pk) not in inspect  # nothing was sent to resend

    assert "Yes, send it" in client.get(url("send", draft.pk)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("send", draft.pk), follow=True)
    draft.refresh_from_db()
    assert draft.status == "pending" and draft.number == "INV-000001"
    assert len(mail.outbox) == 1
    assert "Billing request INV-000001 sent to client@example.com" in messages_of(response)

    # Sending twice does nothing more.
    response = client.post(url("send", draft.pk), follow=True)
    assert "INV-000001 was sent already: only a draft can be sent." in messages_of(response)
    assert len(mail.outbox) == 1


def test_numbers_are_taken_at_send_so_sent_invoices_have_no_gaps(admin, connected_site, account):
    first_draft = make_invoice(connected_site, account, status="draft")
    sent_directly = make_invoice(connected_site, account)
    second_draft = make_invoice(connected_site, account, status="draft")
    assert first_draft.number == "" and second_draft.number == ""
    assert sent_directly.number == "INV-000001"

    invoices.delete(second_draft, user=admin)  # discarded: never numbered
    invoices.send(first_draft, user=admin)
    third = make_invoice(connected_site, account)
    assert [first_draft.number, third.number] == ["INV-000002", "INV-000003"]


def test_a_refused_send_hands_out_no_number(admin, connected_site, account):
    draft = make_invoice(connected_site, account, status="draft")
    Invoice.objects.filter(pk=draft.pk).update(due_date=datetime(2020, 1, 1).date())
    draft.refresh_from_db()
    with pytest.raises(invoices.NotAllowed, match="due date has passed"):
        invoices.send(draft, user=admin)
    draft.refresh_from_db()
    assert draft.status == "draft" and draft.number == ""
    assert make_invoice(connected_site, account).number == "INV-000001"


def test_discarded_draft_is_deleted_like_any_invoice(client, admin, connected_site, account):
    draft = make_invoice(connected_site, account, status="draft")
    assert "Discard this draft for client@example.com?" in (
        client.get(url("delete", draft.pk)).content.decode()
    )
    response = client.post(url("delete", draft.pk), follow=True)
    draft.refresh_from_db()
    assert draft.status == "deleted"
    assert response.status_code == 200
    with pytest.raises(invoices.NotAllowed):
        invoices.send(draft, user=admin)


def test_drafts_have_their_own_filter_in_the_listing(client, admin, connected_site, account):
    draft = make_invoice(connected_site, account, status="draft", email="draft@client.example")
    make_invoice(connected_site, account, email="sent@client.example")

    everything = client.get(url("list")).content.decode()
    assert "draft@client.example" in everything and "sent@client.example" in everything
    only_drafts = client.get(url("list") + "?status=draft").content.decode()
    assert "draft@client.example" in only_drafts and "sent@client.example" not in only_drafts
    assert url("edit_draft", draft.pk) in only_drafts


def test_expiry_sweep_and_email_task_never_touch_drafts(admin, connected_site, account):
    from wagtail_client_billing import tasks

    draft = make_invoice(connected_site, account, status="draft")
    with time_machine.travel(timezone_now() + timedelta(days=400), tick=False):
        assert lifecycle.expire_due() == []
        assert tasks.send_invoice_email(draft.pk, 0) != "sent"
    draft.refresh_from_db()
    assert draft.status == "draft"
    assert mail.outbox == []


def test_draft_row_of_the_status_table():
    row = status.get("draft")
    assert not row.payable and row.deletable and not row.withdrawn
    assert "pending" in row.targets
    assert lifecycle.can_transition("draft", "pending")
    assert not lifecycle.can_transition("pending", "draft")


def timezone_now():
    from django.utils import timezone

    return timezone.now()
