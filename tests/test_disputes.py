"""Disputes (issue 18): the ``charge.dispute.*`` events, the dispute state beside the
status, the billing contacts' notice, the listing, the inspect page and the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.utils import make_emulated_invoice, make_invoice, make_user
from tests.webhook_helpers import post_event
from wagtail_client_billing import gateway, tasks
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    Invoice,
    InvoiceDispute,
    WebhookEvent,
    WebhookOutcome,
)
from wagtail_client_billing.testing.webhooks import build_event, random_id
from wagtail_client_billing.webhooks.registry import HANDLED_EVENT_TYPES

pytestmark = pytest.mark.django_db

DISPUTE_EVENTS = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
T0 = int(datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp())


def actions(invoice) -> list[str]:
    return list(
        ClientBillingLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Invoice), object_id=str(invoice.pk)
        )
        .order_by("timestamp", "pk")
        .values_list("action", flat=True)
    )


@pytest.fixture
def paid(connected_site, account):
    """A paid one-time test invoice, paid by ``pi_paid_1``, whose author is an editor."""
    author = make_user("author")
    return make_invoice(
        connected_site,
        account,
        status="paid",
        paid_at=timezone.now(),
        payment_intent_id="pi_paid_1",
        checkout_session_id="cs_test_a1paid",
        created_by=author,
    )


def dispute_obj(invoice, dispute_id="du_test_1", status="needs_response", **fields):
    obj = {
        "id": dispute_id,
        "object": "dispute",
        "amount": invoice.amount,
        "balance_transactions": [],
        "charge": "ch_paid_1",
        "created": T0,
        "currency": invoice.currency.lower(),
        "evidence_details": {
            "due_by": T0 + 14 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": not invoice.test_mode,
        "metadata": {},
        "payment_intent": invoice.payment_intent_id,
        "reason": "fraudulent",
        "status": status,
    }
    obj.update(fields)
    return obj


def dispute_event(type, invoice, at, **obj_fields):
    """An event of ``type`` made at Unix time ``at`` carrying the dispute."""
    return build_event(
        type,
        dispute_obj(invoice, **obj_fields),
        account=invoice.account.stripe_id,
        livemode=not invoice.test_mode,
        created=at,
    )


def deliver(client, *events):
    for event in events:
        assert post_event(client, event).status_code == 200


def set_contacts(site, contacts: str) -> None:
    config = ClientBillingSettings.for_site(site)
    config.billing_contacts = contacts
    config.save()


# --- the events -------------------------------------------------------------------------------


def test_every_dispute_event_is_handled_and_asked_of_the_endpoint():
    assert set(DISPUTE_EVENTS) <= set(HANDLED_EVENT_TYPES)


def test_a_new_dispute_shows_on_the_invoice_and_tells_the_billing_contacts(client, paid):
    set_contacts(paid.site, "boss@agency.example\naccounts@agency.example")

    deliver(client, dispute_event("charge.dispute.created", paid, T0))

    paid.refresh_from_db()
    assert paid.status == "paid"  # the status is untouched: the dispute is beside it
    assert (paid.dispute_id, paid.dispute_status, paid.dispute_reason) == (
        "du_test_1",
        "needs_response",
        "fraudulent",
    )
    assert paid.dispute_amount == paid.amount
    assert paid.dispute_evidence_due_by == datetime.fromtimestamp(T0 + 14 * 86400, tz=UTC)
    assert paid.dispute_is_open
    assert actions(paid) == ["wagtail_client_billing.dispute_opened"]
    (notice,) = mail.outbox
    assert notice.to == ["boss@agency.example", "accounts@agency.example"]
    assert paid.number in notice.subject
    assert "dashboard.stripe.com/acct_test_a/test/disputes/du_test_1" in notice.body
    assert "$125.00" in notice.body
    assert InvoiceDispute.objects.get().notice_sent_at is not None


def test_without_billing_contacts_the_invoice_author_is_told(client, paid):
    deliver(client, dispute_event("charge.dispute.created", paid, T0))

    (notice,) = mail.outbox
    assert notice.to == ["author@example.com"]


def test_a_won_dispute_clears_the_state(client, paid):
    deliver(
        client,
        dispute_event("charge.dispute.created", paid, T0),
        dispute_event("charge.dispute.updated", paid, T0 + 10, status="under_review"),
        dispute_event("charge.dispute.closed", paid, T0 + 20, status="won"),
        dispute_event("charge.dispute.funds_reinstated", paid, T0 + 21, status="won"),
    )

    paid.refresh_from_db()
    assert (paid.dispute_id, paid.dispute_status, paid.dispute_amount_lost) == ("", "", 0)
    assert paid.status == "paid"
    assert actions(paid) == [
        "wagtail_client_billing.dispute_opened",
        "wagtail_client_billing.dispute_closed",
    ]
    assert InvoiceDispute.objects.get().status == "won"


def test_a_lost_dispute_records_the_amount_lost(client, paid):
    deliver(
        client,
        dispute_event("charge.dispute.created", paid, T0, amount=5000),
        dispute_event("charge.dispute.closed", paid, T0 + 20, status="lost", amount=5000),
    )

    paid.refresh_from_db()
    assert (paid.dispute_status, paid.dispute_amount_lost) == ("lost", 5000)
    assert not paid.dispute_is_open
    assert paid.formatted_dispute_amount_lost == "$50.00"


def test_an_older_update_after_the_close_changes_nothing(client, paid):
    deliver(
        client,
        dispute_event("charge.dispute.created", paid, T0),
        dispute_event("charge.dispute.closed", paid, T0 + 20, status="lost"),
    )
    late = dispute_event("charge.dispute.updated", paid, T0 + 10, status="under_review")

    deliver(client, late)

    paid.refresh_from_db()
    assert paid.dispute_status == "lost"
    record = WebhookEvent.objects.get(event_id=late["id"])
    assert record.outcome == WebhookOutcome.IGNORED
    assert "newer state" in record.error


def test_a_dispute_on_an_unknown_payment_is_stored_and_ignored(client, paid):
    event = dispute_event("charge.dispute.created", paid, T0, payment_intent="pi_elsewhere")

    deliver(client, event)

    assert WebhookEvent.objects.get(event_id=event["id"]).outcome == WebhookOutcome.IGNORED
    assert not InvoiceDispute.objects.exists()
    assert mail.outbox == []


def test_a_dispute_from_another_account_is_ignored(client, paid):
    event = dispute_event("charge.dispute.created", paid, T0)
    event["account"] = "acct_someone_else"

    deliver(client, event)

    paid.refresh_from_db()
    assert paid.dispute_status == ""
    assert WebhookEvent.objects.get(event_id=event["id"]).outcome == WebhookOutcome.IGNORED


SHUFFLE_SETTINGS = hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _sequences(invoice, dispute_id, outcome):
    return [
        dispute_event("charge.dispute.created", invoice, T0, dispute_id=dispute_id),
        dispute_event("charge.dispute.funds_withdrawn", invoice, T0, dispute_id=dispute_id),
        dispute_event(
            "charge.dispute.updated", invoice, T0, dispute_id=dispute_id, status="under_review"
        ),
        dispute_event(
            "charge.dispute.closed", invoice, T0 + 60, dispute_id=dispute_id, status=outcome
        ),
    ] + (
        [
            dispute_event(
                "charge.dispute.funds_reinstated",
                invoice,
                T0 + 60,
                dispute_id=dispute_id,
                status="won",
            )
        ]
        if outcome == "won"
        else []
    )


@SHUFFLE_SETTINGS
@given(data=st.data(), outcome=st.sampled_from(["won", "lost"]))
def test_dispute_events_in_any_order_and_duplicated_end_in_one_state(
    client, connected_site, account, data, outcome
):
    mail.outbox = []
    invoice = make_invoice(
        connected_site, account, status="paid", payment_intent_id=random_id("pi_")
    )
    set_contacts(connected_site, "boss@agency.example")
    dispute_id = random_id("du_")
    events = _sequences(invoice, dispute_id, outcome)
    order = data.draw(st.permutations(range(len(events))))
    duplicates = data.draw(st.lists(st.sampled_from(range(len(events))), max_size=4))

    deliver(client, *[events[i] for i in order], *[events[i] for i in duplicates])

    invoice.refresh_from_db()
    if outcome == "won":
        assert (invoice.dispute_status, invoice.dispute_amount_lost) == ("", 0)
    else:
        assert (invoice.dispute_status, invoice.dispute_amount_lost) == ("lost", invoice.amount)
        assert invoice.dispute_id == dispute_id
    assert InvoiceDispute.objects.get(stripe_dispute_id=dispute_id).status == outcome
    assert sorted(actions(invoice)) == [
        "wagtail_client_billing.dispute_closed",
        "wagtail_client_billing.dispute_opened",
    ]
    assert [m.to for m in mail.outbox] == [["boss@agency.example"]]


def test_an_open_dispute_shows_over_an_earlier_lost_one(client, paid):
    deliver(
        client,
        dispute_event("charge.dispute.created", paid, T0, dispute_id="du_a", amount=1000),
        dispute_event(
            "charge.dispute.closed", paid, T0 + 5, dispute_id="du_a", status="lost", amount=1000
        ),
        dispute_event("charge.dispute.created", paid, T0 + 9, dispute_id="du_b", created=T0 + 9),
    )

    paid.refresh_from_db()
    assert (paid.dispute_id, paid.dispute_status) == ("du_b", "needs_response")
    assert paid.dispute_amount_lost == 1000


# --- the notice, when its task was lost -------------------------------------------------------


def test_a_lost_notice_task_is_found_again_by_the_sweep(paid, settings):
    set_contacts(paid.site, "boss@agency.example")
    InvoiceDispute.objects.create(
        invoice=paid,
        stripe_dispute_id="du_lost_task",
        status="needs_response",
        amount=paid.amount,
        currency="USD",
        state_at=timezone.now(),
        opened_at=timezone.now() - timedelta(hours=1),
    )

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.resume_dispute_notices() == 1
    assert [m.to for m in mail.outbox] == [["boss@agency.example"]]
    assert tasks.resume_dispute_notices() == 0
    assert tasks.send_dispute_notice(InvoiceDispute.objects.get().pk, 0) == "already handled"
    assert len(mail.outbox) == 1


def test_schedules_include_the_dispute_notice_sweep():
    names = {spec.name for spec in tasks.schedule_specs()}
    assert "client_billing_resume_dispute_notices" in names


# --- the admin ----------------------------------------------------------------------------------


@pytest.fixture
def admin(client, db):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


def listing_url(**params) -> str:
    from urllib.parse import urlencode

    url = reverse("wagtail_client_billing_invoices:list")
    return f"{url}?{urlencode(params)}" if params else url


def test_listing_tags_and_filters_disputed_invoices(client, admin, paid, account):
    quiet = make_invoice(paid.site, account, status="paid", email="quiet@example.com")
    lost = make_invoice(paid.site, account, status="paid", email="lost@example.com")
    Invoice.objects.filter(pk=paid.pk).update(dispute_id="du_1", dispute_status="needs_response")
    Invoice.objects.filter(pk=lost.pk).update(
        dispute_id="du_2", dispute_status="lost", dispute_amount_lost=500
    )

    page = client.get(listing_url()).content.decode()
    assert page.count("wcb-status--disputed") == 1
    assert page.count("wcb-status--dispute-lost") == 1

    open_only = client.get(listing_url(dispute="open")).content.decode()
    assert paid.email in open_only
    assert quiet.email not in open_only and lost.email not in open_only
    lost_only = client.get(listing_url(dispute="lost")).content.decode()
    assert lost.email in lost_only and paid.email not in lost_only


def test_inspect_page_shows_the_dispute_with_a_link_to_stripe(client, admin, paid):
    client_ = client
    deliver(client_, dispute_event("charge.dispute.created", paid, T0))
    url = reverse("wagtail_client_billing_invoices:inspect", args=[paid.pk])

    page = client.get(url).content.decode()

    assert "Needs response" in page
    assert "fraudulent" in page
    assert 'href="https://dashboard.stripe.com/acct_test_a/test/disputes/du_test_1"' in page


def test_live_invoice_links_to_the_live_dashboard(paid):
    paid.test_mode = False
    paid.dispute_id = "du_live"
    assert (
        paid.dispute_dashboard_url() == "https://dashboard.stripe.com/acct_test_a/disputes/du_live"
    )


# --- the billing contacts setting --------------------------------------------------------------


def settings_post(client, site, contacts):
    config = ClientBillingSettings.for_site(site)
    data = {
        "use_custom_smtp": "",
        "smtp_host": "",
        "smtp_port": "587",
        "smtp_username": "",
        "smtp_password": "",
        "smtp_security": config.smtp_security,
        "smtp_timeout": "10",
        "from_email": "",
        "reply_to": "",
        "default_currency": "",
        "payment_link_lifetime_hours": "",
        "billing_contacts": contacts,
    }
    url = reverse(
        "wagtailsettings:edit", args=["wagtail_client_billing", "clientbillingsettings", site.pk]
    )
    return client.post(url, data)


def test_billing_contacts_are_saved_one_a_line(client, admin, site):
    response = settings_post(client, site, "a@agency.example, b@agency.example\nA@agency.example")

    assert response.status_code == 302
    config = ClientBillingSettings.for_site(site)
    assert config.billing_contact_list == ["a@agency.example", "b@agency.example"]


def test_a_wrong_billing_contact_is_a_field_error(client, admin, site):
    response = settings_post(client, site, "a@agency.example, not-an-address, Boss <b@x.example>")

    assert response.status_code == 200
    errors = response.context["form"].errors["billing_contacts"]
    assert "not-an-address" in errors[0] and "Boss <b@x.example>" in errors[0]
    assert ClientBillingSettings.for_site(site).billing_contacts == ""


# --- the emulator, end to end ------------------------------------------------------------------


@pytest.fixture
def emulated_paid(stripe_emulator, client):
    invoice = make_emulated_invoice(stripe_emulator, "disputes.example")
    set_contacts(invoice.site, "boss@agency.example")
    from urllib.parse import urlsplit

    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.payment_intent_id
    return invoice


def test_emulated_dispute_lost_through_the_control_routes(stripe_emulator, emulated_paid):
    invoice = emulated_paid
    dispute = stripe_emulator.control(
        "POST", f"/_emulator/payment_intents/{invoice.payment_intent_id}/dispute", {}
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert (invoice.dispute_id, invoice.dispute_status) == (dispute["id"], "needs_response")
    assert [m.to for m in mail.outbox if "Dispute" in m.subject] == [["boss@agency.example"]]

    stripe_emulator.control("POST", f"/_emulator/disputes/{dispute['id']}/submit_evidence", {})
    stripe_emulator.control("POST", f"/_emulator/disputes/{dispute['id']}/lose", {})
    stripe_emulator.deliver_pending()

    invoice.refresh_from_db()
    assert (invoice.dispute_status, invoice.dispute_amount_lost) == ("lost", invoice.amount)
    types = [e["type"] for e in stripe_emulator.events if e["type"].startswith("charge.")]
    assert types == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.closed",
    ]


def test_emulated_dispute_won_clears_it_and_reinstates_funds(stripe_emulator, emulated_paid):
    invoice = emulated_paid
    dispute = stripe_emulator.open_dispute(invoice.payment_intent_id, reason="product_not_received")
    stripe_emulator.win_dispute(dispute["id"])
    stripe_emulator.deliver_pending()

    invoice.refresh_from_db()
    assert invoice.dispute_status == ""
    assert InvoiceDispute.objects.get(invoice=invoice).reason == "product_not_received"
    types = [e["type"] for e in stripe_emulator.events if e["type"].startswith("charge.")]
    assert types[-2:] == ["charge.dispute.closed", "charge.dispute.funds_reinstated"]


def test_emulator_refuses_a_second_dispute_and_moves_on_closed_ones(stripe_emulator, emulated_paid):
    from wagtail_client_billing.testing.emulator.errors import EmulatorError

    dispute = stripe_emulator.open_dispute(emulated_paid.payment_intent_id)
    with pytest.raises(EmulatorError):
        stripe_emulator.open_dispute(emulated_paid.payment_intent_id)
    stripe_emulator.lose_dispute(dispute["id"])
    with pytest.raises(EmulatorError):
        stripe_emulator.win_dispute(dispute["id"])


def test_gateway_lists_a_payments_disputes_on_its_account_only(stripe_emulator, emulated_paid):
    dispute = stripe_emulator.open_dispute(emulated_paid.payment_intent_id)

    found = gateway.list_disputes(
        test_mode=True,
        account_id=emulated_paid.account.stripe_id,
        payment_intent=emulated_paid.payment_intent_id,
    )
    assert [(d["id"], d["status"]) for d in found] == [(dispute["id"], "needs_response")]
    other = gateway.create_account(
        test_mode=True,
        country="US",
        privacy_policy_url="https://agency.example/privacy",
        terms_of_service_url="https://agency.example/terms",
        site_url="https://other.example/",
        idempotency_key="wcb-test-disputes-other",
    )
    assert gateway.list_disputes(test_mode=True, account_id=other.id) == []


def test_the_dispute_signal_and_hook_run_once_per_change(client, paid):
    from wagtail import hooks as wagtail_hooks

    from wagtail_client_billing import hooks
    from wagtail_client_billing.signals import dispute_changed

    seen = []

    def receiver(sender, invoice, dispute, what, **kwargs):
        seen.append(("signal", what, dispute.stripe_dispute_id))

    dispute_changed.connect(receiver)
    created = dispute_event("charge.dispute.created", paid, T0)
    try:
        with wagtail_hooks.register_temporarily(
            hooks.DISPUTE_CHANGED, lambda invoice, dispute, what: seen.append(("hook", what))
        ):
            deliver(
                client,
                created,
                created,
                dispute_event("charge.dispute.closed", paid, T0 + 9, status="lost"),
            )
    finally:
        dispute_changed.disconnect(receiver)

    assert seen == [
        ("signal", "opened", "du_test_1"),
        ("hook", "opened"),
        ("signal", "closed", "du_test_1"),
        ("hook", "closed"),
    ]


def test_a_dispute_on_a_renewals_charge_finds_its_invoice_by_the_payment(client, monthly):
    from wagtail_client_billing.models import Payment, PaymentKind

    Invoice.objects.filter(pk=monthly.pk).update(status="paid", subscription_id="sub_1")
    monthly.refresh_from_db()
    Payment.objects.create(
        invoice=monthly,
        kind=PaymentKind.RENEWAL,
        stripe_invoice_id="in_renewal_2",
        payment_intent_id="pi_renewal_2",
        charge_id="ch_renewal_2",
        amount=monthly.amount,
        currency="USD",
        paid_at=timezone.now(),
    )
    event = dispute_event(
        "charge.dispute.created", monthly, T0, payment_intent=None, charge="ch_renewal_2"
    )

    deliver(client, event)

    monthly.refresh_from_db()
    assert (monthly.dispute_id, monthly.dispute_status) == ("du_test_1", "needs_response")


def test_reconcile_records_a_dispute_whose_webhooks_were_lost(stripe_emulator, emulated_paid):
    from io import StringIO

    from django.core.management import call_command

    stripe_emulator.webhooks_enabled = False
    dispute = stripe_emulator.open_dispute(emulated_paid.payment_intent_id)
    stripe_emulator.lose_dispute(dispute["id"])

    out = StringIO()
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("client_billing_reconcile", stdout=out, stderr=StringIO())

    emulated_paid.refresh_from_db()
    assert (emulated_paid.dispute_status, emulated_paid.dispute_amount_lost) == (
        "lost",
        emulated_paid.amount,
    )
    assert "1 opened or closed here" in out.getvalue()
    assert [m.to for m in mail.outbox if "Dispute" in m.subject] == [["boss@agency.example"]]

    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("client_billing_reconcile", stdout=out, stderr=StringIO())
    assert actions(emulated_paid).count("wagtail_client_billing.dispute_opened") == 1


def test_reconcile_leaves_payments_older_than_the_window(stripe_emulator, emulated_paid, settings):
    from wagtail_client_billing.billing import disputes

    stripe_emulator.webhooks_enabled = False
    stripe_emulator.open_dispute(emulated_paid.payment_intent_id)
    Invoice.objects.filter(pk=emulated_paid.pk).update(paid_at=timezone.now() - timedelta(days=200))

    report = disputes.reconcile()

    assert report.accounts == 0
    emulated_paid.refresh_from_db()
    assert emulated_paid.dispute_status == ""
