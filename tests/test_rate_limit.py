"""The public pages' per-address rate limit: 429 with Retry-After, a minute's window,
addresses that cannot be spoofed, and the system check for a cache workers don't share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core.cache import cache
from django.test import RequestFactory

from tests.utils import make_invoice
from wagtail_client_billing import lifecycle
from wagtail_client_billing.checks import check_public_rate_limit
from wagtail_client_billing.ratelimit import client_address

pytestmark = pytest.mark.django_db

#: Ten seconds into a minute: the window ends 50 seconds later.
START = datetime(2026, 3, 2, 10, 0, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def limit_of_three(settings):
    cache.clear()
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "PUBLIC_RATE_LIMIT": 3}
    yield
    cache.clear()


@pytest.fixture
def paid(connected_site, account):
    # Paid, so the pay link answers with a page and never calls Stripe.
    invoice = make_invoice(connected_site, account, email="client@example.com")
    lifecycle.mark_paid(invoice, source=lifecycle.Source.WEBHOOK)
    return invoice


def pay_path(invoice) -> str:
    return urlsplit(invoice.get_pay_url()).path


def test_the_pay_link_answers_429_over_the_limit_until_the_minute_is_over(client, paid):
    with time_machine.travel(START, tick=False) as traveller:
        assert [client.get(pay_path(paid)).status_code for _ in range(3)] == [200] * 3
        refused = client.get(pay_path(paid))
        assert refused.status_code == 429
        assert refused["Retry-After"] == "50"
        assert "no-store" in refused["Cache-Control"]
        page = refused.content.decode()
        assert "Too many requests" in page and "Please wait a minute" in page
        assert paid.number not in page  # nothing was looked up

        traveller.shift(timedelta(seconds=49))
        assert client.get(pay_path(paid)).status_code == 429
        traveller.shift(timedelta(seconds=1))  # the next minute
        assert client.get(pay_path(paid)).status_code == 200


def test_the_json_status_answers_429_in_json(client, paid):
    url = f"/billing/invoices/{paid.token}.json"
    with time_machine.travel(START, tick=False):
        for _ in range(3):
            assert client.get(url).status_code == 200
        refused = client.get(url)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "50"
    assert refused.json() == {
        "error": "rate_limited",
        "message": "Too many requests. Please try again in a minute.",
        "retry_after": 50,
    }


def test_guessed_tokens_count_and_the_refusal_costs_no_query(
    client, paid, django_assert_num_queries
):
    """Guessing tokens on any public page spends the same allowance as using one."""
    with time_machine.travel(START, tick=False):
        assert client.get("/billing/pay/not-a-token/").status_code == 404
        assert client.get("/billing/return/not-a-token/").status_code == 404
        assert client.get("/billing/cancel/not-a-token/").status_code == 404
        with django_assert_num_queries(0):
            assert client.get(pay_path(paid)).status_code == 429


def test_each_address_has_its_own_allowance(client, paid):
    with time_machine.travel(START, tick=False):
        for _ in range(4):
            client.get(pay_path(paid), REMOTE_ADDR="198.51.100.7")
        assert client.get(pay_path(paid), REMOTE_ADDR="198.51.100.7").status_code == 429
        assert client.get(pay_path(paid), REMOTE_ADDR="198.51.100.8").status_code == 200


def test_x_forwarded_for_is_not_believed_without_trusted_proxies(client, paid):
    with time_machine.travel(START, tick=False):
        codes = [
            client.get(pay_path(paid), HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
            for n in range(5)
        ]
    assert codes == [200, 200, 200, 429, 429]


def test_behind_one_trusted_proxy_the_client_is_the_address_it_added(client, paid, settings):
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "TRUSTED_PROXY_COUNT": 1}
    with time_machine.travel(START, tick=False):
        # A client that writes its own X-Forwarded-For cannot escape: the proxy appends
        # the real address, and only that one is read.
        codes = [
            client.get(pay_path(paid), HTTP_X_FORWARDED_FOR=f"10.0.0.{n}, 203.0.113.9").status_code
            for n in range(4)
        ]
        other = client.get(pay_path(paid), HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert codes == [200, 200, 200, 429]
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("meta", "proxies", "address"),
    [
        ({"REMOTE_ADDR": "192.0.2.1"}, 0, "192.0.2.1"),
        ({"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}, 0, "192.0.2.1"),
        ({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "1.1.1.1, 198.51.100.1"}, 1, "198.51.100.1"),
        ({"REMOTE_ADDR": "10.0.0.3", "HTTP_X_FORWARDED_FOR": "198.51.100.1, 10.0.0.2"}, 2, "198.51.100.1"),
        # Fewer entries than proxies: the header did not come through them all.
        ({"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}, 2, "10.0.0.2"),
        ({"REMOTE_ADDR": "2001:db8:1:2:3:4:5:6"}, 0, "2001:db8:1:2::/64"),
        ({"REMOTE_ADDR": "::ffff:192.0.2.5"}, 0, "192.0.2.5"),
    ],
)  # fmt: skip
def test_the_client_address(settings, meta, proxies, address):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "TRUSTED_PROXY_COUNT": proxies,
    }
    request = RequestFactory().get("/", **meta)
    assert client_address(request) == address


def test_no_limit_when_it_is_turned_off(client, paid, settings):
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "PUBLIC_RATE_LIMIT": 0}
    with time_machine.travel(START, tick=False):
        assert {client.get(pay_path(paid)).status_code for _ in range(10)} == {200}


# --- the system check --------------------------------------------------------------------------

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/7"}}  # fmt: skip
DUMMY = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_a_process_local_cache_is_pointed_out_in_production(settings):
    settings.DEBUG = False
    settings.CACHES = LOCMEM
    [warning] = check_public_rate_limit()
    assert warning.id == "wagtail_client_billing.W005"
    assert "once per worker" in warning.hint
    settings.CACHES = DUMMY
    assert "never applies" in check_public_rate_limit()[0].msg


def test_no_warning_for_a_shared_cache_in_development_or_without_a_limit(settings):
    settings.DEBUG = False
    settings.CACHES = REDIS
    assert check_public_rate_limit() == []
    settings.CACHES = LOCMEM
    settings.DEBUG = True
    assert check_public_rate_limit() == []
    settings.DEBUG = False
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "PUBLIC_RATE_LIMIT": 0}
    assert check_public_rate_limit() == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"PUBLIC_RATE_LIMIT": -1},
        {"PUBLIC_RATE_LIMIT": "60"},
        {"TRUSTED_PROXY_COUNT": -1},
        {"PUBLIC_RATE_LIMIT_CACHE": "missing"},
    ],
)
def test_bad_rate_limit_settings_are_errors(settings, overrides):
    settings.DEBUG = False
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, **overrides}
    assert ids(check_public_rate_limit()) == ["wagtail_client_billing.E015"]
