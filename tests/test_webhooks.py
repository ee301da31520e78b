"""Stripe webhooks: signed events posted to the real view, applied through the lifecycle."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone
from django_q.models import Schedule
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.utils import connect, make_account, make_invoice
from tests.webhook_helpers import (
    LIVE_SECRET,
    ROTATED_TEST_SECRET,
    TEST_SECRET,
    account_event,
    async_result,
    completed,
    expired,
    nothing_kept,
    post_event,
    session_event,
    session_obj,
    stripe_invoice_obj,
    subscription_obj,
)
from wagtail_client_billing import signals, tasks, webhooks
from wagtail_client_billing.conf import billing_settings
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    Invoice,
    StripeAccount,
    WebhookDelivery,
    WebhookEvent,
    WebhookOutcome,
)
from wagtail_client_billing.testing.webhooks import build_event, random_id, sign_payload
from wagtail_client_billing.webhooks import Applied, intake

pytestmark = pytest.mark.django_db


def log_actions(invoice) -> list[str]:
    return list(
        ClientBillingLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Invoice), object_id=str(invoice.pk)
        )
        .order_by("timestamp", "pk")
        .values_list("action", flat=True)
    )


def refreshed(invoice) -> Invoice:
    invoice.refresh_from_db()
    return invoice


# --- payments ------------------------------------------------------------------------------


def test_completed_paid_session_marks_the_invoice_paid(client, invoice):
    event = completed(invoice, "cs_test_a1current", payment_intent="pi_card")

    response = post_event(client, event)

    assert response.status_code == 200
    invoice = refreshed(invoice)
    assert invoice.status == "paid"
    assert invoice.payment_intent_id == "pi_card"
    assert invoice.status_source == "webhook"
    assert log_actions(invoice) == ["wagtail_client_billing.paid"]
    record = WebhookEvent.objects.get(event_id=event["id"])
    assert (record.outcome, record.invoice, record.account) == (
        "processed",
        invoice,
        "acct_test_a",
    )


def test_bank_debit_is_processing_then_paid(client, invoice):
    post_event(client, completed(invoice, "cs_test_a1current", paid=False))
    assert refreshed(invoice).status == "processing"

    post_event(client, async_result(invoice, "cs_test_a1current", succeeded=True))

    assert refreshed(invoice).status == "paid"
    assert log_actions(invoice) == [
        "wagtail_client_billing.processing",
        "wagtail_client_billing.paid",
    ]


def test_failed_bank_debit_goes_back_to_pending_with_the_failure_shown(client, invoice):
    post_event(client, completed(invoice, "cs_test_a1current", paid=False))
    post_event(client, async_result(invoice, "cs_test_a1current", succeeded=False))

    invoice = refreshed(invoice)
    assert invoice.status == "pending"
    assert "failed" in invoice.payment_failure
    assert log_actions(invoice)[-1] == "wagtail_client_billing.payment_failed"


def test_failed_bank_debit_after_the_invoice_expiry_expires_it(client, invoice):
    post_event(client, completed(invoice, "cs_test_a1current", paid=False))
    with time_machine.travel(invoice.expires_at + timedelta(minutes=1), tick=False):
        event = async_result(invoice, "cs_test_a1current", succeeded=False)
        post_event(client, event)
    assert refreshed(invoice).status == "expired"


def test_failure_overtaking_its_completed_event_does_not_leave_it_processing(client, invoice):
    post_event(client, async_result(invoice, "cs_test_a1current", succeeded=False))
    post_event(client, completed(invoice, "cs_test_a1current", paid=False))

    invoice = refreshed(invoice)
    assert invoice.status == "pending"
    assert invoice.payment_failure


def test_a_settled_debit_is_remembered_when_its_event_payload_is_purged(client, invoice):
    post_event(client, async_result(invoice, "cs_test_a1current", succeeded=False))
    assert tasks.purge_webhook_payloads(now=timezone.now() + timedelta(days=365)) == 1
    post_event(client, completed(invoice, "cs_test_a1current", paid=False))

    invoice = refreshed(invoice)
    assert invoice.status == "pending"
    assert invoice.delayed_payment_resolved_session == "cs_test_a1current"


def test_a_late_failure_cannot_unpay(client, invoice):
    post_event(client, completed(invoice, "cs_test_a1current", paid=False))
    post_event(client, async_result(invoice, "cs_test_a1current", succeeded=True))
    post_event(client, async_result(invoice, "cs_test_a1current", succeeded=False))

    assert refreshed(invoice).status == "paid"


def test_payment_on_an_expired_invoice_marks_it_paid_late(client, invoice):
    from wagtail_client_billing import lifecycle

    lifecycle.expire(invoice, source=lifecycle.Source.SWEEP)

    post_event(client, completed(invoice, "cs_test_a1current"))

    invoice = refreshed(invoice)
    assert (invoice.status, invoice.late_payment) == ("paid", True)


def test_expired_session_is_forgotten_so_the_next_click_makes_a_new_one(client, invoice):
    Invoice.objects.filter(pk=invoice.pk).update(
        checkout_session_url="https://checkout.stripe.com/c/pay/x",
        checkout_session_expires_at=timezone.now() + timedelta(hours=1),
    )
    post_event(client, expired(invoice, "cs_test_a1current"))

    invoice = refreshed(invoice)
    assert invoice.status == "pending"  # its own expiry decides
    assert (invoice.checkout_session_id, invoice.checkout_session_url) == ("", "")
    assert invoice.checkout_session_expires_at is None


def test_expiry_of_an_older_session_keeps_the_current_one(client, invoice):
    post_event(client, expired(invoice, "cs_test_a1older"))
    assert refreshed(invoice).checkout_session_id == "cs_test_a1current"


# --- duplicates, unknown and foreign events ------------------------------------------------


def test_duplicate_delivery_is_acknowledged_and_changes_nothing(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    post_event(client, event)

    response = post_event(client, event)

    assert response.status_code == 200
    assert response.json() == {"id": event["id"], "received": True}
    assert log_actions(invoice) == ["wagtail_client_billing.paid"]
    assert WebhookEvent.objects.get(event_id=event["id"]).attempts == 1


@pytest.mark.parametrize("one_statement", [True, False], ids=["insert-or-skip", "orm-create"])
def test_storing_an_event_twice_keeps_the_first(invoice, monkeypatch, one_statement):
    """Both ways of storing (one ``INSERT ... ON CONFLICT`` on PostgreSQL and SQLite
    3.35+, ``objects.create`` elsewhere) insert once and find the stored event again."""
    if not one_statement:
        monkeypatch.setattr(intake, "_can_insert_or_skip", lambda connection: False)
    event = completed(invoice, "cs_test_a1current")

    first, created = intake.store(event)
    again, created_again = intake.store({**event, "type": "changed.in.transit"})

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    stored = WebhookEvent.objects.get(event_id=event["id"])
    assert (stored.pk, stored.type, stored.outcome, stored.attempts) == (
        first.pk,
        "checkout.session.completed",
        "received",
        0,
    )
    assert stored.payload == event
    assert stored.received_at == first.received_at


def test_unknown_event_type_is_stored_as_ignored(client, invoice):
    event = build_event(
        "charge.refunded", {"id": "ch_1", "object": "charge"}, account="acct_test_a"
    )

    response = post_event(client, event)

    assert response.status_code == 200
    record = WebhookEvent.objects.get(event_id=event["id"])
    assert record.outcome == "ignored"
    assert record.error


def test_event_for_an_unknown_invoice_is_ignored(client, invoice):
    session = session_obj(invoice, metadata={}, client_reference_id=None, status="complete")
    session["payment_status"] = "paid"
    event = session_event("checkout.session.completed", invoice, session)

    assert post_event(client, event).status_code == 200
    assert WebhookEvent.objects.get(event_id=event["id"]).outcome == "ignored"
    assert refreshed(invoice).status == "pending"


def test_event_from_another_account_is_ignored(client, invoice):
    make_account("acct_test_other")
    event = completed(invoice, "cs_test_a1current")
    event["account"] = "acct_test_other"

    assert post_event(client, event).status_code == 200

    record = WebhookEvent.objects.get(event_id=event["id"])
    assert record.outcome == "ignored"
    assert "acct_test_other" in record.error
    assert record.invoice == invoice  # the event log still says which invoice it names
    assert refreshed(invoice).status == "pending"


def test_event_of_the_other_mode_is_ignored(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    event["livemode"] = True
    event["data"]["object"]["livemode"] = True

    assert post_event(client, event, LIVE_SECRET).status_code == 200

    record = WebhookEvent.objects.get(event_id=event["id"])
    assert (record.outcome, record.livemode, record.invoice) == ("ignored", True, invoice)
    assert refreshed(invoice).status == "pending"


def test_a_handler_returns_what_it_did_and_the_invoice_it_concerns(invoice):
    paid = completed(invoice, "cs_test_a1current")
    unknown = build_event("payout.paid", {"id": "po_1", "object": "payout"})
    other_mode = completed(invoice, "cs_test_a1current")
    other_mode["livemode"] = True

    assert intake.dispatch(paid) == Applied(WebhookOutcome.PROCESSED, "", invoice)
    assert intake.dispatch(unknown) == Applied(
        WebhookOutcome.IGNORED, "Not an event this app handles.", None
    )
    ignored = intake.dispatch(other_mode)
    assert (ignored.outcome, ignored.invoice) == (WebhookOutcome.IGNORED, invoice)
    assert refreshed(invoice).status == "paid"


# --- signatures and bodies -----------------------------------------------------------------


def test_missing_signature_is_refused_and_nothing_stored(client, invoice):
    assert post_event(client, completed(invoice, "cs_test_a1current"), None).status_code == 400
    assert nothing_kept()
    assert refreshed(invoice).status == "pending"


def test_wrong_secret_is_refused_and_nothing_stored(client, invoice):
    response = post_event(client, completed(invoice, "cs_test_a1current"), "whsec_wrong")
    assert response.status_code == 400
    assert nothing_kept()


def test_tampered_body_is_refused(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    body = json.dumps(event).encode()

    signature = sign_payload(body, "whsec_test_suite")
    tampered = body.replace(b'"paid"', b'"paid" ', 1)
    response = client.post(
        "/billing/stripe/webhook/",
        data=tampered,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )
    assert response.status_code == 400
    assert nothing_kept()


def test_stale_signature_is_refused(client, invoice):
    old = int(timezone.now().timestamp()) - 301
    response = post_event(client, completed(invoice, "cs_test_a1current"), timestamp=old)
    assert response.status_code == 400
    assert nothing_kept()


def test_signature_within_tolerance_is_accepted(client, invoice):
    recent = int(timezone.now().timestamp()) - 200
    response = post_event(client, completed(invoice, "cs_test_a1current"), timestamp=recent)
    assert response.status_code == 200


def test_rotated_secret_is_accepted(client, invoice):
    response = post_event(client, completed(invoice, "cs_test_a1current"), ROTATED_TEST_SECRET)
    assert response.status_code == 200
    assert refreshed(invoice).status == "paid"


def test_live_event_signed_with_a_test_secret_is_refused(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    event["livemode"] = True
    assert post_event(client, event).status_code == 400
    assert nothing_kept()


def test_signed_body_that_is_not_a_stripe_event_is_refused(client):
    body = json.dumps({"hello": "world"}).encode()
    assert post_event(client, {}, body=body).status_code == 400
    assert post_event(client, {}, body=b"not json").status_code == 400
    assert post_event(client, {}, body=b"\xff\xfe").status_code == 400
    assert nothing_kept()


def test_genuine_event_is_verified_on_its_decoded_text(client, invoice):
    # Verified on the text the app decoded, whichever ``stripe`` release is installed
    # (13.0 to 15.5 refused every bytes body); non-ASCII text is signed byte for byte.
    event = completed(invoice, "cs_test_a1current", customer_details={"name": "Zoë Ærø 山田"})
    body = json.dumps(event, ensure_ascii=False).encode()
    assert post_event(client, event, body=body).status_code == 200
    assert refreshed(invoice).status == "paid"


def test_signed_body_that_is_not_strict_utf8_is_refused(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    for bad in (b"\xff", b"\xed\xa0\x80", b"\xc0\xae"):  # not UTF-8, a surrogate, overlong
        body = json.dumps(event).encode().replace(b"cs_test_a1current", b"cs_" + bad, 1)
        response = post_event(client, event, body=body)
        assert response.status_code == 400
        assert response.json()["error"] == "The body is not UTF-8 text."
    assert nothing_kept()


def test_oversized_body_is_refused_before_it_is_read(client, settings, invoice):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_MAX_BODY_BYTES": 1024,
    }
    event = completed(invoice, "cs_test_a1current")
    event["padding"] = "x" * 2000

    response = post_event(client, event)

    assert response.status_code == 413
    assert nothing_kept()
    assert refreshed(invoice).status == "pending"


def test_only_post_is_allowed(client):
    assert client.get("/billing/stripe/webhook/").status_code == 405


# --- failures and retries --------------------------------------------------------------------


def test_the_view_answers_once_the_delivery_is_kept_and_a_worker_stores_and_applies_it(
    client, invoice
):
    event = completed(invoice, "cs_test_a1current")
    payload = json.dumps(event).encode()

    with TestCase.captureOnCommitCallbacks(execute=False) as queued:
        response = post_event(client, event, body=payload, run_tasks=False)

    assert response.status_code == 200
    assert response.json() == {"id": event["id"], "received": True}
    kept = WebhookDelivery.objects.get()
    assert kept.body == payload.decode()  # the body as Stripe sent it
    assert not WebhookEvent.objects.exists()  # stored by the worker, not the request
    assert refreshed(invoice).status == "pending"  # not applied in the request
    assert len(queued) == 1

    queued[0]()  # the worker runs the task

    stored = WebhookEvent.objects.get(event_id=event["id"])
    assert (stored.outcome, stored.received_at) == ("processed", kept.received_at)
    assert not WebhookDelivery.objects.exists()
    assert refreshed(invoice).status == "paid"


@contextmanager
def failing_downstream():
    def explode(**kwargs):
        raise RuntimeError("downstream system unavailable")

    signals.stripe_event_applied.connect(explode)
    try:
        yield
    finally:
        signals.stripe_event_applied.disconnect(explode)


def test_a_failure_is_recorded_and_retried_with_backoff(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    with failing_downstream(), time_machine.travel("2026-11-24 12:00Z", tick=False):
        response = post_event(client, event)

    assert response.status_code == 200  # stored: Stripe need not deliver it again
    record = WebhookEvent.objects.get(event_id=event["id"])
    assert (record.outcome, record.attempts) == ("failed", 1)
    assert "downstream system unavailable" in record.error
    assert refreshed(invoice).status == "pending"  # rolled back with the failure
    retry = Schedule.objects.get(name=f"client_billing_webhook_{record.pk}_1")
    assert retry.func == "wagtail_client_billing.tasks.apply_webhook_event"
    assert retry.next_run == datetime(2026, 11, 24, 12, 1, tzinfo=UTC)  # 1 minute

    with failing_downstream():
        assert tasks.apply_webhook_event(record.pk) == "retrying"
    second = Schedule.objects.get(name=f"client_billing_webhook_{record.pk}_2")
    assert second.next_run - timezone.now() > timedelta(minutes=1, seconds=50)  # doubled

    assert tasks.apply_webhook_event(record.pk) == "processed"  # the downstream is back
    record.refresh_from_db()
    assert (record.outcome, record.error, record.attempts) == ("processed", "", 3)
    assert refreshed(invoice).status == "paid"
    assert log_actions(invoice) == ["wagtail_client_billing.paid"]


def test_a_failed_event_keeps_its_traceback_until_it_is_applied(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    with failing_downstream():
        post_event(client, event)

    record = WebhookEvent.objects.get(event_id=event["id"])
    assert record.outcome == "failed"
    assert record.traceback.startswith("Traceback (most recent call last):")
    assert "in process" in record.traceback  # the app's frame that applied it
    assert 'raise RuntimeError("downstream system unavailable")' in record.traceback
    assert record.traceback.rstrip().endswith("RuntimeError: downstream system unavailable")

    assert tasks.apply_webhook_event(record.pk) == "processed"
    record.refresh_from_db()
    assert (record.outcome, record.error, record.traceback) == ("processed", "", "")


def test_a_failed_events_traceback_holds_no_secret_of_the_settings(client, invoice, settings):
    settings.EMAIL_HOST_PASSWORD = "smtp-password-of-the-project"
    secrets = [
        billing_settings.STRIPE_TEST_SECRET_KEY,
        billing_settings.STRIPE_LIVE_SECRET_KEY,
        TEST_SECRET,
        LIVE_SECRET,
        settings.SECRET_KEY,
        settings.EMAIL_HOST_PASSWORD,
    ]

    def careless(**kwargs):
        key = billing_settings.STRIPE_TEST_SECRET_KEY  # a local: never in the traceback
        try:
            raise ValueError(f"signing with {TEST_SECRET} and {settings.SECRET_KEY} failed")
        except ValueError as exc:
            raise RuntimeError(
                f"Stripe refused {key} and {billing_settings.STRIPE_LIVE_SECRET_KEY}; "
                f"SMTP said {settings.EMAIL_HOST_PASSWORD}; live secret {LIVE_SECRET}"
            ) from exc

    event = completed(invoice, "cs_test_a1current")
    signals.stripe_event_applied.connect(careless)
    try:
        post_event(client, event)
    finally:
        signals.stripe_event_applied.disconnect(careless)

    record = WebhookEvent.objects.get(event_id=event["id"])
    assert record.outcome == "failed"
    assert "in careless" in record.traceback and "ValueError: signing with" in record.traceback
    for secret in secrets:
        assert secret not in record.traceback
        assert secret not in record.error
    assert record.error.count(intake.REDACTED) == 4


def test_a_failed_events_traceback_is_bounded_and_keeps_where_it_raised():
    try:
        raise RuntimeError("x" * 100_000)
    except RuntimeError as exc:
        error, trace = intake.failure(exc)

    assert len(error) == intake.MAX_ERROR_CHARS
    assert len(trace) <= intake.MAX_TRACEBACK_CHARS + 4
    assert trace.startswith("...")
    assert trace.rstrip().endswith("x" * 100)


def test_retries_stop_after_the_last_attempt(client, invoice, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_MAX_ATTEMPTS": 2,
    }
    event = completed(invoice, "cs_test_a1current")
    with failing_downstream():
        post_event(client, event)
        pk = WebhookEvent.objects.get(event_id=event["id"]).pk
        assert tasks.apply_webhook_event(pk) == "failed"

    assert not Schedule.objects.filter(name=f"client_billing_webhook_{pk}_2").exists()
    assert WebhookEvent.objects.get(pk=pk).attempts == 2
    assert refreshed(invoice).status == "pending"


def test_a_redelivery_of_a_failed_event_applies_it(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    with failing_downstream():
        post_event(client, event)

    response = post_event(client, event)  # Stripe delivers it again

    assert response.status_code == 200
    record = WebhookEvent.objects.get(event_id=event["id"])
    assert (record.outcome, record.attempts) == ("processed", 2)
    assert refreshed(invoice).status == "paid"


def test_events_whose_task_was_lost_are_queued_again(client, invoice):
    lost = completed(invoice, "cs_test_a1current")
    other = make_invoice(invoice.site, invoice.account, checkout_session_id="cs_test_a1other")
    recent = completed(other, "cs_test_a1other")
    with time_machine.travel(timezone.now() - timedelta(minutes=10)):
        lost_record, _ = intake.store(lost)  # stored, never applied (its worker died)
    recent_record, _ = intake.store(recent)  # stored just now: its task may still run

    with TestCase.captureOnCommitCallbacks(execute=True):  # queued once committed
        assert tasks.resume_received_webhook_events() == 1

    lost_record.refresh_from_db()
    recent_record.refresh_from_db()
    assert (lost_record.outcome, recent_record.outcome) == ("processed", "received")
    assert refreshed(invoice).status == "paid"
    assert refreshed(other).status == "pending"


def test_a_failed_event_whose_retry_task_was_lost_is_applied_by_the_sweep(
    client, invoice, time_machine
):
    """The one-off schedule handed the retry to the broker, whose worker died with it."""
    time_machine.move_to(timezone.now(), tick=False)
    event = completed(invoice, "cs_test_a1current")
    with failing_downstream():
        post_event(client, event)
    Schedule.objects.filter(name__startswith="client_billing_webhook_").delete()
    retry_due = billing_settings.WEBHOOK_RETRY_BACKOFF

    time_machine.shift(retry_due + tasks.claim_lease() - timedelta(seconds=1))
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.resume_received_webhook_events() == 0  # the retry may still run
    time_machine.shift(timedelta(seconds=2))
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.resume_received_webhook_events() == 1

    assert WebhookEvent.objects.get(event_id=event["id"]).outcome == "processed"
    assert refreshed(invoice).status == "paid"


# --- accounts ----------------------------------------------------------------------------------


def _account_obj(stripe_id, **fields):
    obj = {
        "id": stripe_id,
        "object": "account",
        "charges_enabled": True,
        "payouts_enabled": True,
        "details_submitted": True,
        "requirements": {"currently_due": [], "disabled_reason": None},
    }
    obj.update(fields)
    return obj


def test_account_updated_stores_flags_and_requirements(client, db):
    account = make_account("acct_test_new", charges_enabled=False)
    obj = _account_obj(
        "acct_test_new",
        charges_enabled=False,
        payouts_enabled=False,
        requirements={
            "currently_due": ["external_account"],
            "disabled_reason": "requirements.past_due",
        },
    )

    post_event(client, account_event("account.updated", obj, "acct_test_new"))

    account.refresh_from_db()
    assert account.state == "restricted"
    assert account.requirements_due == ["external_account"]
    assert account.disabled_reason == "requirements.past_due"

    post_event(
        client, account_event("account.updated", _account_obj("acct_test_new"), "acct_test_new")
    )
    account.refresh_from_db()
    assert account.state == "enabled"
    assert account.requirements_due == []


def test_older_account_snapshot_does_not_overwrite_a_newer_one(client, db):
    account = make_account("acct_test_new", charges_enabled=False)
    now = int(timezone.now().timestamp())
    newer = account_event(
        "account.updated", _account_obj("acct_test_new"), "acct_test_new", created=now
    )
    older = account_event(
        "account.updated",
        _account_obj("acct_test_new", charges_enabled=False, details_submitted=False),
        "acct_test_new",
        created=now - 60,
    )
    post_event(client, newer)
    post_event(client, older)

    account.refresh_from_db()
    assert account.charges_enabled is True
    assert WebhookEvent.objects.get(event_id=older["id"]).outcome == "ignored"


def test_an_account_event_cannot_change_another_account(client, db):
    """The event's ``account`` (who sent it) decides, not the object it describes."""
    victim = make_account("acct_test_victim")
    make_account("acct_test_sender", charges_enabled=False)
    forged = account_event(
        "account.updated",
        _account_obj("acct_test_victim", charges_enabled=False, details_submitted=False),
        "acct_test_sender",
    )
    platform = account_event(
        "account.updated", _account_obj("acct_test_victim", charges_enabled=False), None
    )

    post_event(client, forged)
    post_event(client, platform)

    victim.refresh_from_db()
    assert victim.state == "enabled"
    assert victim.synced_at is None
    refused = WebhookEvent.objects.get(event_id=forged["id"])
    assert refused.outcome == "ignored"
    assert "acct_test_sender" in refused.error and "acct_test_victim" in refused.error
    assert WebhookEvent.objects.get(event_id=platform["id"]).outcome == "ignored"


