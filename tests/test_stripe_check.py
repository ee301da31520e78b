"""``manage.py client_billing_stripe_check`` against the emulator, through the real client.

Webhook endpoints are registered the way a developer's script would (``POST
/v1/webhook_endpoints`` with the ``stripe`` client), so the command reads back what
Stripe would show it.
"""

import io
import json

import pytest
import stripe
from django.core.management import CommandError, call_command, load_command_class

from tests.utils import make_site
from wagtail_client_billing import stripe_api
from wagtail_client_billing.management.commands.client_billing_stripe_check import (
    expected_api_version,
)
from wagtail_client_billing.webhooks import HANDLED_EVENT_TYPES

SITE_URL = "https://billing.example/billing/stripe/webhook/"
LONG_TEST_KEY = "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc" + "Q8w2"
OLD_API_VERSION = "2025-03-31.basil"


@pytest.fixture
def billing_site(db):
    return make_site("billing.example", port=443)


def run(*args):
    """Run the command; return ``(exit status, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    status = 0
    try:
        call_command("client_billing_stripe_check", *args, stdout=out, stderr=err)
    except CommandError as error:
        status = error.returncode
        err.write(str(error))
    return status, out.getvalue(), err.getvalue()


def add_endpoint(emulator, url=SITE_URL, *, key="sk_test_suite", events=None, **params):
    """Register a webhook endpoint on the emulator as a developer would on Stripe."""
    client = stripe.StripeClient(key, base_addresses={"api": emulator.base_url})
    params.setdefault("api_version", expected_api_version())
    if params["api_version"] is None:  # the account's default version
        del params["api_version"]
    return client.v1.webhook_endpoints.create(
        {
            "url": url,
            "enabled_events": list(HANDLED_EVENT_TYPES if events is None else events),
            "connect": True,
            **params,
        }
    )


def set_keys(settings, **keys):
    configured = dict(settings.WAGTAIL_CLIENT_BILLING)
    configured.update(keys)
    settings.WAGTAIL_CLIENT_BILLING = configured


def test_a_complete_setup_passes_in_both_modes(billing_site, stripe_emulator):
    test_endpoint = add_endpoint(stripe_emulator)
    live_endpoint = add_endpoint(stripe_emulator, key="sk_live_suite")

    status, out, _ = run()

    assert status == 0
    assert "Nothing to fix." in out
    listed = f"{test_endpoint.id}  {SITE_URL}  enabled  API {expected_api_version()}"
    assert f"{listed}  {len(HANDLED_EVENT_TYPES)} events" in out
    for mode, endpoint in (("test", test_endpoint), ("live", live_endpoint)):
        assert f"Stripe, {mode} mode (STRIPE_{mode.upper()}_SECRET_KEY)" in out
        assert (
            f"Webhook endpoint {endpoint.id} points at {SITE_URL}, listens to all "
            f"{len(HANDLED_EVENT_TYPES)} event types the app handles and uses API version "
            f"{expected_api_version()}." in out
        )
    assert "Platform account acct_" in out
    assert "Connected accounts can be listed (none yet)." in out
    assert "Checkout Sessions can be listed on the platform." in out
    # What the API cannot show is said, with where to look instead.
    assert "Stripe's API does not say whether an endpoint receives events from connected" in out
    assert "listens to events on Connected accounts" in out


def test_no_endpoint_for_this_site_is_to_fix(billing_site, stripe_emulator, settings):
    set_keys(settings, STRIPE_LIVE_SECRET_KEY=None)
    add_endpoint(stripe_emulator, "https://elsewhere.example/billing/stripe/webhook/")

    status, out, err = run()

    assert status == 1
    assert "No test-mode webhook endpoint points at this site's webhook URL" in out
    assert SITE_URL in out
    assert "To fix:" in out
    assert "1 thing to fix" in err
    assert "STRIPE_LIVE_SECRET_KEY is not set: live mode not checked." in out


def test_an_endpoint_on_the_site_host_but_another_path_is_named(billing_site, stripe_emulator):
    near = add_endpoint(stripe_emulator, SITE_URL.rstrip("/"))

    status, out, _ = run("--mode", "test")

    assert status == 1
    assert f"Webhook endpoint {near.id} points at {SITE_URL.rstrip('/')}, which is on" in out
    assert "No test-mode webhook endpoint points at this site's webhook URL" in out


def test_an_endpoint_of_any_site_counts(billing_site, stripe_emulator):
    make_site("second.example", port=8080)
    add_endpoint(stripe_emulator, "http://second.example:8080/billing/stripe/webhook/")

    status, out, _ = run("--mode", "test")

    assert status == 0, out


def test_an_endpoint_missing_an_event_type_is_to_fix(billing_site, stripe_emulator):
    events = [e for e in HANDLED_EVENT_TYPES if e != "invoice.paid"]
    endpoint = add_endpoint(stripe_emulator, events=events)

    status, out, _ = run("--mode", "test")

    assert status == 1
    assert f"Webhook endpoint {endpoint.id} does not listen to invoice.paid." in out
    assert f"Add invoice.paid to the events of {endpoint.id}" in out


def test_a_second_endpoint_missing_events_is_a_warning_when_one_has_them_all(
    billing_site, stripe_emulator
):
    add_endpoint(stripe_emulator)
    own = add_endpoint(stripe_emulator, events=["account.updated"], connect=False)

    status, out, _ = run("--mode", "test")

    assert status == 0, out
    assert f"WARN  Webhook endpoint {own.id} does not listen to " in out
    # Two endpoints post to the site; the settings know one test endpoint's secrets.
    assert "WARN  2 test-mode endpoints post to this site" in out
    assert "but STRIPE_WEBHOOK_ENDPOINTS has 1" in out


def test_an_endpoint_whose_mode_has_no_secret_configured_is_to_fix(
    billing_site, stripe_emulator, settings
):
    set_keys(settings, STRIPE_TEST_WEBHOOK_SECRETS=[], STRIPE_WEBHOOK_ENDPOINTS=[])
    endpoint = add_endpoint(stripe_emulator)

    status, out, _ = run("--mode", "test")

    assert status == 1
    assert (
        "No test-mode webhook endpoint is configured in STRIPE_WEBHOOK_ENDPOINTS: the app "
        f"refuses every delivery of {endpoint.id}." in out
    )


def test_an_endpoint_listening_to_all_events_has_every_type(billing_site, stripe_emulator):
    add_endpoint(stripe_emulator, events=["*"])

    status, out, _ = run("--mode", "test")

    assert status == 0, out


def test_an_endpoint_on_an_older_version_the_app_reads_is_a_warning(billing_site, stripe_emulator):
    endpoint = add_endpoint(stripe_emulator, api_version=OLD_API_VERSION)

    status, out, _ = run("--mode", "test")

    assert status == 0, out
    assert (
        f"WARN  Webhook endpoint {endpoint.id} sends events in {OLD_API_VERSION}; the app is "
        f"written for {expected_api_version()} and still reads {OLD_API_VERSION}." in out
    )


@pytest.mark.parametrize(
    ("api_version", "shown", "known_releases"),
    [
        # No version of its own: the account's default, which the API does not show.
        (None, "your account's default API version", stripe_api.KNOWN_RELEASES),
        # The app as it would be if it no longer read basil's shapes.
        (OLD_API_VERSION, OLD_API_VERSION, frozenset({"endive"})),
    ],
)
def test_an_endpoint_on_a_version_the_app_cannot_read_is_to_fix(
    billing_site, stripe_emulator, monkeypatch, api_version, shown, known_releases
):
    monkeypatch.setattr(stripe_api, "KNOWN_RELEASES", known_releases)
    endpoint = add_endpoint(stripe_emulator, api_version=api_version)

    status, out, _ = run("--mode", "test")

    assert status == 1
    assert (
        f"FIX   Webhook endpoint {endpoint.id} sends events in {shown}; the app is "
        f"written for {expected_api_version()}." in out
    )
    assert f"add a new endpoint at {SITE_URL} with API version {expected_api_version()}" in out


def test_a_live_key_in_the_test_setting_is_to_fix_and_never_used(
    billing_site, stripe_emulator, settings
):
    set_keys(settings, STRIPE_TEST_SECRET_KEY="sk_live_suite")

    status, out, _ = run("--mode", "test")

    assert status == 1
    assert "STRIPE_TEST_SECRET_KEY holds a secret key for live mode" in out
    assert "test billing requests would use live mode" in out
    assert stripe_emulator.requests == []


def test_from_manage_py_a_key_in_the_wrong_setting_is_reported_not_a_system_check_error(
    billing_site, stripe_emulator, settings, capsys
):
    set_keys(settings, STRIPE_TEST_SECRET_KEY="sk_live_suite")
    command = load_command_class("wagtail_client_billing", "client_billing_stripe_check")

    with pytest.raises(SystemExit) as exited:
        command.run_from_argv(["manage.py", "client_billing_stripe_check", "--mode", "test"])

    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert "SystemCheckError" not in err
    assert "STRIPE_TEST_SECRET_KEY holds a secret key for live mode" in out


def test_a_restricted_test_key_in_the_live_setting_is_to_fix(billing_site, settings, db):
    set_keys(settings, STRIPE_LIVE_SECRET_KEY="rk_test_" + "x" * 40)

    status, out, _ = run("--mode", "live")

    assert status == 1
    assert "STRIPE_LIVE_SECRET_KEY holds a restricted key for test mode" in out


def test_a_publishable_key_is_to_fix(billing_site, settings, db):
    set_keys(settings, STRIPE_TEST_SECRET_KEY="pk_test_" + "x" * 40)

    status, out, _ = run("--mode", "test")

    assert status == 1
    assert "STRIPE_TEST_SECRET_KEY holds a publishable key (pk_...)." in out


def test_a_key_stripe_refuses_is_reported_as_401(billing_site, stripe_emulator, settings):
    bad_key = "sk_test_revoked-" + "x" * 30
    set_keys(settings, STRIPE_TEST_SECRET_KEY=bad_key)

    status, out, err = run("--mode", "test")

    assert status == 1
    assert "Stripe refused the key in STRIPE_TEST_SECRET_KEY (401)" in out
    assert "wrong, revoked or expired" in out
    assert bad_key not in out + err
    # Refused outright: nothing else is asked with it.
    assert [r.path for r in stripe_emulator.requests] == ["/v1/account"]


def test_a_missing_key_is_to_fix_when_its_mode_is_asked_for(billing_site, settings, db):
    set_keys(settings, STRIPE_LIVE_SECRET_KEY=None)

    status, out, _ = run("--mode", "live")

    assert status == 1
    assert "STRIPE_LIVE_SECRET_KEY is not set." in out


def test_no_key_is_ever_printed(billing_site, stripe_emulator, settings):
    set_keys(settings, STRIPE_TEST_SECRET_KEY=LONG_TEST_KEY)
    add_endpoint(stripe_emulator, key=LONG_TEST_KEY)

    status, text, _ = run("--mode", "test")
    _, as_json, _ = run("--mode", "test", "--json")

    assert status == 0, text
    assert "a secret key for test mode (sk_test_... ending in Q8w2)" in text
    for output in (text, as_json):
        assert LONG_TEST_KEY not in output
        assert LONG_TEST_KEY[8:-4] not in output


def test_json_output(billing_site, stripe_emulator, settings):
    set_keys(settings, STRIPE_LIVE_SECRET_KEY=None)
    endpoint = add_endpoint(stripe_emulator, events=["checkout.session.completed"])

    status, out, _ = run("--json")

    assert status == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["expected_api_version"] == expected_api_version()
    test, live = report["modes"]
    assert test["mode"] == "test"
    assert [e["id"] for e in test["endpoints"]] == [endpoint.id]
    fixes = [f["message"] for f in test["findings"] if f["level"] == "fix"]
    assert len(fixes) == 1
    assert fixes[0].startswith(f"Webhook endpoint {endpoint.id} does not listen to ")
    assert live["findings"] == [
        {
            "level": "info",
            "message": "STRIPE_LIVE_SECRET_KEY is not set: live mode not checked.",
            "fix": "",
            "details": [],
        }
    ]


def test_a_disabled_endpoint_is_to_fix(billing_site, stripe_emulator):
    endpoint = add_endpoint(stripe_emulator)
    client = stripe.StripeClient("sk_test_suite", base_addresses={"api": stripe_emulator.base_url})
    client.v1.webhook_endpoints.update(endpoint.id, {"disabled": True})

    status, out, _ = run("--mode", "test")

    assert status == 1
    assert f"Webhook endpoint {endpoint.id} is disabled: Stripe sends it nothing." in out


RESTRICTED_TEST_KEY = "rk_test_" + "51Hx9LqT2eZvKYlo2CkSyOZb" + "Rk7e"


def test_a_restricted_key_lacking_a_permission_the_app_needs_is_named(
    billing_site, stripe_emulator, settings
):
    set_keys(settings, STRIPE_TEST_SECRET_KEY=RESTRICTED_TEST_KEY)
    add_endpoint(stripe_emulator, key=RESTRICTED_TEST_KEY)
    stripe_emulator.deny_permission(RESTRICTED_TEST_KEY, "/v1/accounts", "rak_account_read")

    status, out, err = run("--mode", "test")

    assert status == 1
    assert "STRIPE_TEST_SECRET_KEY holds a restricted key for test mode" in out
    assert (
        "Stripe refused to list connected accounts (GET /v1/accounts) (403): the restricted "
        "key in STRIPE_TEST_SECRET_KEY lacks the permission rak_account_read." in out
    )
    # The rest is still checked, and Stripe's message (which quotes the key) is not shown.
    assert "Checkout Sessions can be listed on the platform." in out
    assert "listens to all" in out
    assert "does not have the required permissions" not in out + err
    assert RESTRICTED_TEST_KEY[:12] not in out + err


def test_a_restricted_key_that_may_not_list_webhook_endpoints_only_warns(
    billing_site, stripe_emulator, settings
):
    set_keys(settings, STRIPE_TEST_SECRET_KEY=RESTRICTED_TEST_KEY)
    stripe_emulator.deny_permission(
        RESTRICTED_TEST_KEY, "/v1/webhook_endpoints", "rak_webhook_read"
    )

    status, out, _ = run("--mode", "test")

    assert status == 0, out
    assert (
        "The key in STRIPE_TEST_SECRET_KEY may not list webhook endpoints, so they were not "
        "checked" in out
    )
    assert "give the key Write on Accounts, Account Links and Checkout Sessions" in out
