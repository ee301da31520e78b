"""Stripe Connect in a site's Client Billing settings, end to end against the emulator.

The editor drives Django's test client; Stripe is the bundled emulator (a real HTTP
server the real ``stripe`` client talks to), and its hosted onboarding page is fetched
and submitted over HTTP like a browser would, its 303 taken back into the test client.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
from wagtail import hooks as wagtail_hooks
from wagtail.test.utils import WagtailTestUtils

from tests.utils import (
    connect,
    grant_for_sites,
    make_account,
    make_invoice,
    make_site,
    make_user,
    needs_site_permissions,
)
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    StripeAccount,
)

pytestmark = pytest.mark.django_db

CONNECT_PERMS = (
    "wagtail_client_billing.connect_stripe_account",
    "wagtail_client_billing.change_clientbillingsettings",
)
GOOD_FORM = {
    "action": "create",
    "test_mode": "on",
    "country": "US",
    "privacy_policy_url": "https://agency.example/privacy",
    "terms_of_service_url": "https://agency.example/terms",
}

soup = WagtailTestUtils.get_soup


def settings_page(site) -> str:
    return f"/admin/settings/wagtail_client_billing/clientbillingsettings/{site.pk}/"


def connect_page(site, mode="test") -> str:
    return f"/admin/client-billing/connect/{site.pk}/?mode={mode}"


def stripe_tab(client, site):
    """The Stripe tab of the site's settings, parsed; ``None`` when it is not shown."""
    response = client.get(settings_page(site))
    assert response.status_code == 200
    return soup(response.content).select_one(".w-client-billing-stripe")


def slot(tab, mode):
    return tab.select_one(f'[data-client-billing-account="{mode}"]')


def button_texts(element) -> list[str]:
    return [b.get_text(" ", strip=True) for b in element.select("a.button, button.button")]


def find_button(element, label: str):
    """The link or button whose visible text contains ``label`` (icons and all)."""
    for button in element.select("a.button, button.button, a"):
        if label in button.get_text(" ", strip=True):
            return button
    return None


def messages_text(response) -> str:
    return " ".join(
        m.get_text(" ", strip=True) for m in soup(response.content).select(".messages li")
    )


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def press_on_onboarding_page(link_url: str, label: str = "Complete onboarding") -> str:
    """Open Stripe's hosted onboarding page, press a button; return where it redirects."""
    with urllib.request.urlopen(link_url, timeout=5) as page:
        html = page.read().decode()
    form = soup(html).find("form")
    button = form.find("button", string=lambda text: text and label in text)
    assert button is not None, html
    action = urllib.parse.urljoin(link_url, form.get("action") or "")
    body = urllib.parse.urlencode({button["name"]: button["value"]}).encode()
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(urllib.request.Request(action, data=body, method="POST"), timeout=5)
    assert redirect.value.code == 303
    return redirect.value.headers["Location"]


def local_path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    assert parts.netloc == "testserver", url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def account_creates(emulator) -> list:
    return [r for r in emulator.requests if r.method == "POST" and r.path == "/v1/accounts"]


@pytest.fixture
def admin(client):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def connector(client):
    """An editor with exactly the permissions connecting needs, not a superuser."""
    user = make_user("connector", perms=CONNECT_PERMS)
    client.force_login(user)
    return user


# --- the whole flow ------------------------------------------------------------------------


def test_connect_in_test_mode_onboard_on_stripe_and_see_charges_enabled(
    client, connector, site, stripe_emulator
):
    tab = stripe_tab(client, site)
    assert "No account connected" in slot(tab, "test").get_text()
    assert "No account connected" in slot(tab, "live").get_text()
    create = find_button(slot(tab, "test"), "Create client billing account")
    assert create is not None

    form_page = client.get(create["href"])
    assert form_page.status_code == 200
    page = soup(form_page.content)
    assert page.find("input", {"name": "test_mode"}).has_attr("checked")
    countries = {o["value"]: o.get_text() for o in page.select("select[name=country] option")}
    assert countries["DE"] == "Germany"
    assert countries["JP"] == "Japan"

    response = client.post(create["href"], GOOD_FORM)
    assert response.status_code == 302
    link_url = response["Location"]
    assert link_url.startswith(stripe_emulator.public_url + "/_hosted/onboarding/")

    account = StripeAccount.objects.get()
    assert account.test_mode and account.country == "US"
    assert account.connected_by == connector
    assert not account.charges_enabled
    assert ClientBillingSettings.for_site(site).test_account == account
    assert ClientBillingLogEntry.objects.filter(
        action="wagtail_client_billing.account_connected"
    ).exists()

    return_url = press_on_onboarding_page(link_url)
    back = client.get(local_path(return_url), follow=True)
    assert back.redirect_chain[-1][0].startswith(settings_page(site))
    assert "charges enabled" in messages_text(back)

    test_slot = slot(soup(back.content).select_one(".w-client-billing-stripe"), "test")
    text = test_slot.get_text(" ", strip=True)
    assert "Charges enabled" in text
    assert "Onboarding complete" in text
    assert account.stripe_id in text
    assert "connector" in text  # connected by
    assert "United States" in text
    assert "Continue onboarding" not in button_texts(test_slot)
    account.refresh_from_db()
    assert account.charges_enabled and account.payouts_enabled and account.onboarding_complete


