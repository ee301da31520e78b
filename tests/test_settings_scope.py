"""The ``client_billing_sites_for_user`` hook keeps an editor off another site's Client
Billing settings page too (found by probing the running example project).

A project that limits editors with the hook only (the settings permission granted
globally, as in :func:`tests.test_access.test_the_hook_alone_keeps_an_editor_from_another_sites_stripe_and_email`)
keeps them from connecting, unlinking and test emails on the other site, but Wagtail's
own settings view still shows that site's SMTP server, login name, From and Reply-To,
and saves changes to them: invoices of a site the editor may not bill for would go out
through a server, or with a Reply-To, of the editor's choosing.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from wagtail import hooks as wagtail_hooks

from tests.test_access import APP, only_client_a, world  # noqa: F401 (the fixture)
from tests.utils import make_user
from wagtail_client_billing import hooks
from wagtail_client_billing.models import ClientBillingSettings

pytestmark = pytest.mark.django_db

OTHER_REPLY_TO = "billing-desk@client-b.example"


def _settings_url(site) -> str:
    return reverse("wagtailsettings:edit", args=[APP, "clientbillingsettings", site.pk])


def _form(**changes) -> dict:
    data = {
        "smtp_host": "",
        "smtp_port": "587",
        "smtp_security": "starttls",
        "smtp_timeout": "10",
        "smtp_username": "",
        "smtp_password": "",
        "from_email": "",
        "reply_to": "",
        "default_currency": "",
        "payment_link_lifetime_hours": "",
    }
    data.update(changes)
    return data


@pytest.fixture
def hook_only_editor(world):  # noqa: F811
    """Every permission of the app, globally; the hook keeps the user to client-a."""
    user = make_user("hook_only_settings")
    user.groups.get().permissions.add(*Permission.objects.filter(content_type__app_label=APP))
    client = Client()
    client.force_login(user)
    with wagtail_hooks.register_temporarily(hooks.SITES_FOR_USER, only_client_a):
        yield client


def test_the_hook_keeps_an_editor_from_reading_another_sites_email_settings(
    world,  # noqa: F811
    hook_only_editor,
):
    ClientBillingSettings.objects.filter(site=world.site_b).update(reply_to=OTHER_REPLY_TO)
    response = hook_only_editor.get(_settings_url(world.site_b))
    assert response.status_code in (302, 403, 404), response.status_code
    assert OTHER_REPLY_TO not in response.content.decode(errors="replace")


def test_the_hook_keeps_an_editor_from_changing_another_sites_email_settings(
    world,  # noqa: F811
    hook_only_editor,
):
    ClientBillingSettings.objects.filter(site=world.site_b).update(reply_to=OTHER_REPLY_TO)
    response = hook_only_editor.post(
        _settings_url(world.site_b),
        _form(from_email="Billing <billing@attacker.example>", reply_to="desk@attacker.example"),
    )
    assert response.status_code in (302, 403, 404), response.status_code
    if response.status_code == 302:  # Wagtail's "permission denied" redirect, not "saved"
        assert response["Location"] == reverse("wagtailadmin_home")
    settings_b = ClientBillingSettings.objects.get(site=world.site_b)
    assert (settings_b.reply_to, settings_b.from_email) == (OTHER_REPLY_TO, "")


def test_the_hook_still_lets_the_editor_change_their_own_sites_settings(
    world,  # noqa: F811
    hook_only_editor,
):
    """The other half: the refusal is about the site, not the settings page."""
    response = hook_only_editor.post(
        _settings_url(world.site_a), _form(reply_to="desk@client-a.example")
    )
    assert response.status_code == 302
    assert ClientBillingSettings.objects.get(site=world.site_a).reply_to == "desk@client-a.example"