def test_deauthorized_account_is_unlinked_from_every_site(client, connected_site, account):
    from tests.utils import make_site

    other_site = make_site("client-b.example")
    connect(other_site, account)
    application = {"id": "ca_platform", "object": "application", "name": "Agency"}

    response = post_event(
        client, account_event("account.application.deauthorized", application, "acct_test_a")
    )

    assert response.status_code == 200
    account.refresh_from_db()
    assert account.deauthorized_at is not None
    assert account.state == "deauthorized"
    assert not ClientBillingSettings.objects.filter(test_account=account).exists()
    assert ClientBillingLogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(StripeAccount),
        object_id=str(account.pk),
        action="wagtail_client_billing.account_unlinked",
    ).exists()


# --- subscriptions -------------------------------------------------------------------------------


def test_subscription_first_payment_is_not_a_renewal(client, monthly):
    sub_id = "sub_test_1"
    post_event(client, completed(monthly, "cs_test_a1sub", payment_intent=None))
    post_event(
        client,
        session_event(
            "invoice.paid", monthly, stripe_invoice_obj(monthly, sub_id, "subscription_create")
        ),
    )
    post_event(
        client,
        session_event("customer.subscription.created", monthly, subscription_obj(monthly, sub_id)),
    )

    monthly = refreshed(monthly)
    assert (monthly.status, monthly.renewals_paid) == ("paid", 0)
    assert (monthly.subscription_id, monthly.subscription_status) == (sub_id, "active")