def test_an_account_not_finished_on_stripe_shows_what_stripe_still_requires(
    client, connector, site, stripe_emulator
):
    link_url = client.post(connect_page(site), GOOD_FORM)["Location"]
    return_url = local_path(press_on_onboarding_page(link_url, "Leave without completing"))
    back = client.get(return_url, follow=True)
    assert "onboarding isn't complete yet" in messages_text(back)
    test_slot = slot(soup(back.content).select_one(".w-client-billing-stripe"), "test")
    text = test_slot.get_text(" ", strip=True)
    assert "Onboarding incomplete" in text
    assert "Stripe still requires" in text
    assert "Bank account or debit card for payouts" in text
    assert "Continue onboarding" in button_texts(test_slot)


def test_continue_onboarding_and_stripes_refresh_url_make_a_fresh_link(
    client, connector, site, stripe_emulator
):
    first = client.post(connect_page(site), GOOD_FORM)["Location"]
    tab = stripe_tab(client, site)
    continue_link = find_button(slot(tab, "test"), "Continue onboarding")
    again = client.get(continue_link["href"])
    assert again.status_code == 302
    assert again["Location"].startswith(stripe_emulator.public_url + "/_hosted/onboarding/")
    assert again["Location"] != first
    links = [r for r in stripe_emulator.requests if r.path == "/v1/account_links"]
    assert len(links) == 2
    assert links[-1].params["refresh_url"].endswith(continue_link["href"])


def test_refresh_status_reads_the_account_again_from_stripe(
    client, connector, site, stripe_emulator
):
    client.post(connect_page(site), GOOD_FORM)
    account = StripeAccount.objects.get()
    stripe_emulator.complete_onboarding(account.stripe_id)  # finished in another tab

    tab = stripe_tab(client, site)
    refresh = find_button(slot(tab, "test"), "Refresh status")
    assert refresh["formmethod"] == "post"
    response = client.post(refresh["formaction"], follow=True)

    assert "charges enabled" in messages_text(response)
    assert "Charges enabled" in slot(soup(response.content), "test").get_text()
    account.refresh_from_db()
    assert account.charges_enabled and account.synced_at is not None


def test_refresh_status_shows_an_account_that_disconnected_the_platform(
    client, connector, site, stripe_emulator
):
    client.post(connect_page(site), GOOD_FORM)
    account = StripeAccount.objects.get()
    stripe_emulator.deauthorize(account.stripe_id)

    url = f"/admin/client-billing/connect/{site.pk}/test/refresh-status/"
    response = client.post(url, follow=True)

    assert "no longer lets this platform act for it" in messages_text(response)
    test_slot = slot(soup(response.content), "test")
    assert "Disconnected on Stripe" in test_slot.get_text()
    assert button_texts(test_slot) == ["Refresh status", "Unlink account"]
    account.refresh_from_db()
    assert account.deauthorized_at is not None


def test_reuse_an_account_of_another_site(client, connector, site, stripe_emulator):
    client.post(connect_page(site), GOOD_FORM)
    account = StripeAccount.objects.get()
    second = make_site("client-b.example")

    page = soup(client.get(connect_page(second)).content)
    option = page.find("option", string=lambda s: s and account.stripe_id in s)
    assert option is not None
    assert "client-a.example" in option.get_text()  # which site already uses it

    response = client.post(
        connect_page(second), {"action": "reuse", "reuse-account": option["value"]}, follow=True
    )
    assert "client-b.example now bills through Stripe account" in messages_text(response)
    assert ClientBillingSettings.for_site(second).test_account == account
    assert ClientBillingSettings.for_site(site).test_account == account
    assert StripeAccount.objects.count() == 1
    assert len(account_creates(stripe_emulator)) == 1
    assert account.stripe_id in slot(soup(response.content), "test").get_text()


