"""`manage.py check` explains a broken install, each message with a hint."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from wagtail_client_billing import stripe_api
from wagtail_client_billing.checks import (
    check_installed_apps,
    check_settings,
    check_stripe_api_version,
)


def ids(messages):
    return sorted(m.id for m in messages)


def test_the_test_settings_pass():
    assert check_settings() == []
    assert check_installed_apps() == []


def test_no_stripe_key_at_all_is_an_error_with_a_hint(settings, monkeypatch):
    monkeypatch.delenv("STRIPE_TEST_SECRET_KEY", raising=False)
    monkeypatch.delenv("STRIPE_LIVE_SECRET_KEY", raising=False)
    settings.WAGTAIL_CLIENT_BILLING = {}
    messages = check_settings()
    assert "wagtail_client_billing.E004" in ids(messages)
    assert all(m.hint for m in messages)


def test_manage_py_check_fails_for_a_settings_dict_that_lacks_keys(settings, monkeypatch):
    monkeypatch.delenv("STRIPE_TEST_SECRET_KEY", raising=False)
    monkeypatch.delenv("STRIPE_LIVE_SECRET_KEY", raising=False)
    settings.WAGTAIL_CLIENT_BILLING = {"CURRENCIES": ["USD"]}
    with pytest.raises(SystemCheckError, match="No Stripe secret key"):
        call_command("check")


def test_keys_fall_back_to_the_environment(settings, monkeypatch):
    settings.WAGTAIL_CLIENT_BILLING = {}
    monkeypatch.setenv("STRIPE_TEST_SECRET_KEY", "sk_test_from_env")
    monkeypatch.setenv("STRIPE_TEST_WEBHOOK_SECRETS", "whsec_a, whsec_b")
    from wagtail_client_billing.conf import billing_settings

    billing_settings.reload()
    try:
        assert billing_settings.STRIPE_TEST_SECRET_KEY == "sk_test_from_env"
        assert billing_settings.STRIPE_TEST_WEBHOOK_SECRETS == ["whsec_a", "whsec_b"]
        assert check_settings() == []
    finally:
        billing_settings.reload()


def test_a_key_of_the_wrong_mode_and_missing_webhook_secret(settings):
    settings.WAGTAIL_CLIENT_BILLING = {"STRIPE_LIVE_SECRET_KEY": "sk_test_oops"}
    assert ids(check_settings()) == ["wagtail_client_billing.E005", "wagtail_client_billing.W002"]


def test_unknown_keys_bad_currencies_fee_and_encryption_key(settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        "STRIPE_TEST_SECRET_KEY": "sk_test_x",
        "STRIPE_TEST_WEBHOOK_SECRETS": "whsec_not_a_list",
        "CURENCIES": ["USD"],
        "CURRENCIES": ["DOLLARS"],
        "APPLICATION_FEE_PERCENT": 120,
        "SMTP_ENCRYPTION_KEY": "not-a-fernet-key",
    }
    assert ids(check_settings()) == [
        "wagtail_client_billing.E006",
        "wagtail_client_billing.E007",
        "wagtail_client_billing.E008",
        "wagtail_client_billing.E009",
        "wagtail_client_billing.W001",
    ]


def test_missing_apps_are_named(monkeypatch):
    from django.conf import settings

    # Set without the setting_changed signal, which would re-populate the app registry.
    monkeypatch.setattr(
        settings, "INSTALLED_APPS", [a for a in settings.INSTALLED_APPS if a != "django_q"]
    )
    assert ids(check_installed_apps()) == ["wagtail_client_billing.E001"]


@pytest.mark.parametrize("fee", [2.555, 100, -1, "2.5", True, float("nan")])
def test_a_fee_percent_stripe_would_refuse_is_an_error_with_a_hint(settings, fee):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "APPLICATION_FEE_PERCENT": fee,
    }

    (message,) = check_settings()

    assert message.id == "wagtail_client_billing.E009"
    assert "two decimal places" in message.msg and "2.555" in message.hint


@pytest.mark.parametrize("fee", [0, 2, 2.5, 2.55, 99.99, Decimal("12.34")])
def test_a_fee_percent_with_at_most_two_decimals_passes(settings, fee):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "APPLICATION_FEE_PERCENT": fee,
    }

    assert check_settings() == []


def test_a_stripe_package_of_an_unknown_api_release_is_warned_about(monkeypatch):
    # A stripe package of a later release, as the app sees one (its own reader of it).
    monkeypatch.setattr(stripe_api, "installed", lambda: ("99.0.0", "2027-03-31.fig"))
    (warning,) = check_stripe_api_version()
    assert warning.id == "wagtail_client_billing.W004"
    assert "2027-03-31.fig" in warning.msg
    assert stripe_api.STRIPE_API_VERSION in warning.hint


@pytest.mark.parametrize(
    "version",
    [stripe_api.STRIPE_API_VERSION, "2025-03-31.basil", "2026-12-16.endive", "2024-06-20"],
)
def test_a_stripe_package_of_a_known_api_release_passes(monkeypatch, version):
    monkeypatch.setattr(stripe_api, "installed", lambda: ("99.0.0", version))
    assert check_stripe_api_version() == []


@pytest.mark.parametrize(
    ("endpoints", "legacy", "expected"),
    [
        ([{"name": "test Connect", "live": False, "secrets": [None]}], {}, ["E013"]),
        ([{"live": False, "secrets": ["", "  whsec_x", "sk_test_oops"]}], {}, ["E013"] * 3),
        ([], {"STRIPE_LIVE_WEBHOOK_SECRETS": [None]}, ["E013"]),
        ({"live": True}, {}, ["E012"]),
        (["whsec_a"], {}, ["E012"]),
        ([{"secrets": ["whsec_a"]}], {}, ["E012"]),
        ([{"live": "yes", "secrets": ["whsec_a"]}], {}, ["E012"]),
        ([{"live": True, "secret": ["whsec_a"]}], {}, ["E012", "E012"]),
        ([{"live": True, "secrets": "whsec_a"}], {}, ["E006"]),
        (
            [{"live": True, "secrets": ["whsec_same"]}, {"live": False, "secrets": ["whsec_same"]}],
            {},
            ["E014"],
        ),
    ],
)
def test_broken_webhook_endpoint_settings_are_errors(settings, endpoints, legacy, expected):
    settings.WAGTAIL_CLIENT_BILLING = {
        "STRIPE_TEST_SECRET_KEY": "sk_test_x",
        "STRIPE_LIVE_SECRET_KEY": "sk_live_x",
        "STRIPE_WEBHOOK_ENDPOINTS": endpoints,
        **legacy,
    }
    messages = [m for m in check_settings() if m.id != "wagtail_client_billing.W002"]
    assert ids(messages) == sorted(f"wagtail_client_billing.{i}" for i in expected)
    assert all(m.hint for m in messages)
    assert not any("whsec_same" in m.msg or "whsec_x" in m.msg for m in messages)


def test_a_broken_endpoint_is_named_by_its_name(settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        "STRIPE_WEBHOOK_ENDPOINTS": [{"name": "live Connect", "live": True, "secrets": [None]}]
    }
    (error,) = (m for m in check_settings() if m.id == "wagtail_client_billing.E013")
    assert error.msg == (
        "STRIPE_WEBHOOK_ENDPOINTS[0] (live Connect) holds None, not a 'whsec_...' secret."
    )


def test_endpoints_from_the_environment_that_are_not_json_are_an_error(settings, monkeypatch):
    settings.WAGTAIL_CLIENT_BILLING = {"STRIPE_TEST_SECRET_KEY": "sk_test_x"}
    monkeypatch.setenv("STRIPE_WEBHOOK_ENDPOINTS", "whsec_a")
    from wagtail_client_billing.conf import billing_settings

    billing_settings.reload()
    try:
        assert ids(check_settings()) == ["wagtail_client_billing.E012"]
    finally:
        billing_settings.reload()


def test_a_key_without_an_endpoint_of_its_mode_is_warned_about(settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        "STRIPE_TEST_SECRET_KEY": "sk_test_x",
        "STRIPE_LIVE_SECRET_KEY": "sk_live_x",
        "STRIPE_WEBHOOK_ENDPOINTS": [{"live": True, "secrets": ["whsec_live"]}],
    }
    (warning,) = check_settings()
    assert (warning.id, warning.msg) == (
        "wagtail_client_billing.W002",
        "A test Stripe key is set but no test webhook endpoint's secret.",
    )