def test_renewals_are_counted_once_each(client, monthly):
    sub_id = "sub_test_1"
    Invoice.objects.filter(pk=monthly.pk).update(subscription_id=sub_id)
    renewal = stripe_invoice_obj(monthly, sub_id, "subscription_cycle", "in_test_renewal1")
    post_event(client, session_event("invoice.paid", monthly, renewal))
    post_event(client, session_event("invoice.paid", monthly, renewal))  # another event id
    post_event(
        client,
        session_event(
            "invoice.paid",
            monthly,
            stripe_invoice_obj(monthly, sub_id, "subscription_cycle", "in_test_renewal2"),
        ),
    )

    monthly = refreshed(monthly)
    assert monthly.renewals_paid == 2
    assert monthly.last_renewal_paid_at is not None
    assert log_actions(monthly).count("wagtail_client_billing.renewal_paid") == 2


def test_ended_subscription_stays_ended(client, monthly):
    sub_id = "sub_test_1"
    Invoice.objects.filter(pk=monthly.pk).update(subscription_id=sub_id)
    now = int(timezone.now().timestamp())
    deleted = session_event(
        "customer.subscription.deleted",
        monthly,
        subscription_obj(monthly, sub_id, "canceled"),
        created=now,
    )
    late_update = session_event(
        "customer.subscription.updated",
        monthly,
        subscription_obj(monthly, sub_id, "active"),
        created=now - 30,
    )
    post_event(client, deleted)
    post_event(client, late_update)

    assert refreshed(monthly).subscription_status == "canceled"


