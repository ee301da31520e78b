"""Races on PostgreSQL between an editor saving Settings -> Client Billing and the
writers of the same site's other state: invoice numbering and Stripe's deauthorization.

The editor's save is a real POST to Wagtail's settings view in its own thread. To land
the other writer in the window every save has (the row is loaded, then written), a
``pre_save`` receiver (Django sends it after the view loaded the row and validated the
form, just before the write, on every Wagtail version) holds the request until the
other writer has committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, connections
from django.db.models.signals import pre_save
from django.test import Client
from django.urls import reverse

from tests.test_races import run_together
from tests.utils import connect, make_account, make_invoice, make_site, make_user
from tests.webhook_helpers import LIVE_SECRET, TEST_SECRET, account_event, post_event
from wagtail_client_billing.models import ClientBillingSettings, Invoice

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (DATABASE_URL): SQLite serialises every writer, so nothing races",
    ),
]


def settings_poster(site, username: str) -> Callable[[str], None]:
    """A function that saves the site's settings form as the editor would, a Reply-To
    typed in; it asserts the save succeeded (Wagtail redirects)."""
    editor = make_user(username, superuser=True)
    url = reverse(
        "wagtailsettings:edit", args=["wagtail_client_billing", "clientbillingsettings", site.pk]
    )

    def save(reply_to: str) -> None:
        client = Client()
        client.force_login(editor)
        data = {
            "smtp_host": "",
            "smtp_port": "587",
            "smtp_username": "",
            "smtp_password": "",
            "smtp_security": "starttls",
            "smtp_timeout": "10",
            "from_email": "",
            "reply_to": reply_to,
            "default_currency": "USD",
            "payment_link_lifetime_hours": "",
        }
        response = client.post(url, data)
        assert response.status_code == 302, response.context["form"].errors

    return save


@contextmanager
def save_held_after_loading(save: Callable[[], None]) -> Iterator[Callable[[], None]]:
    """Run ``save`` in a thread, stopped once it has loaded the settings row; yields the
    function that lets it write, and waits for it."""
    loaded, resume = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(sender, instance, **kwargs):
        if not loaded.is_set():
            loaded.set()
            assert resume.wait(timeout=30), "never released"

    def run():
        try:
            save()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    def release() -> None:
        resume.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the settings save hung"
        if errors:
            raise errors[0]

    pre_save.connect(hold, sender=ClientBillingSettings, weak=False)
    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert loaded.wait(timeout=30), "the settings view never came to saving"
        yield release
    finally:
        resume.set()
        thread.join(timeout=60)
        pre_save.disconnect(hold, sender=ClientBillingSettings)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_invoices_created_while_editors_save_the_settings_get_consecutive_numbers():
    site, account = make_site("numbers.example"), make_account("acct_test_numbers")
    connect(site, account)
    save_settings = settings_poster(site, "numbers-editor")
    make_invoice(site, account)

    # An editor's save that loaded the row before three invoices were made...
    with save_held_after_loading(lambda: save_settings("held@acme.example")) as release:
        run_together([lambda: make_invoice(site, account) for _ in range(3)])
        release()
    # ...then invoices and saves at the same instant, round after round.
    for round_ in range(6):
        run_together(
            [lambda: make_invoice(site, account) for _ in range(3)]
            + [lambda r=round_, e=e: save_settings(f"r{r}e{e}@acme.example") for e in range(2)]
        )
    make_invoice(site, account)

    numbers = list(Invoice.objects.filter(site=site).order_by("sequence").values_list("number"))
    assert [n for (n,) in numbers] == [f"INV-{i:06d}" for i in range(1, 1 + 1 + 3 + 6 * 3 + 1)]
    assert ClientBillingSettings.for_site(site).reply_to.endswith("@acme.example")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_deauthorization_while_the_settings_form_is_saved_stays_unlinked():
    site = make_site("deauth.example")
    live, test = (
        make_account("acct_live_deauth", test_mode=False),
        make_account("acct_test_deauth"),
    )
    connect(site, live)
    connect(site, test)
    save_settings = settings_poster(site, "deauth-editor")
    application = {"id": "ca_platform", "object": "application", "name": "Agency"}

    with save_held_after_loading(lambda: save_settings("replies@acme.example")) as release:
        for account in (live, test):
            event = account_event(
                "account.application.deauthorized",
                application,
                account.stripe_id,
                livemode=not account.test_mode,
            )
            secret = TEST_SECRET if account.test_mode else LIVE_SECRET
            assert post_event(Client(), event, secret).status_code == 200
        release()

    config = ClientBillingSettings.for_site(site)
    assert (config.live_account, config.test_account) == (None, None)
    assert config.reply_to == "replies@acme.example"  # the editor's save went through