@needs_site_permissions
def test_reuse_offers_only_accounts_for_a_free_mode_of_sites_the_editor_manages(client, connector):
    mine, other, target = (make_site(f"{n}.example") for n in ("mine", "other", "target"))
    shared_test = make_account("acct_shared_test")
    connect(mine, shared_test)
    connect(mine, make_account("acct_shared_live", test_mode=False))
    connect(other, make_account("acct_other_client"))
    connect(target, make_account("acct_target_test"))  # target's test slot is taken
    editor = make_user("site-editor", perms=("wagtail_client_billing.connect_stripe_account",))
    from django.contrib.auth.models import Permission

    change = Permission.objects.get(codename="change_clientbillingsettings")
    grant_for_sites(editor.groups.get(), change, mine, target)
    client.force_login(editor)

    page = soup(client.get(connect_page(target, "live")).content)
    offered = [o.get_text() for o in page.select("select[name=reuse-account] option") if o["value"]]
    assert len(offered) == 1
    assert "acct_shared_live" in offered[0]


# --- unlink ---------------------------------------------------------------------------------


def test_unlink_keeps_the_record_and_pending_invoices_and_writes_a_log_entry(
    client, connector, site, account
):
    connect(site, account)
    invoice = make_invoice(site=site, account=account)

    tab = stripe_tab(client, site)
    unlink = find_button(slot(tab, "test"), "Unlink account")
    confirm = client.get(unlink["href"])
    assert confirm.status_code == 200
    text = soup(confirm.content).get_text(" ", strip=True)
    assert f"Unlink the test account {account.stripe_id}" in text
    assert "1 pending invoice keeps working" in text

    response = client.post(unlink["href"], follow=True)
    assert "is no longer connected" in messages_text(response)
    assert "No account connected" in slot(soup(response.content), "test").get_text()

    assert ClientBillingSettings.for_site(site).test_account is None
    account.refresh_from_db()  # the record stays
    invoice.refresh_from_db()
    assert invoice.account == account and invoice.is_payable
    entry = ClientBillingLogEntry.objects.get(action="wagtail_client_billing.account_unlinked")
    assert entry.user == connector
    assert entry.data["stripe_id"] == account.stripe_id


def test_unlink_needs_a_post(client, connector, site, account):
    connect(site, account)
    client.get(f"/admin/client-billing/connect/{site.pk}/test/unlink/")
    assert ClientBillingSettings.for_site(site).test_account == account


def test_unlink_and_connect_refuse_a_post_without_the_csrf_token(site, account, stripe_emulator):
    from django.test import Client

    connect(site, account)
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("connector", perms=CONNECT_PERMS))
    base = f"/admin/client-billing/connect/{site.pk}"
    for url in (f"{base}/test/unlink/", f"{base}/test/refresh-status/", f"{base}/"):
        assert client.post(url, GOOD_FORM).status_code == 403, url
    assert ClientBillingSettings.for_site(site).test_account == account
    assert stripe_emulator.requests == []


def test_a_test_account_can_also_be_deleted_on_stripe_when_unlinking(
    client, connector, site, stripe_emulator
):
    client.post(connect_page(site), GOOD_FORM)
    account = StripeAccount.objects.get()
    url = f"/admin/client-billing/connect/{site.pk}/test/unlink/"
    assert soup(client.get(url).content).find("input", {"name": "delete_on_stripe"}) is not None

    response = client.post(url, {"delete_on_stripe": "on"}, follow=True)
    assert "was deleted on Stripe" in messages_text(response)
    with pytest.raises(Exception, match="No such account"):
        stripe_emulator.get_account(account.stripe_id)
    account.refresh_from_db()
    assert account.deauthorized_at is not None
    # a deleted account is not offered for reuse
    page = soup(client.get(connect_page(site)).content)
    assert page.find("option", string=lambda s: s and account.stripe_id in s) is None


def test_a_live_account_is_never_offered_for_deletion(client, connector, site, stripe_emulator):
    live = make_account("acct_live_1", test_mode=False)
    connect(site, live)
    url = f"/admin/client-billing/connect/{site.pk}/live/unlink/"
    assert soup(client.get(url).content).find("input", {"name": "delete_on_stripe"}) is None
    client.post(url, {"delete_on_stripe": "on"})
    assert not [r for r in stripe_emulator.requests if r.method == "DELETE"]
    assert ClientBillingSettings.for_site(site).live_account is None