def test_older_subscription_update_does_not_overwrite_a_newer_one(client, monthly):
    sub_id = "sub_test_1"
    Invoice.objects.filter(pk=monthly.pk).update(subscription_id=sub_id)
    now = int(timezone.now().timestamp())
    post_event(
        client,
        session_event(
            "customer.subscription.updated",
            monthly,
            subscription_obj(monthly, sub_id, "past_due"),
            created=now,
        ),
    )
    post_event(
        client,
        session_event(
            "customer.subscription.updated",
            monthly,
            subscription_obj(monthly, sub_id, "active"),
            created=now - 100,
        ),
    )
    assert refreshed(monthly).subscription_status == "past_due"


def test_a_newer_subscription_state_is_remembered_when_its_event_payload_is_purged(client, monthly):
    sub_id = "sub_test_1"
    Invoice.objects.filter(pk=monthly.pk).update(subscription_id=sub_id)
    now = int(timezone.now().timestamp())
    newer = subscription_obj(monthly, sub_id, "past_due")
    post_event(client, session_event("customer.subscription.updated", monthly, newer, created=now))
    assert tasks.purge_webhook_payloads(now=timezone.now() + timedelta(days=365)) == 1
    older = subscription_obj(monthly, sub_id, "active")
    post_event(
        client, session_event("customer.subscription.updated", monthly, older, created=now - 100)
    )

    monthly = refreshed(monthly)
    assert monthly.subscription_status == "past_due"
    assert monthly.subscription_state_at == datetime.fromtimestamp(now, tz=UTC)


