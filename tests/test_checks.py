"""`manage.py check` explains a broken install, each message with a hint."""

import io
import runpy
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from wagtail_client_billing import stripe_api
from wagtail_client_billing.checks import (
    SQLITE_OPTIONS,
    check_default_site_port,
    check_installed_apps,
    check_production_settings,
    check_q_cluster,
    check_settings,
    check_sqlite_options,
    check_stripe_api_version,
    check_urls,
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


# --- what a first install gets wrong -----------------------------------------------------------


def test_the_test_settings_pass_the_install_checks():
    assert check_urls() == []
    assert check_q_cluster() == []
    assert check_sqlite_options() == []


def test_urls_not_included_are_an_error_that_says_where_to_add_them(settings):
    settings.ROOT_URLCONF = "tests.urlconfs.without_billing"

    (error,) = check_urls()

    assert error.id == "wagtail_client_billing.E016"
    assert "tests.urlconfs.without_billing" in error.msg
    assert 'include("wagtail_client_billing.urls")' in error.hint
    assert "before Wagtail's catch-all" in error.hint


def test_urls_after_wagtails_catch_all_are_an_error_naming_the_view_that_answers(settings):
    settings.ROOT_URLCONF = "tests.urlconfs.after_catch_all"

    webhook, pay = check_urls()

    assert {webhook.id, pay.id} == {"wagtail_client_billing.E017"}
    assert webhook.msg.startswith("/billing/stripe/webhook/ (the Stripe webhook) resolves to ")
    assert "wagtail.views.serve" in webhook.msg
    assert pay.msg.startswith("/billing/pay/check-token/ (the payment link)")
    assert "above Wagtail's catch-all" in webhook.hint


def test_urls_under_a_prefix_and_namespace_of_the_sites_own_pass(settings):
    settings.ROOT_URLCONF = "tests.urlconfs.own_namespace"
    assert check_urls() == []


def test_manage_py_check_fails_while_the_catch_all_shadows_the_webhook(settings):
    settings.ROOT_URLCONF = "tests.urlconfs.after_catch_all"
    with pytest.raises(SystemCheckError, match="E017"):
        call_command("check")


def test_no_q_cluster_is_warned_about_with_a_complete_one_to_paste(settings):
    del settings.Q_CLUSTER

    (warning,) = check_q_cluster()

    assert warning.id == "wagtail_client_billing.W006"
    assert "localhost:6379" in warning.msg
    assert _suggested(warning.hint) == {
        "name": "mysite",
        "workers": 2,
        "timeout": 300,
        "retry": 360,
        "max_attempts": 3,
        "ack_failures": True,
        "catch_up": False,
        "orm": "default",
    }


def _suggested(hint):
    """The ``Q_CLUSTER = {...}`` a hint suggests, as Python would read it."""
    code = hint[hint.index("Q_CLUSTER = ") : hint.index("}") + 1]
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 (our own hint)
    return namespace["Q_CLUSTER"]


def test_the_minimal_q_cluster_is_warned_about_and_the_suggestion_passes(settings):
    settings.Q_CLUSTER = {"name": "mysite", "orm": "default"}

    (warning,) = check_q_cluster()

    assert warning.id == "wagtail_client_billing.W007"
    assert "sets no timeout" in warning.msg
    suggested = _suggested(warning.hint)
    assert suggested["name"] == "mysite" and suggested["orm"] == "default"
    settings.Q_CLUSTER = suggested
    assert check_q_cluster() == []


@pytest.mark.parametrize(
    ("q_cluster", "said"),
    [
        ({"name": "s", "orm": "default", "timeout": 300}, "retry 60 not above timeout 300"),
        ({"name": "s", "orm": "default", "timeout": 60, "retry": 60}, "retry 60 not above"),
        ({"name": "s", "timeout": 30, "retry": 60}, "names no broker"),
        ({"name": "s", "orm": "default", "timeout": "300", "retry": 360}, "sets no timeout"),
    ],
)
def test_an_inconsistent_q_cluster_is_warned_about(settings, q_cluster, said):
    settings.Q_CLUSTER = q_cluster
    (warning,) = check_q_cluster()
    assert warning.id == "wagtail_client_billing.W007"
    assert said in warning.msg


def test_the_q_cluster_hint_keeps_a_redis_broker_without_repeating_its_address(settings):
    settings.Q_CLUSTER = {"name": "shop", "redis": "redis://:s3cret@10.0.0.5:6379/0"}
    (warning,) = check_q_cluster()
    assert 'keeping your "redis" entry' in warning.hint
    assert "s3cret" not in warning.hint and "s3cret" not in warning.msg
    assert _suggested(warning.hint)["name"] == "shop"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"STRIPE_TEST_WEBHOOK_SECRETS": None},
            "WAGTAIL_CLIENT_BILLING['STRIPE_TEST_WEBHOOK_SECRETS'] is None, and no environment "
            "variable STRIPE_TEST_WEBHOOK_SECRETS is set: it configures no webhook secret.",
        ),
        (
            {"STRIPE_WEBHOOK_ENDPOINTS": ""},
            "WAGTAIL_CLIENT_BILLING['STRIPE_WEBHOOK_ENDPOINTS'] is an empty string, and no "
            "environment variable STRIPE_WEBHOOK_ENDPOINTS is set: it configures no webhook secret.",
        ),
        (
            {"STRIPE_WEBHOOK_ENDPOINTS": [{"name": "test Connect", "live": False, "secrets": []}]},
            "STRIPE_WEBHOOK_ENDPOINTS[0] (test Connect) has no secrets: it authenticates nothing.",
        ),
    ],
)
def test_webhook_secrets_left_empty_by_an_unset_variable_are_an_error(
    settings, monkeypatch, overrides, message
):
    for name in overrides:
        monkeypatch.delenv(name, raising=False)
    settings.WAGTAIL_CLIENT_BILLING = {"STRIPE_TEST_SECRET_KEY": "sk_test_x", **overrides}

    (error,) = check_settings()

    assert (error.id, error.msg) == ("wagtail_client_billing.E013", message)
    assert error.hint


