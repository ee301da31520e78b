"""A connected account's state has one writer and one rule, whichever way Stripe's
account object arrives (an API answer or an ``account.updated`` event), and a
deauthorization is recorded once, as data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from wagtail.test.utils import WagtailTestUtils

from tests.utils import connect, make_account, make_emulated_account, make_site, make_user
from tests.webhook_helpers import account_event, post_event
from wagtail_client_billing import gateway, webhooks
from wagtail_client_billing.billing import accounts
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    StripeAccount,
    WebhookEvent,
)

pytestmark = pytest.mark.django_db

soup = WagtailTestUtils.get_soup

#: A restricted account: one field is past Stripe's deadline, one is due by the next.
#: Stripe lists a past-due field in ``currently_due`` as well.
RESTRICTED = {
    "current_deadline": None,
    "currently_due": ["business_profile.mcc", "external_account"],
    "eventually_due": ["business_profile.mcc", "external_account", "company.tax_id"],
    "past_due": ["external_account"],
    "pending_verification": [],
    "errors": [],
    "alternatives": [],
    "disabled_reason": "requirements.past_due",
}


def stored_state(account: StripeAccount) -> dict:
    account.refresh_from_db()
    return {
        "charges_enabled": account.charges_enabled,
        "payouts_enabled": account.payouts_enabled,
        "details_submitted": account.details_submitted,
        "requirements_due": account.requirements_due,
        "requirements_past_due": account.requirements_past_due,
        "disabled_reason": account.disabled_reason,
        "country": account.country,
    }


def stripe_tab_requirements(client, site) -> dict[str, list[str]]:
    url = f"/admin/settings/wagtail_client_billing/clientbillingsettings/{site.pk}/"
    page = soup(client.get(url).content)
    found = {}
    for block in page.select("[data-client-billing-requirements]"):
        found[block["data-client-billing-requirements"]] = [
            item["data-requirement"] for item in block.select("li[data-requirement]")
        ]
    return found


def test_an_account_updated_with_past_due_items_shows_them_as_past_due(client, site, account):
    connect(site, account)
    obj = {
        "id": account.stripe_id,
        "object": "account",
        "country": "US",
        "charges_enabled": False,
        "payouts_enabled": False,
        "details_submitted": True,
        "requirements": RESTRICTED,
    }

    post_event(client, account_event("account.updated", obj, account.stripe_id))

    account.refresh_from_db()
    assert account.requirements_past_due == ["external_account"]
    assert account.requirements_due == ["business_profile.mcc", "external_account"]
    assert account.state == "restricted" and not account.onboarding_complete
    client.force_login(make_user("root", superuser=True))
    assert stripe_tab_requirements(client, site) == {
        "past_due": ["external_account"],
        "currently_due": ["business_profile.mcc"],
    }


def restricted_on_stripe(emulator, site) -> StripeAccount:
    """An emulated account of ``site`` whose holder gave some details, not yet all."""
    account = make_emulated_account(emulator, site.hostname)
    with emulator.state.lock:
        emulator.state.account(account.stripe_id).update(
            charges_enabled=False, payouts_enabled=False, requirements=dict(RESTRICTED)
        )
    connect(site, account)
    return account


def test_the_retrieve_path_and_the_webhook_path_store_the_same_for_one_account_object(
    client, site, stripe_emulator
):
    account = restricted_on_stripe(stripe_emulator, site)
    obj = stripe_emulator.get_account(account.stripe_id)
    client.force_login(make_user("root", superuser=True))

    # Refresh status: the account read from Stripe's API.
    client.post(f"/admin/client-billing/connect/{site.pk}/test/refresh-status/")
    read = stored_state(account)
    StripeAccount.objects.filter(pk=account.pk).update(
        requirements_due=[], requirements_past_due=[], disabled_reason="", synced_at=None
    )
    # The same object in an account.updated event.
    created = int((timezone.now() + timedelta(seconds=5)).timestamp())
    post_event(client, account_event("account.updated", obj, account.stripe_id, created=created))
    delivered = stored_state(account)

    assert read["requirements_due"] == delivered["requirements_due"]
    assert read == delivered
    assert delivered["requirements_past_due"] == ["external_account"]
    assert delivered["requirements_due"] == ["business_profile.mcc", "external_account"]


def test_refresh_status_tells_the_editor_what_is_past_due_and_what_is_due_now(
    client, site, stripe_emulator
):
    restricted_on_stripe(stripe_emulator, site)
    client.force_login(make_user("root", superuser=True))

    response = client.post(
        f"/admin/client-billing/connect/{site.pk}/test/refresh-status/", follow=True
    )

    messages = soup(response.content).select(".messages li")
    text = " ".join(li.get_text(" ", strip=True) for li in messages)
    assert "Past due: external_account. Due now: business_profile.mcc." in text


def test_an_event_older_than_a_read_from_stripe_is_not_applied(site, account):
    read = gateway.AccountState(
        id=account.stripe_id,
        country="US",
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
    )
    older = gateway.AccountState(
        id=account.stripe_id,
        country="US",
        charges_enabled=False,
        payouts_enabled=False,
        details_submitted=True,
        requirements_due=["external_account"],
        requirements_past_due=["external_account"],
    )
    assert accounts.record_state(account, read)

    assert not accounts.record_state(account, older, as_of=timezone.now() - timedelta(seconds=1))
    assert stored_state(account)["charges_enabled"] is True
    assert accounts.record_state(account, older, as_of=timezone.now() + timedelta(seconds=1))
    assert stored_state(account)["requirements_past_due"] == ["external_account"]


def test_a_read_from_stripe_never_moves_the_recorded_time_backwards(site, account):
    ahead = timezone.now() + timedelta(minutes=5)  # an event stamped by a clock ahead of ours
    state = gateway.AccountState(
        id=account.stripe_id,
        country="US",
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
    )
    accounts.record_state(account, state, as_of=ahead)

    assert accounts.record_state(account, state)  # a read is applied all the same
    account.refresh_from_db()
    assert account.synced_at == ahead


# --- deauthorization, recorded once ----------------------------------------------------------


def deauthorization(account: StripeAccount) -> dict:
    application = {"id": "ca_platform", "object": "application", "name": "Agency"}
    return account_event("account.application.deauthorized", application, account.stripe_id)


def unlink_entries(account: StripeAccount) -> list[ClientBillingLogEntry]:
    return list(
        ClientBillingLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(StripeAccount),
            object_id=str(account.pk),
            action=accounts.UNLINKED_ACTION,
        ).order_by("pk")
    )


def test_a_deauthorization_applied_again_is_logged_once(client, site, account):
    connect(site, account)
    event = deauthorization(account)

    post_event(client, event)
    record = WebhookEvent.objects.get(event_id=event["id"])
    webhooks.process(record.pk, force=True)  # an operator's Reprocess
    webhooks.process(record.pk, force=True)

    account.refresh_from_db()
    assert account.deauthorized_event_id == event["id"]
    [entry] = unlink_entries(account)
    assert entry.data == {"reason": "deauthorized", "event": event["id"], "sites": [str(site)]}
    assert ClientBillingSettings.for_site(site).test_account is None


def test_a_deauthorization_after_refresh_status_found_it_is_still_logged(client, site, account):
    """Refresh status marks an account that refuses the platform; Stripe's event later
    unlinks the sites, and that is logged."""
    connect(site, account)
    accounts.mark_disconnected(account)

    post_event(client, deauthorization(account))

    assert len(unlink_entries(account)) == 1
    assert ClientBillingSettings.for_site(site).test_account is None


def test_a_site_linked_again_to_a_deauthorized_account_is_unlinked_and_logged(
    client, site, account
):
    connect(site, account)
    event = deauthorization(account)
    post_event(client, event)
    other = make_site("client-b.example")
    connect(other, account)  # by hand, past the connect screens

    webhooks.process(WebhookEvent.objects.get(event_id=event["id"]).pk, force=True)

    assert ClientBillingSettings.for_site(other).test_account is None
    assert [e.data["sites"] for e in unlink_entries(account)] == [[str(site)], [str(other)]]


def test_the_editors_unlink_is_logged_once_on_the_settings(site):
    account = make_account("acct_test_unlink")
    connect(site, account)
    editor = make_user("root", superuser=True)

    assert accounts.unlink(site, account, user=editor)
    assert not accounts.unlink(site, account, user=editor)

    entries = ClientBillingLogEntry.objects.filter(action=accounts.UNLINKED_ACTION)
    assert [(e.user, e.data["stripe_id"]) for e in entries] == [(editor, account.stripe_id)]