def test_a_renewal_is_a_row_per_stripe_invoice(client, monthly):
    sub_id = "sub_test_1"
    Invoice.objects.filter(pk=monthly.pk).update(subscription_id=sub_id)
    renewal = stripe_invoice_obj(monthly, sub_id, "subscription_cycle", "in_test_renewal1")
    post_event(client, session_event("invoice.paid", monthly, renewal))
    event = post_event(client, session_event("invoice.paid", monthly, renewal))
    assert event.status_code == 200
    for stored in WebhookEvent.objects.filter(type="invoice.paid"):
        webhooks.process(stored.pk, force=True)

    (row,) = refreshed(monthly).renewals.all()
    assert (row.stripe_invoice_id, row.billing_reason) == ("in_test_renewal1", "subscription_cycle")
    assert row.amount == renewal["amount_paid"] and row.currency == renewal["currency"].upper()
    assert refreshed(monthly).renewals_paid == 1


# --- any order, any duplicates -------------------------------------------------------------------


def _with_duplicates(events, order, duplicates):
    ordered = [events[i] for i in order]
    return ordered + [events[i] for i in duplicates]


def _deliver_all(client, sequence):
    for event in sequence:
        assert post_event(client, event).status_code == 200


SHUFFLE_SETTINGS = hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SHUFFLE_SETTINGS
@given(data=st.data())
def test_bank_payment_events_in_any_order_end_paid(client, connected_site, account, data):
    invoice = make_invoice(connected_site, account, checkout_session_id="cs_test_a1second")
    events = [
        expired(invoice, "cs_test_a1first"),
        completed(invoice, "cs_test_a1second", paid=False, payment_intent="pi_2"),
        async_result(invoice, "cs_test_a1second", succeeded=True, payment_intent="pi_2"),
    ]
    order = data.draw(st.permutations(range(len(events))))
    duplicates = data.draw(st.lists(st.sampled_from(range(len(events))), max_size=4))

    _deliver_all(client, _with_duplicates(events, order, duplicates))

    invoice = refreshed(invoice)
    assert invoice.status == "paid"
    assert invoice.checkout_session_id == "cs_test_a1second"
    assert log_actions(invoice).count("wagtail_client_billing.paid") == 1