def test_a_none_webhook_setting_filled_by_the_environment_passes(settings, monkeypatch):
    monkeypatch.setenv("STRIPE_TEST_WEBHOOK_SECRETS", "whsec_from_env")
    settings.WAGTAIL_CLIENT_BILLING = {
        "STRIPE_TEST_SECRET_KEY": "sk_test_x",
        "STRIPE_TEST_WEBHOOK_SECRETS": None,
    }
    assert check_settings() == []


@pytest.mark.parametrize(
    "base",
    [
        "http://127.0.0.1:12111",
        "http://localhost:12111/",
        "https://localhost:12111",
        "http://[::1]:12111",
        "http://stripe-emulator:12111",
        "https://user:pw@127.0.0.2",
    ],
)
def test_the_emulators_api_base_without_debug_is_warned_about(settings, base):
    settings.DEBUG = False
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "STRIPE_API_BASE": base}

    (warning,) = check_production_settings()

    assert warning.id == "wagtail_client_billing.W008"
    assert "unset (None)" in warning.hint
    assert "pw" not in warning.msg


def test_the_emulators_api_base_from_the_environment_is_warned_about(settings, monkeypatch):
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:12111")
    settings.WAGTAIL_CLIENT_BILLING = {
        k: v for k, v in settings.WAGTAIL_CLIENT_BILLING.items() if k != "STRIPE_API_BASE"
    }
    assert ids(check_production_settings()) == ["wagtail_client_billing.W008"]


@pytest.mark.parametrize(
    ("debug", "base"),
    [(False, None), (False, "https://api.stripe.com"), (True, "http://127.0.0.1:12111")],
)
def test_stripe_itself_or_debug_passes(settings, monkeypatch, debug, base):
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    settings.DEBUG = debug
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "STRIPE_API_BASE": base}
    assert check_production_settings() == []


def test_test_keys_only_without_debug_are_warned_about(settings, monkeypatch):
    monkeypatch.delenv("STRIPE_LIVE_SECRET_KEY", raising=False)
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    settings.DEBUG = False
    settings.WAGTAIL_CLIENT_BILLING = {"STRIPE_TEST_SECRET_KEY": "sk_test_x"}

    (warning,) = check_production_settings()

    assert warning.id == "wagtail_client_billing.W009"
    assert "STRIPE_LIVE_SECRET_KEY" in warning.hint
    settings.DEBUG = True
    assert check_production_settings() == []


def _databases(**entry):
    return {"default": {"ENGINE": "django.db.backends.sqlite3", **entry}}