def test_an_account_other_sites_use_is_not_offered_for_deletion(client, connector, site, account):
    connect(site, account)
    connect(make_site("client-b.example"), account)
    url = f"/admin/client-billing/connect/{site.pk}/test/unlink/"
    page = soup(client.get(url).content)
    assert page.find("input", {"name": "delete_on_stripe"}) is None
    assert "client-b.example" in page.get_text()


# --- permissions ----------------------------------------------------------------------------


def assert_permission_denied(response):
    """Wagtail's answer to a refused admin page: back to the dashboard, with a message."""
    assert response.redirect_chain, response.status_code
    assert response.redirect_chain[-1][0] == "/admin/"
    assert "Sorry, you do not have permission to access this area." in messages_text(response)


def connect_urls(site) -> list[tuple[str, str]]:
    base = f"/admin/client-billing/connect/{site.pk}"
    return [
        ("get", f"{base}/"),
        ("post", f"{base}/"),
        ("get", f"{base}/test/onboarding/"),
        ("get", f"{base}/test/return/"),
        ("post", f"{base}/test/refresh-status/"),
        ("get", f"{base}/test/unlink/"),
        ("post", f"{base}/test/unlink/"),
    ]


@pytest.mark.parametrize(
    "perms",
    [
        ("wagtail_client_billing.change_clientbillingsettings",),
        ("wagtail_client_billing.connect_stripe_account",),
    ],
    ids=["settings-only", "connect-only"],
)
def test_an_editor_without_both_permissions_sees_no_buttons_and_is_refused(
    client, site, account, perms, stripe_emulator
):
    connect(site, account)
    client.force_login(make_user("editor", perms=perms))

    if "wagtail_client_billing.change_clientbillingsettings" in perms:
        tab = stripe_tab(client, site)
        assert account.stripe_id in tab.get_text()  # the state, read-only
        assert button_texts(tab) == []
    for method, url in connect_urls(site):
        data = GOOD_FORM if method == "post" else None
        assert_permission_denied(getattr(client, method)(url, data, follow=True))
    assert ClientBillingSettings.for_site(site).test_account == account
    assert stripe_emulator.requests == []


def test_the_buttons_show_for_an_editor_with_both_permissions(client, connector, site, account):
    connect(site, account)
    tab = stripe_tab(client, site)
    assert "Create client billing account" in button_texts(slot(tab, "live"))
    assert {"Refresh status", "Unlink account"} <= set(button_texts(slot(tab, "test")))


def test_a_refused_background_request_gets_a_403(client, site):
    client.force_login(make_user("editor", perms=CONNECT_PERMS[1:]))
    response = client.get(connect_page(site), headers={"x-requested-with": "XMLHttpRequest"})
    assert response.status_code == 403


def test_anonymous_users_go_to_the_login_page(client, site):
    response = client.get(connect_page(site))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_can_use_hook_switches_the_feature_off_for_one_site(client, admin, site):
    gated = make_site("no-plan.example")

    def only_paying_sites(request, site_):
        return site_.hostname != "no-plan.example"

    with wagtail_hooks.register_temporarily("client_billing_can_use", only_paying_sites):
        assert stripe_tab(client, site) is not None
        assert client.get(connect_page(site)).status_code == 200
        assert stripe_tab(client, gated) is None
        assert_permission_denied(client.get(connect_page(gated), follow=True))
        assert_permission_denied(client.post(connect_page(gated), GOOD_FORM, follow=True))
    assert not StripeAccount.objects.exists()


# --- form errors and Stripe errors ------------------------------------------------------------


