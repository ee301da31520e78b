from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wagtail_client_billing import money

CURRENCIES = ["USD", "EUR", "JPY", "KRW", "KWD", "BHD", "ISK", "HUF", "GBP"]


@given(currency=st.sampled_from(CURRENCIES), minor=st.integers(min_value=0, max_value=10**12))
def test_minor_to_major_and_back_round_trips(currency, minor):
    assert money.to_minor(money.to_major(minor, currency), currency) == minor


@given(
    currency=st.sampled_from(CURRENCIES),
    major=st.decimals(
        min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=0
    ),
)
def test_whole_major_amounts_round_trip(currency, major):
    assert money.to_major(money.to_minor(major, currency), currency) == major


@pytest.mark.parametrize(
    ("currency", "major", "minor"),
    [
        ("USD", "125.00", 12500),
        ("JPY", "12500", 12500),
        ("KWD", "1.250", 1250),
        ("ISK", "10", 1000),
    ],
)
def test_exponent_comes_from_stripes_table(currency, major, minor):
    assert money.to_minor(Decimal(major), currency) == minor


@pytest.mark.parametrize(
    ("currency", "value"), [("USD", "1.001"), ("JPY", "1.5"), ("KWD", "0.0001")]
)
def test_more_decimals_than_the_currency_has_is_an_error_not_rounding(currency, value):
    with pytest.raises(money.MoneyError, match="decimal places"):
        money.to_minor(value, currency)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "abc", ""])
def test_non_numbers_are_refused(value):
    with pytest.raises(money.MoneyError):
        money.to_minor(value, "USD")


def test_minimum_and_maximum_are_enforced_with_a_message_naming_the_limit():
    with pytest.raises(money.MoneyError, match=r"minimum for USD is \$0.50"):
        money.validate_amount(49, "USD")
    with pytest.raises(money.MoneyError, match="minimum for JPY"):
        money.validate_amount(49, "JPY")
    with pytest.raises(money.MoneyError, match="maximum"):
        money.validate_amount(100_000_000, "USD")
    money.validate_amount(50, "USD")
    money.validate_amount(99_999_999, "USD")


def test_three_decimal_amounts_must_end_in_zero():
    with pytest.raises(money.MoneyError, match="end in 0"):
        money.validate_amount(1255, "KWD")
    money.validate_amount(1250, "KWD")


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "text"),
    [
        (12500, "USD", "en_US", "$125.00"),
        (12500, "EUR", "de_DE", "125,00\xa0€"),
        (12500, "JPY", "ja_JP", "￥12,500"),
        (1250, "KWD", "en_US", "KWD1.250"),
    ],
)
def test_formatting_follows_the_locale_and_the_currencys_decimals(minor, currency, locale, text):
    assert money.format_money(minor, currency, locale) == text


def test_formatting_uses_the_active_language(settings):
    from django.utils import translation

    with translation.override("de"):
        assert money.format_money(12500, "EUR") == "125,00\xa0€"