@SHUFFLE_SETTINGS
@given(data=st.data())
def test_failed_bank_payment_events_in_any_order_end_pending(client, connected_site, account, data):
    invoice = make_invoice(connected_site, account, checkout_session_id="cs_test_a1only")
    events = [
        completed(invoice, "cs_test_a1only", paid=False, payment_intent="pi_3"),
        async_result(invoice, "cs_test_a1only", succeeded=False, payment_intent="pi_3"),
    ]
    order = data.draw(st.permutations(range(len(events))))
    duplicates = data.draw(st.lists(st.sampled_from(range(len(events))), max_size=3))

    _deliver_all(client, _with_duplicates(events, order, duplicates))

    invoice = refreshed(invoice)
    assert invoice.status == "pending"
    assert invoice.payment_failure
    assert log_actions(invoice) == [
        "wagtail_client_billing.processing",
        "wagtail_client_billing.payment_failed",
    ]


@SHUFFLE_SETTINGS
@given(data=st.data())
def test_subscription_events_in_any_order_end_in_one_state(client, connected_site, account, data):
    invoice = make_invoice(
        connected_site, account, billing_type="monthly", checkout_session_id="cs_test_a1sub"
    )
    sub_id = random_id("sub_")
    now = int(timezone.now().timestamp())
    events = [
        completed(invoice, "cs_test_a1sub", payment_intent=None, subscription=sub_id),
        session_event(
            "invoice.paid", invoice, stripe_invoice_obj(invoice, sub_id, "subscription_create")
        ),
        session_event(
            "customer.subscription.created",
            invoice,
            subscription_obj(invoice, sub_id),
            created=now,
        ),
        session_event(
            "invoice.paid", invoice, stripe_invoice_obj(invoice, sub_id, "subscription_cycle")
        ),
        session_event(
            "customer.subscription.updated",
            invoice,
            subscription_obj(invoice, sub_id),
            created=now + 1,
        ),
        session_event(
            "invoice.paid", invoice, stripe_invoice_obj(invoice, sub_id, "subscription_cycle")
        ),
        session_event(
            "customer.subscription.deleted",
            invoice,
            subscription_obj(invoice, sub_id, "canceled"),
            created=now + 2,
        ),
    ]
    order = data.draw(st.permutations(range(len(events))))
    duplicates = data.draw(st.lists(st.sampled_from(range(len(events))), max_size=5))

    _deliver_all(client, _with_duplicates(events, order, duplicates))

    invoice = refreshed(invoice)
    assert invoice.status == "paid"
    assert invoice.renewals_paid == 2
    assert (invoice.subscription_id, invoice.subscription_status) == (sub_id, "canceled")
    assert log_actions(invoice).count("wagtail_client_billing.paid") == 1