def test_sqlite_without_immediate_transactions_is_warned_about_with_the_fix(monkeypatch):
    from django.conf import settings

    # Set without the setting_changed signal: the test's own connection stays as it is.
    monkeypatch.setattr(settings, "DATABASES", _databases(NAME="/srv/site/db.sqlite3"))

    (warning,) = check_sqlite_options()

    assert warning.id == "wagtail_client_billing.W010"
    assert "database is locked" in warning.msg
    assert repr(SQLITE_OPTIONS) in warning.hint
    assert "PRAGMA journal_mode=WAL;" in warning.hint


@pytest.mark.parametrize(
    "databases",
    [
        _databases(NAME="/srv/site/db.sqlite3", OPTIONS=SQLITE_OPTIONS),
        _databases(NAME="/srv/site/db.sqlite3", OPTIONS={"transaction_mode": "immediate"}),
        _databases(NAME=":memory:"),
        _databases(NAME="file:memdb?mode=memory&cache=shared"),
        {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "site"}},
    ],
)
def test_sqlite_with_immediate_transactions_memory_and_postgres_pass(monkeypatch, databases):
    from django.conf import settings

    monkeypatch.setattr(settings, "DATABASES", databases)
    assert check_sqlite_options() == []


def test_the_example_project_sets_the_sqlite_options_the_check_suggests(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    example = Path(__file__).resolve().parent.parent / "example_project" / "example_project"
    namespace = runpy.run_path(str(example / "settings.py"))
    options = namespace["DATABASES"]["default"]["OPTIONS"]
    assert options == SQLITE_OPTIONS


@pytest.mark.django_db
def test_the_default_site_on_port_80_while_debug_is_a_note_with_the_fix(settings):
    from wagtail.models import Site

    Site.objects.filter(is_default_site=True).update(hostname="localhost", port=80)
    settings.DEBUG = True

    (note,) = check_default_site_port(databases=["default"])

    assert note.id == "wagtail_client_billing.I001"
    assert "http://localhost/" in note.msg
    assert "client_billing_dev" in note.hint
    # A database check: plain `check` leaves it out, `check --database default` runs it.
    assert check_default_site_port() == []
    out = io.StringIO()
    call_command("check", "--database", "default", stdout=out, stderr=out)
    assert "wagtail_client_billing.I001" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(("debug", "port"), [(True, 8000), (False, 80)])
def test_the_default_site_on_its_own_port_or_without_debug_passes(settings, debug, port):
    from wagtail.models import Site

    Site.objects.filter(is_default_site=True).update(hostname="localhost", port=port)
    settings.DEBUG = debug
    assert check_default_site_port(databases=["default"]) == []


def test_no_stripe_key_while_debug_is_only_a_warning_so_migrate_runs(settings, monkeypatch):
    monkeypatch.delenv("STRIPE_TEST_SECRET_KEY", raising=False)
    monkeypatch.delenv("STRIPE_LIVE_SECRET_KEY", raising=False)
    settings.DEBUG = True
    settings.WAGTAIL_CLIENT_BILLING = {}

    (warning,) = check_settings()

    assert warning.id == "wagtail_client_billing.W011"
    assert "client_billing_dev" in warning.msg
    call_command("check")  # no SystemCheckError: a warning does not stop a command


def test_a_webhook_variable_read_twice_configures_one_endpoint(settings, monkeypatch):
    # The README reads STRIPE_TEST_WEBHOOK_SECRETS into STRIPE_WEBHOOK_ENDPOINTS, and the
    # app reads the same variable as its shorthand's environment fallback.
    from wagtail_client_billing.conf import billing_settings

    monkeypatch.setenv("STRIPE_TEST_WEBHOOK_SECRETS", "whsec_a,whsec_b")
    settings.WAGTAIL_CLIENT_BILLING = {
        "STRIPE_TEST_SECRET_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_ENDPOINTS": [
            {"name": "test Connect", "live": False, "secrets": ["whsec_a", "whsec_b"]}
        ],
    }
    assert [e.name for e in billing_settings.webhook_endpoints()] == ["test Connect"]
    assert check_settings() == []


def test_an_empty_secret_key_without_an_smtp_key_is_an_error_not_a_crash(settings):
    settings.SECRET_KEY = ""
    assert "wagtail_client_billing.E008" in ids(check_settings())


@pytest.mark.parametrize("tolerance", [0, -5, "300", 1.5, True])
def test_a_webhook_tolerance_that_refuses_every_event_is_an_error(settings, tolerance):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "WEBHOOK_TOLERANCE": tolerance,
    }
    assert ids(check_settings()) == ["wagtail_client_billing.E018"]
