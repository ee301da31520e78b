"""The client portal: signed links (expiry, tampering, revocation, one client each), what a
client sees (their invoices on every site, nothing of anyone else's), the "send me a new
link" form (limited, and the same answer for known and unknown addresses), and Stripe's
customer portal on the subscription's connected account, through the emulator over HTTP."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail, signing
from django.core.cache import cache
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from wagtail.log_actions import registry as log_registry

from tests.test_emulator_billing_portal import get_page, post_form
from tests.test_subscription_state import monthly_paid  # noqa: F401 (a fixture)
from tests.utils import connect, make_account, make_invoice, make_site, make_user
from wagtail_client_billing import emails, lifecycle, portal_links
from wagtail_client_billing.billing import portal
from wagtail_client_billing.models import (
    Client,
    Invoice,
    InvoiceStatus,
    StripeAccount,
)
from wagtail_client_billing.views.portal import COOKIE_NAME

pytestmark = pytest.mark.django_db

PORTAL = "/billing/portal/"
NEW_LINK = "/billing/portal/new-link/"


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world():
    """Two clients sharing an address domain, each with invoices on two sites."""
    site_a, site_b = make_site("a.example"), make_site("b.example")
    account = make_account("acct_portal_a")
    connect(site_a, account)
    connect(site_b, account)
    alice = Client.objects.create(email="alice@shared.example", name="Alice")
    bob = Client.objects.create(email="bob@shared.example", name="Bob")

    def invoice(site, client, **kwargs):
        made = make_invoice(site, account, email=client.email, **kwargs)
        Invoice.objects.filter(pk=made.pk).update(client=client)
        made.refresh_from_db()
        return made

    return {
        "sites": (site_a, site_b),
        "account": account,
        "alice": alice,
        "bob": bob,
        "alice_a": invoice(site_a, alice, description="Alice's build", number="A-0001"),
        "alice_b": invoice(site_b, alice, description="Alice's hosting", number="B-0001"),
        "bob_a": invoice(site_a, bob, description="Bob's secret project", number="A-0002"),
        "bob_b": invoice(site_b, bob, description="Bob's other thing", number="B-0002"),
        "alice_draft": invoice(site_a, alice, description="Unsent draft", status="draft"),
    }


def open_portal(client, who) -> str:
    """Open ``who``'s portal with a fresh link; the portal page's HTML."""
    response = client.get(urlsplit(portal_links.portal_url(who, who.invoices.first().site)).path)
    assert response.status_code == 303 and response["Location"] == PORTAL
    page = client.get(PORTAL)
    assert page.status_code == 200
    return page.content.decode()


# --- what a client sees ---------------------------------------------------------------------


def test_a_client_sees_their_invoices_on_both_sites_and_nothing_of_another(client, world):
    page = open_portal(client, world["alice"])
    assert "Alice&#x27;s build" in page and "Alice&#x27;s hosting" in page
    assert "a.example" in page and "b.example" in page
    assert "Bob" not in page and "bob@shared.example" not in page
    assert "Unsent draft" not in page
    assert page.count('data-testid="portal-invoice"') == 2


def test_another_clients_invoice_ids_are_404_in_every_url(client, world):
    open_portal(client, world["alice"])
    for invoice in (world["bob_a"], world["bob_b"], world["alice_draft"]):
        assert client.get(f"{PORTAL}invoices/{invoice.pk}/pay/").status_code == 404
        assert client.post(f"{PORTAL}invoices/{invoice.pk}/subscription/").status_code == 404
    assert client.get(f"{PORTAL}invoices/999999/pay/").status_code == 404
    assert client.get(f"{PORTAL}invoices/-1/pay/").status_code == 404
    assert client.get(f"{PORTAL}invoices/1e3/pay/").status_code == 404


def test_pay_goes_on_to_the_invoices_own_payment_link(client, world):
    open_portal(client, world["alice"])
    response = client.get(f"{PORTAL}invoices/{world['alice_b'].pk}/pay/")
    assert response.status_code == 303
    assert response["Location"] == urlsplit(world["alice_b"].get_pay_url()).path


def test_a_paid_invoice_shows_its_receipt_and_no_pay_button(client, world):
    invoice = world["alice_a"]
    lifecycle.mark_paid(invoice, source=lifecycle.Source.WEBHOOK)
    invoice.payments.create(amount=invoice.amount, currency="USD", paid_at=timezone.now())
    page = open_portal(client, world["alice"])
    card = page.split(f'data-invoice="{invoice.pk}"')[1].split("</li>\n")[0]
    assert "Paid $125.00 on" in card and "Pay $125.00" not in card
    other = page.split(f'data-invoice="{world["alice_b"].pk}"')[1]
    assert "Pay $125.00" in other


def pdf_text(response) -> str:
    from io import BytesIO

    from pypdf import PdfReader

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    data = b"".join(response.streaming_content) if response.streaming else response.content
    return "".join(page.extract_text() for page in PdfReader(BytesIO(data)).pages)


def test_the_portal_offers_each_invoices_pdf_and_its_receipts(client, world):
    invoice = world["alice_a"]
    lifecycle.mark_paid(invoice, source=lifecycle.Source.WEBHOOK)
    payment = invoice.payments.create(amount=invoice.amount, currency="USD", paid_at=timezone.now())
    page = open_portal(client, world["alice"])
    invoice_url = f"{PORTAL}invoices/{invoice.pk}/invoice.pdf"
    receipt_url = f"{PORTAL}invoices/{invoice.pk}/payments/{payment.pk}/receipt.pdf"
    assert invoice_url in page and receipt_url in page
    assert f"Invoice {invoice.number}" in pdf_text(client.get(invoice_url))
    receipt = pdf_text(client.get(receipt_url))
    assert invoice.number in receipt and "$125.00" in receipt and "Receipt" in receipt


def test_another_clients_pdfs_are_404(client, world):
    bob_invoice = world["bob_a"]
    lifecycle.mark_paid(bob_invoice, source=lifecycle.Source.WEBHOOK)
    payment = bob_invoice.payments.create(amount=125, currency="USD", paid_at=timezone.now())
    open_portal(client, world["alice"])
    assert client.get(f"{PORTAL}invoices/{bob_invoice.pk}/invoice.pdf").status_code == 404
    bob_receipt = f"{PORTAL}invoices/{bob_invoice.pk}/payments/{payment.pk}/receipt.pdf"
    assert client.get(bob_receipt).status_code == 404
    # Bob's payment under Alice's invoice is not found either.
    mixed = f"{PORTAL}invoices/{world['alice_a'].pk}/payments/{payment.pk}/receipt.pdf"
    assert client.get(mixed).status_code == 404
    assert client.get(f"{PORTAL}invoices/{world['alice_draft'].pk}/invoice.pdf").status_code == 404


def test_without_a_link_the_portal_asks_for_one(client, world):
    response = client.get(PORTAL)
    assert (response.status_code, response["Location"]) == (303, NEW_LINK)
    assert client.get(f"{PORTAL}invoices/{world['alice_a'].pk}/pay/").status_code == 303


def test_the_portal_pages_are_private(client, world):
    response = client.get(urlsplit(portal_links.portal_url(world["alice"], world["sites"][0])).path)
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["path"] == PORTAL and cookie["httponly"] and cookie["samesite"] == "Lax"
    # The emailed link's own answer sends no Referer anywhere; the portal's pages post
    # their forms back to themselves, so browsers must send their Origin (CSRF).
    assert response["Referrer-Policy"] == "no-referrer"
    page = client.get(PORTAL)
    assert "no-store" in page["Cache-Control"] and page["Referrer-Policy"] == "same-origin"
    assert page["X-Robots-Tag"] == "noindex, nofollow"


# --- links ------------------------------------------------------------------------------


def test_a_link_expires_after_its_max_age_even_in_an_open_portal(client, world, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "PORTAL_LINK_MAX_AGE": timedelta(days=2),
    }
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        path = urlsplit(portal_links.portal_url(world["alice"], world["sites"][0])).path
        open_portal(client, world["alice"])
        traveller.shift(timedelta(days=2, minutes=1))
        expired = client.get(PORTAL)
        assert expired.status_code == 410 and "This link has expired" in expired.content.decode()
        assert expired.cookies[COOKIE_NAME].value == ""  # the cookie is dropped
        assert client.get(path).status_code == 410


def test_a_tampered_link_is_not_found(client, world):
    token = portal_links.make_token(world["alice"])
    payload, _sep, signature = token.partition(":")
    forged = signing.dumps({"c": world["bob"].pk, "v": 1}, salt="another.salt")
    for bad in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        forged,
        "nonsense",
        signing.dumps({"c": world["bob"].pk, "v": 1}, salt=portal_links.SALT)[:-3] + "xyz",
    ):
        response = client.get(f"{PORTAL}open/{bad}/")
        assert response.status_code == 404, bad
        assert "Link not recognised" in response.content.decode()
    # A forged cookie opens nothing either.
    client.cookies[COOKIE_NAME] = forged
    assert client.get(PORTAL).status_code == 303


def test_a_link_opens_one_clients_portal_only(client, world):
    page = open_portal(client, world["bob"])
    assert "Bob&#x27;s secret project" in page and "Alice" not in page


def test_revoking_stops_every_earlier_link_and_open_portal(client, world):
    alice = world["alice"]
    old_path = urlsplit(portal_links.portal_url(alice, world["sites"][0])).path
    open_portal(client, alice)
    editor = make_user("editor", superuser=True)
    portal.revoke_links(alice, user=editor)
    assert client.get(PORTAL).status_code == 410
    assert client.get(old_path).status_code == 410
    # Bob's links are untouched; a new link of Alice's works.
    assert "Bob&#x27;s secret project" in open_portal(client, world["bob"])
    assert "Alice&#x27;s build" in open_portal(client, alice)
    entry = log_registry.get_logs_for_instance(alice).filter(action=portal.REVOKED_ACTION).get()
    assert entry.user_id == editor.pk


def test_an_erased_clients_link_no_longer_opens(client, world):
    path = urlsplit(portal_links.portal_url(world["alice"], world["sites"][0])).path
    Client.objects.filter(pk=world["alice"].pk).update(erased_at=timezone.now())
    assert client.get(path).status_code == 410


def test_sign_out_forgets_the_link(client, world):
    open_portal(client, world["alice"])
    response = client.post(f"{PORTAL}sign-out/")
    assert response.status_code == 303 and response.cookies[COOKIE_NAME].value == ""
    assert client.get(PORTAL).status_code == 303


# --- every client email carries a link --------------------------------------------------


def test_every_client_email_carries_a_link_to_the_clients_portal(client, world):
    invoice = world["alice_b"]
    mailer = emails.mailer_for_site(invoice.site)
    message = emails.build_invoice_message(invoice, mailer)
    links = re.findall(r"http://b\.example/billing/portal/open/[^/\s\"]+/", message.body)
    assert len(links) == 1
    html = message.alternatives[0][0]
    assert links[0] in html
    page = client.get(urlsplit(links[0]).path, follow=True)
    assert "Alice&#x27;s build" in page.content.decode()


def test_the_new_link_email_has_the_portal_button_once_in_the_client_email_frame(world):
    alice = world["alice"]
    assert emails.send_portal_link(alice, world["sites"][0]) is None
    message = mail.outbox[-1]
    html = message.alternatives[0][0]
    link = portal_links.portal_url(alice, world["sites"][0]).rsplit("/", 2)[0]
    assert html.count(link) == 1 and "Open your invoices" in html
    assert "<h1" in html and "a.example" in html  # the frame every client email shares


def test_an_invoice_without_a_client_has_no_portal_link(world):
    invoice = make_invoice(world["sites"][0], world["account"], email="loose@example.com")
    message = emails.build_invoice_message(invoice, emails.mailer_for_site(invoice.site))
    assert "/portal/" not in message.body


# --- "send me a new link" ----------------------------------------------------------------


def ask(client, email, **extra):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(NEW_LINK, {"email": email}, **extra)


def test_the_answer_is_the_same_for_known_and_unknown_addresses(client, world):
    # The clock stands still, so the Expires header (now) is the same second for both.
    with time_machine.travel(timezone.now(), tick=False):
        known = ask(client, "ALICE@shared.example", REMOTE_ADDR="198.51.100.1")
        assert len(mail.outbox) == 1
        unknown = ask(client, "carol@shared.example", REMOTE_ADDR="198.51.100.2")
    assert len(mail.outbox) == 1  # nothing was sent to an unknown address
    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content
    assert sorted(known.headers.items()) == sorted(unknown.headers.items())
    sent = mail.outbox[0]
    assert sent.to == ["alice@shared.example"]
    link = re.search(r"http://\S+/billing/portal/open/\S+/", sent.body).group(0)
    page = client.get(urlsplit(link).path, follow=True).content.decode()
    assert "Alice&#x27;s build" in page and "Bob" not in page


def test_a_client_without_visible_invoices_gets_no_link(client, world):
    Client.objects.create(email="dora@shared.example")
    assert ask(client, "dora@shared.example").status_code == 200
    assert mail.outbox == []


def test_a_malformed_address_is_a_form_error(client, world):
    response = client.post(NEW_LINK, {"email": "not an address"})
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()


def test_new_links_are_limited_per_email(client, world, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "PORTAL_LINK_REQUESTS_PER_EMAIL": 2,
    }
    for address in ("198.51.100.1", "198.51.100.2"):
        assert ask(client, "alice@shared.example", REMOTE_ADDR=address).status_code == 200
    limited = ask(client, "alice@shared.example", REMOTE_ADDR="198.51.100.3")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert "Too many requests" in limited.content.decode()
    assert len(mail.outbox) == 2
    # Another address from the same network is not affected by Alice's limit.
    assert ask(client, "bob@shared.example", REMOTE_ADDR="198.51.100.3").status_code == 200


def test_new_links_are_limited_per_client_address(client, world, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "PORTAL_LINK_REQUESTS_PER_ADDRESS": 2,
    }
    assert ask(client, "a@x.example", REMOTE_ADDR="203.0.113.9").status_code == 200
    assert ask(client, "b@x.example", REMOTE_ADDR="203.0.113.9").status_code == 200
    limited = ask(client, "alice@shared.example", REMOTE_ADDR="203.0.113.9")
    assert limited.status_code == 429
    assert mail.outbox == []
    assert ask(client, "alice@shared.example", REMOTE_ADDR="203.0.113.10").status_code == 200


def test_the_limit_ends_with_its_hour(client, world, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "PORTAL_LINK_REQUESTS_PER_EMAIL": 1,
    }
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        assert ask(client, "alice@shared.example").status_code == 200
        assert ask(client, "alice@shared.example").status_code == 429
        traveller.shift(timedelta(hours=1, seconds=1))
        assert ask(client, "alice@shared.example").status_code == 200


# --- Stripe's customer portal ------------------------------------------------------------


@pytest.fixture
def subscribed(monthly_paid, client):  # noqa: F811 (the imported fixture)
    """A client whose monthly invoice was paid through the emulator's Checkout, with
    their portal open in ``client``."""
    who = Client.objects.create(email=monthly_paid.email)
    Invoice.objects.filter(pk=monthly_paid.pk).update(client=who)
    monthly_paid.refresh_from_db()
    client.get(urlsplit(portal_links.portal_url(who, monthly_paid.site)).path)
    return monthly_paid


def manage(client, invoice):
    return client.post(f"{PORTAL}invoices/{invoice.pk}/subscription/")


def test_manage_opens_a_portal_session_on_the_subscriptions_account(
    client, stripe_emulator, subscribed
):
    page = client.get(PORTAL).content.decode()
    assert "Manage card / cancel" in page
    response = manage(client, subscribed)
    assert response.status_code == 303
    assert response["Location"].startswith(f"{stripe_emulator.public_url}/_hosted/billing_portal/")
    calls = [r for r in stripe_emulator.requests if r.path.startswith("/v1/billing_portal/")]
    assert [r.path for r in calls] == [
        "/v1/billing_portal/configurations",
        "/v1/billing_portal/sessions",
    ]
    assert {r.stripe_account for r in calls} == {subscribed.account.stripe_id}
    session_params = calls[1].params
    assert session_params["customer"] == subscribed.customer_id
    assert session_params["return_url"] == "http://monthly.example/billing/portal/"
    configuration = stripe_emulator.state.billing_portal_configurations[
        session_params["configuration"]
    ]
    assert configuration["features"]["subscription_cancel"]["mode"] == "at_period_end"
    assert configuration["business_profile"]["privacy_policy_url"] == (
        "https://agency.example/privacy"
    )
    # The configuration is made once per account.
    account = StripeAccount.objects.get(pk=subscribed.account_id)
    assert account.portal_configuration_id == session_params["configuration"]
    assert manage(client, subscribed).status_code == 303
    made = [r for r in stripe_emulator.requests if r.path == "/v1/billing_portal/configurations"]
    assert len(made) == 1


def test_a_configuration_stripe_no_longer_accepts_is_made_again(
    client, stripe_emulator, subscribed
):
    assert manage(client, subscribed).status_code == 303
    account = StripeAccount.objects.get(pk=subscribed.account_id)
    old = account.portal_configuration_id
    stripe_emulator.state.billing_portal_configurations[old]["active"] = False
    assert manage(client, subscribed).status_code == 303
    account.refresh_from_db()
    assert account.portal_configuration_id not in ("", old)


def test_stripe_down_shows_a_page_not_an_error(client, stripe_emulator, subscribed):
    stripe_emulator.inject_fault("500", count=10, path_prefix="/v1/billing_portal/")
    response = manage(client, subscribed)
    assert response.status_code == 503 and response["Retry-After"]
    assert "could not be opened just now" in response.content.decode()


def deliver(emulator) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        emulator.deliver_pending()


def test_cancelling_in_the_customer_portal_shows_canceled_in_the_admin(
    client, stripe_emulator, subscribed, settings
):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "PORTAL_CANCEL_MODE": "immediately",
    }
    session_url = manage(client, subscribed)["Location"]
    status, page = get_page(session_url)
    assert status == 200 and "Cancel now" in page
    status, location = post_form(
        session_url, {"action": "cancel", "subscription": subscribed.subscription_id}
    )
    assert (status, location) == (303, "http://monthly.example/billing/portal/")
    deliver(stripe_emulator)
    subscribed.refresh_from_db()
    assert subscribed.subscription_status == "canceled"
    assert "Manage card / cancel" not in client.get(PORTAL).content.decode()
    editor = make_user("admin", superuser=True)
    client.force_login(editor)
    inspect = reverse("wagtail_client_billing_invoices:inspect", args=[subscribed.pk])
    assert "Cancelled" in client.get(inspect).content.decode()


def test_cancelling_at_the_period_end_shows_when_it_ends(client, stripe_emulator, subscribed):
    session_url = manage(client, subscribed)["Location"]
    post_form(session_url, {"action": "cancel", "subscription": subscribed.subscription_id})
    deliver(stripe_emulator)
    subscribed.refresh_from_db()
    assert subscribed.subscription_cancel_at_period_end is True
    assert subscribed.subscription_status == "active"
    page = client.get(PORTAL).content.decode()
    assert "ends on" in page


def test_a_one_time_invoice_has_nothing_to_manage(client, world):
    open_portal(client, world["alice"])
    response = client.post(f"{PORTAL}invoices/{world['alice_a'].pk}/subscription/")
    assert response.status_code == 409
    assert "no subscription to manage" in response.content.decode()


def test_deleted_invoices_are_hidden(client, world):
    Invoice.objects.filter(pk=world["alice_b"].pk).update(status=InvoiceStatus.DELETED)
    page = open_portal(client, world["alice"])
    assert "Alice&#x27;s hosting" not in page


# --- system checks --------------------------------------------------------------------------


def check_ids(settings, debug=False, **values) -> list[str]:
    from wagtail_client_billing.checks import check_client_portal

    settings.DEBUG = debug
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, **values}
    return [message.id for message in check_client_portal()]


def test_the_default_portal_settings_pass_the_checks(settings):
    assert check_ids(settings) == []


@pytest.mark.parametrize("max_age", [timedelta(0), timedelta(days=-1), 14, "14 days"])
def test_a_link_lifetime_that_is_not_a_positive_timedelta_is_e023(settings, max_age):
    assert check_ids(settings, PORTAL_LINK_MAX_AGE=max_age) == ["wagtail_client_billing.E023"]


@pytest.mark.parametrize(
    "values",
    [
        {"PORTAL_CANCEL_MODE": "at_end"},
        {"PORTAL_LINK_REQUESTS_PER_EMAIL": -1},
        {"PORTAL_LINK_REQUESTS_PER_ADDRESS": "10"},
        {"PORTAL_LINK_REQUESTS_PER_ADDRESS": True},
    ],
)
def test_a_cancel_mode_or_limit_stripe_or_the_form_cannot_use_is_e024(settings, values):
    assert check_ids(settings, **values) == ["wagtail_client_billing.E024"]


def test_a_new_link_limit_turned_off_in_production_is_w016(settings):
    assert check_ids(settings, PORTAL_LINK_REQUESTS_PER_EMAIL=0) == ["wagtail_client_billing.W016"]
    assert check_ids(settings, debug=True, PORTAL_LINK_REQUESTS_PER_EMAIL=0) == []


def test_amounts_are_formatted_in_the_clients_language(client, world):
    Client.objects.filter(pk=world["alice"].pk).update(language="de")
    world["alice"].refresh_from_db()
    response = client.get(urlsplit(portal_links.portal_url(world["alice"], world["sites"][0])).path)
    page = client.get(PORTAL)
    assert page["Content-Language"] == "de"
    assert "125,00" in page.content.decode() and "$125.00" not in page.content.decode()
    assert response.status_code == 303


# --- the editor's "Revoke portal links" ------------------------------------------------------


def revoke_url(who) -> str:
    return reverse("wagtail_client_billing_portal:revoke", args=[who.pk])


def test_an_editor_revokes_a_clients_links_from_the_clients_listing(client, world):
    alice = world["alice"]
    link = urlsplit(portal_links.portal_url(alice, world["sites"][0])).path
    editor = make_user("boss", superuser=True)
    client.force_login(editor)
    listing = client.get(reverse("wagtail_client_billing_clients:list")).content.decode()
    assert revoke_url(alice) in listing and "Revoke portal links" in listing
    clients_page = reverse("wagtail_client_billing_clients:inspect", args=[alice.pk])
    assert revoke_url(alice) in client.get(clients_page).content.decode()  # and on its page
    page = client.get(revoke_url(alice))
    assert page.status_code == 200 and "stops working at once" in page.content.decode()
    response = client.post(revoke_url(alice))
    assert response.status_code == 302
    client.logout()
    assert client.get(link).status_code == 410
    entry = log_registry.get_logs_for_instance(alice).get(action=portal.REVOKED_ACTION)
    assert entry.user_id == editor.pk


def test_revoking_needs_the_change_client_permission(client, world):
    client.force_login(make_user("viewer", perms=("wagtail_client_billing.view_client",)))
    assert client.post(revoke_url(world["alice"])).status_code == 403
    assert portal_links.links_version(world["alice"].pk) == 1


def test_revoking_a_client_outside_the_editors_sites_is_404(client, world):
    from wagtail_client_billing import hooks as billing_hooks

    editor = make_user(
        "site_a_editor",
        perms=("wagtail_client_billing.change_client", "wagtail_client_billing.view_client"),
    )
    carol = Client.objects.create(email="carol@elsewhere.example")
    make_invoice(world["sites"][1], world["account"], email=carol.email)
    Invoice.objects.filter(email=carol.email).update(client=carol)

    def only_site_a(user, sites):
        return sites.filter(pk=world["sites"][0].pk)

    from wagtail import hooks as wagtail_hooks

    with wagtail_hooks.register_temporarily(billing_hooks.SITES_FOR_USER, only_site_a):
        client.force_login(editor)
        assert client.post(revoke_url(carol)).status_code == 404
        assert client.post(revoke_url(world["alice"])).status_code == 302