# --- the admin's webhook event log and Reprocess -------------------------------------------------


def _failed_event(client, invoice):
    event = completed(invoice, "cs_test_a1current")
    with failing_downstream():
        assert post_event(client, event).status_code == 200
    record = WebhookEvent.objects.get(event_id=event["id"])
    assert record.outcome == "failed"
    return record


def test_operator_sees_the_failed_event_and_reprocesses_it(client, invoice):
    from django.test import Client

    from tests.utils import make_user

    record = _failed_event(client, invoice)
    admin = Client()
    admin.force_login(make_user("operator", superuser=True))

    listing = admin.get("/admin/client-billing/webhook-events/?outcome=failed")
    assert listing.status_code == 200
    assert "checkout.session.completed" in listing.content.decode()
    assert "Reprocess" in listing.content.decode()
    assert "/edit/" not in listing.content.decode()  # a log: nothing to edit

    inspect = admin.get(f"/admin/client-billing/webhook-events/inspect/{record.pk}/")
    assert inspect.status_code == 200
    assert "downstream system unavailable" in inspect.content.decode()
    assert "Traceback (most recent call last)" in inspect.content.decode()

    confirm = admin.get(f"/admin/client-billing/webhook-events/reprocess/{record.pk}/")
    assert confirm.status_code == 200
    response = admin.post(f"/admin/client-billing/webhook-events/reprocess/{record.pk}/")

    assert response.status_code == 302
    record.refresh_from_db()
    assert (record.outcome, record.attempts, record.traceback) == ("processed", 2, "")
    assert refreshed(invoice).status == "paid"
    inspect = admin.get(f"/admin/client-billing/webhook-events/inspect/{record.pk}/")
    assert "Traceback" not in inspect.content.decode()  # only a failed event has one


def test_event_log_is_under_the_client_billing_menu(client, db):
    from django.test import Client

    from tests.utils import make_user

    admin = Client()
    admin.force_login(make_user("operator", superuser=True))
    response = admin.get("/admin/")
    assert "/admin/client-billing/webhook-events/" in response.content.decode()