def field_error(response, name: str) -> str:
    field = soup(response.content).find(attrs={"name": name})
    wrapper = field.find_parent(attrs={"data-field-wrapper": True})
    return wrapper.select_one(".error-message").get_text(" ", strip=True)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"privacy_policy_url": ""}, "privacy_policy_url", "This field is required."),
        ({"terms_of_service_url": ""}, "terms_of_service_url", "This field is required."),
        (
            {"privacy_policy_url": "javascript:alert(document.cookie)"},
            "privacy_policy_url",
            "Enter a web address starting with http:// or https://.",
        ),
        (
            {"terms_of_service_url": "ftp://agency.example/terms"},
            "terms_of_service_url",
            "Enter a web address starting with http:// or https://.",
        ),
        (
            {"privacy_policy_url": "agency.example/privacy"},
            "privacy_policy_url",
            "Enter a web address starting with http:// or https://.",
        ),
        ({"country": "KP"}, "country", "Select a valid choice."),
    ],
    ids=["no-privacy", "no-terms", "javascript", "ftp", "no-scheme", "country"],
)
def test_bad_details_show_field_errors_and_create_nothing(
    client, connector, site, stripe_emulator, changes, field, message
):
    response = client.post(connect_page(site), {**GOOD_FORM, **changes})
    assert response.status_code == 200
    assert message in field_error(response, field)
    assert not StripeAccount.objects.exists()
    assert stripe_emulator.requests == []


def test_connecting_a_second_account_of_a_mode_asks_to_unlink_first(
    client, connector, site, account, stripe_emulator
):
    connect(site, account)
    response = client.post(connect_page(site), GOOD_FORM)
    assert "already has a test account. Unlink it first." in field_error(response, "test_mode")
    assert stripe_emulator.requests == []


def test_a_stripe_error_on_account_creation_shows_on_the_form_and_creates_nothing(
    client, connector, site, stripe_emulator
):
    stripe_emulator.inject_fault("500", path_prefix="/v1/accounts")
    response = client.post(connect_page(site), GOOD_FORM)
    assert response.status_code == 200
    errors = soup(response.content).select(".messages li.error")
    assert errors and errors[0].get_text(strip=True)
    assert "Traceback" not in response.content.decode()
    assert not StripeAccount.objects.exists()
    assert ClientBillingSettings.for_site(site).test_account is None
    assert not ClientBillingLogEntry.objects.filter(
        action__startswith="wagtail_client_billing."
    ).exists()


def test_a_failed_onboarding_link_keeps_the_new_account_as_incomplete(
    client, connector, site, stripe_emulator
):
    stripe_emulator.inject_fault("500", path_prefix="/v1/account_links")
    response = client.post(connect_page(site), GOOD_FORM, follow=True)
    assert "onboarding page could not be opened" in messages_text(response)
    account = StripeAccount.objects.get()
    assert ClientBillingSettings.for_site(site).test_account == account
    test_slot = slot(soup(response.content), "test")
    assert "Onboarding incomplete" in test_slot.get_text()
    continue_link = find_button(test_slot, "Continue onboarding")
    assert client.get(continue_link["href"])["Location"].startswith(stripe_emulator.public_url)


def test_connect_again_after_a_stripe_timeout_does_not_make_a_second_account(
    client, connector, site, stripe_emulator, settings
):
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "STRIPE_TIMEOUT": 1}
    stripe_emulator.timeout_fault_seconds = 2
    stripe_emulator.inject_fault("timeout", path_prefix="/v1/accounts")
    client.get(connect_page(site))  # the form is shown once

    first = client.post(connect_page(site), GOOD_FORM)
    assert first.status_code == 200  # Stripe made the account, but the answer never came
    assert not StripeAccount.objects.exists()
    second = client.post(connect_page(site), GOOD_FORM)  # the editor presses Connect again

    assert second.status_code == 302
    creates = account_creates(stripe_emulator)
    assert len(creates) == 2 and creates[1].replayed
    assert creates[0].idempotency_key == creates[1].idempotency_key
    assert StripeAccount.objects.count() == 1


def test_reopening_the_form_after_unlinking_creates_a_new_account(
    client, connector, site, stripe_emulator
):
    client.get(connect_page(site))
    client.post(connect_page(site), GOOD_FORM)
    client.post(f"/admin/client-billing/connect/{site.pk}/test/unlink/")
    client.get(connect_page(site))
    client.post(connect_page(site), GOOD_FORM)
    assert StripeAccount.objects.count() == 2
    keys = {r.idempotency_key for r in account_creates(stripe_emulator)}
    assert len(keys) == 2


def test_live_mode_uses_the_live_key_and_fills_the_live_slot(
    client, connector, site, stripe_emulator
):
    form = {**GOOD_FORM}
    form.pop("test_mode")
    client.post(connect_page(site, "live"), form)
    account = StripeAccount.objects.get()
    assert not account.test_mode
    assert ClientBillingSettings.for_site(site).live_account == account
    assert account_creates(stripe_emulator)[0].params["country"] == "US"