def test_the_event_log_warns_the_operator_of_deliveries_no_worker_stored(client, invoice):
    """A delivery kept more than a minute ago means no qcluster is storing them: the
    superuser is told so on the event log, a viewer without the workers is not, and a
    delivery a worker will take in a moment is no warning."""
    from django.test import Client

    from tests.utils import make_user

    operator, viewer = Client(), Client()
    operator.force_login(make_user("operator", superuser=True))
    viewer.force_login(make_user("viewer", perms=("wagtail_client_billing.view_webhookevent",)))
    url = "/admin/client-billing/webhook-events/"
    warning = "waited more than a minute to be stored"

    for session in ("cs_test_a1late", "cs_test_a1later"):  # no worker takes them
        event = completed(invoice, session)
        assert post_event(client, event, run_tasks=False).status_code == 200
    assert warning not in operator.get(url).content.decode()  # just kept

    WebhookDelivery.objects.update(received_at=timezone.now() - timedelta(minutes=2))
    page = operator.get(url).content.decode()
    assert "2 deliveries from Stripe have waited more than a minute to be stored" in page
    assert "Is qcluster running?" in page
    assert warning not in viewer.get(url).content.decode()


def test_viewer_without_change_permission_cannot_reprocess(client, invoice):
    from django.test import Client

    from tests.utils import make_user

    record = _failed_event(client, invoice)
    viewer = Client()
    viewer.force_login(make_user("viewer", perms=("wagtail_client_billing.view_webhookevent",)))

    listing = viewer.get("/admin/client-billing/webhook-events/")
    assert listing.status_code == 200
    assert "Reprocess" not in listing.content.decode()
    inspect = viewer.get(f"/admin/client-billing/webhook-events/inspect/{record.pk}/")
    assert "in explode" in inspect.content.decode()  # where it raised
    response = viewer.post(f"/admin/client-billing/webhook-events/reprocess/{record.pk}/")
    assert response.status_code in (302, 403)
    record.refresh_from_db()
    assert record.outcome == "failed"


def test_user_without_permissions_sees_nothing_of_the_log(client, invoice):
    from django.test import Client

    from tests.utils import make_user

    record = _failed_event(client, invoice)
    editor = Client()
    editor.force_login(make_user("nobody"))

    for url in (
        "/admin/client-billing/webhook-events/",
        f"/admin/client-billing/webhook-events/inspect/{record.pk}/",
        f"/admin/client-billing/webhook-events/reprocess/{record.pk}/",
    ):
        response = editor.get(url)
        assert response.status_code in (302, 403)
        assert "downstream system unavailable" not in response.content.decode()
        assert "Traceback" not in response.content.decode()
    assert "/admin/client-billing/webhook-events/" not in editor.get("/admin/").content.decode()


# --- retention of stored payloads ----------------------------------------------------------------


def test_payloads_are_purged_after_the_retention_period_and_the_record_kept(
    client, connected_site, account, settings, time_machine
):
    """Stored events hold the client's email (and, from Stripe, name and address): after
    ``WEBHOOK_PAYLOAD_RETENTION`` only the record of what happened stays."""
    time_machine.move_to(timezone.now(), tick=False)
    invoice = make_invoice(connected_site, account, email="private.person@example.com")
    paid = completed(invoice, "cs_test_purge")
    post_event(client, paid)
    waiting = build_event("checkout.session.expired", session_obj(invoice), account="acct_x")
    intake.store(waiting)  # received, its task still to run: it keeps what it needs
    time_machine.shift(timedelta(days=89))
    recent = completed(make_invoice(connected_site, account), "cs_test_recent")
    post_event(client, recent)

    assert tasks.purge_webhook_payloads() == 0  # the default keeps 90 days
    time_machine.shift(timedelta(days=1, seconds=1))
    call_command("client_billing_purge_webhook_payloads", stdout=(out := StringIO()))

    assert "Purged 1 webhook payload." in out.getvalue()
    record = WebhookEvent.objects.get(event_id=paid["id"])
    assert "private.person@example.com" not in json.dumps(record.payload)
    assert (record.type, record.outcome, record.invoice_id) == (
        "checkout.session.completed",
        "processed",
        invoice.pk,
    )
    assert WebhookEvent.objects.get(event_id=recent["id"]).payload == recent
    assert WebhookEvent.objects.get(event_id=waiting["id"]).payload == waiting
    assert tasks.purge_webhook_payloads() == 0  # nothing twice

    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_PAYLOAD_RETENTION": timedelta(days=1),
    }
    assert tasks.purge_webhook_payloads() == 1


def test_payload_retention_can_be_switched_off(client, connected_site, account, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_PAYLOAD_RETENTION": None,
    }
    event = completed(make_invoice(connected_site, account), "cs_test_kept")
    post_event(client, event)
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=3650))

    assert tasks.purge_webhook_payloads() == 0
    assert WebhookEvent.objects.get(event_id=event["id"]).payload == event
    call_command("client_billing_schedules", stdout=(out := StringIO()))
    assert "client_billing_purge_webhook_payloads: off (WEBHOOK_PAYLOAD_RETENTION" in (
        out.getvalue()
    )
