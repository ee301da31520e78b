"""Money: integer minor units plus an ISO 4217 currency code.

Stripe counts amounts in the currency's smallest unit, and its idea of that unit is
not always CLDR's: ISK, HUF, TWD and UGX are sent to Stripe with two decimals even
though they are spent without them. :data:`STRIPE_EXPONENTS` is the one table of
exponents the app uses; Babel provides names, symbols and locale formatting.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Protocol

from babel import Locale
from babel.numbers import format_currency, get_currency_name
from django.utils.translation import get_language, to_locale

#: Stripe's zero-decimal currencies (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
#: Stripe's three-decimal currencies; Stripe requires the last digit to be 0.
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])

#: Minor-unit exponent of each currency as Stripe counts it; every other currency uses 2.
STRIPE_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(ZERO_DECIMAL, 0),
    **dict.fromkeys(THREE_DECIMAL, 3),
}

#: Stripe's largest amount for one charge, in minor units (eight digits).
MAXIMUM_AMOUNT = 99_999_999

#: Stripe's ``application_fee_percent``: from 0 to 100 with at most two decimal places.
#: The app stops short of 100, which would leave the connected account nothing.
FEE_PERCENT_DECIMALS = 2
FEE_PERCENT_BELOW = Decimal(100)

#: Stripe's published minimum charge per settlement currency, in minor units.
#: Currencies not listed use the equivalent of USD 0.50 that Stripe asks for,
#: approximated by :data:`FALLBACK_MINIMUM_MAJOR`.
MINIMUM_AMOUNTS: dict[str, int] = {
    "USD": 50,
    "AED": 200,
    "AUD": 50,
    "BGN": 100,
    "BRL": 50,
    "CAD": 50,
    "CHF": 50,
    "CZK": 1500,
    "DKK": 250,
    "EUR": 50,
    "GBP": 30,
    "HKD": 400,
    "HUF": 17500,
    "INR": 50,
    "JPY": 50,
    "MXN": 1000,
    "MYR": 200,
    "NOK": 300,
    "NZD": 50,
    "PLN": 200,
    "RON": 200,
    "SEK": 300,
    "SGD": 50,
    "THB": 1000,
    "KRW": 700,
    "KWD": 200,
    "BHD": 200,
    "JOD": 400,
    "OMR": 200,
    "TND": 2000,
}
#: A minimum of one major unit where Stripe publishes none for the currency.
FALLBACK_MINIMUM_MAJOR = Decimal(1)


class MoneyError(ValueError):
    """An amount that cannot be charged in its currency; ``str()`` is the reason."""


def exponent(currency: str) -> int:
    """Digits after the decimal point for ``currency`` in Stripe's API."""
    return STRIPE_EXPONENTS.get(currency.upper(), 2)


def to_minor(amount: Decimal | int | str, currency: str) -> int:
    """Convert a major-unit amount (``Decimal("12.50")``) to minor units (``1250``).

    Raises :class:`MoneyError` when the amount is not a finite number or has more
    decimals than the currency allows (``12.505`` USD), instead of rounding money away.
    """
    try:
        value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    except InvalidOperation as exc:
        raise MoneyError(f"{amount!r} is not a number") from exc
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not a number")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError(
            f"{currency.upper()} amounts have at most {exponent(currency)} decimal places"
        )
    return int(scaled)


def to_major(minor: int, currency: str) -> Decimal:
    """Convert minor units to a ``Decimal`` in major units with the currency's exponent."""
    digits = exponent(currency)
    return (Decimal(minor).scaleb(-digits)).quantize(
        Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN
    )


def minimum_amount(currency: str) -> int:
    """Stripe's smallest charge in ``currency``, in minor units."""
    code = currency.upper()
    if code in MINIMUM_AMOUNTS:
        return MINIMUM_AMOUNTS[code]
    return to_minor(FALLBACK_MINIMUM_MAJOR, code)


def validate_amount(minor: int, currency: str) -> None:
    """Raise :class:`MoneyError` unless Stripe can charge ``minor`` in ``currency``.

    Three-decimal currencies must end in 0 (Stripe rounds them to two decimals).
    """
    if minor < minimum_amount(currency):
        raise MoneyError(
            f"The minimum for {currency.upper()} is "
            f"{format_money(minimum_amount(currency), currency, locale='en')}"
        )
    if minor > MAXIMUM_AMOUNT:
        raise MoneyError(
            f"The maximum for {currency.upper()} is "
            f"{format_money(MAXIMUM_AMOUNT, currency, locale='en')}"
        )
    if currency.upper() in THREE_DECIMAL and minor % 10:
        raise MoneyError(f"{currency.upper()} amounts must end in 0 (Stripe rounds to 0.01)")


def fee_percent(value: object) -> Decimal:
    """A platform fee percentage as Stripe accepts it, as a ``Decimal``.

    ``value`` is an ``int``, ``float`` or ``Decimal`` from 0 to under 100 with at most
    two decimal places (``2.55``, not ``2.555``: Stripe refuses a third, so every
    subscription Checkout would fail). ``None`` is no fee. Raises :class:`MoneyError`
    otherwise.
    """
    if value is None:
        return Decimal(0)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise MoneyError(f"{value!r} is not a number")
    # str() of a float is its shortest repr, so 2.55 stays 2.55 and 2.555 shows 3 decimals.
    percent = value if isinstance(value, Decimal) else Decimal(str(value))
    if not percent.is_finite() or not 0 <= percent < FEE_PERCENT_BELOW:
        raise MoneyError(f"{value!r} is not from 0 to under {FEE_PERCENT_BELOW}")
    if percent != percent.quantize(Decimal(1).scaleb(-FEE_PERCENT_DECIMALS)):
        raise MoneyError(f"{value!r} has more than {FEE_PERCENT_DECIMALS} decimal places")
    return percent


def current_locale() -> str:
    """The active Django language as a Babel locale name (``en_US``), ``en`` if unknown."""
    language = get_language() or "en"
    name = to_locale(language)
    try:
        Locale.parse(name)
    except (ValueError, LookupError):
        return "en"
    return name


def format_money(minor: int, currency: str, locale: str | None = None) -> str:
    """``1250, "USD"`` -> ``"$12.50"`` in the given (or active) locale."""
    return format_currency(
        to_major(minor, currency),
        currency.upper(),
        locale=locale or current_locale(),
        currency_digits=True,
    )


class _Amount(Protocol):
    amount: int
    currency: str


class _RefundedAmount(_Amount, Protocol):
    amount_refunded: int


class FormattedAmount:
    """``formatted_amount`` for a model with ``amount`` (minor units) and ``currency``: the
    one way an invoice, a payment, a refund, a renewal and a dispute show their amount.
    A row without a currency (a renewal or dispute whose event named none) shows the
    bare number."""

    @property
    def formatted_amount(self: _Amount) -> str:
        return format_money(self.amount, self.currency) if self.currency else str(self.amount)


class FormattedRefundedAmount(FormattedAmount):
    """:class:`FormattedAmount`, and ``formatted_amount_refunded`` for a model that also
    counts ``amount_refunded`` in the same currency."""

    @property
    def formatted_amount_refunded(self: _RefundedAmount) -> str:
        return format_money(self.amount_refunded, self.currency)


def currency_name(currency: str, locale: str | None = None) -> str:
    """The currency's name in the given (or active) locale, e.g. ``"Japanese Yen"``."""
    return get_currency_name(currency.upper(), locale=locale or current_locale())


def currency_choices(codes: list[str], locale: str | None = None) -> list[tuple[str, str]]:
    """Select choices ``[("USD", "USD — US Dollar"), ...]`` for the given codes."""
    return [(code, f"{code} — {currency_name(code, locale)}") for code in codes]


def format_percent(value: Decimal | int | str, locale: str | None = None) -> str:
    """``Decimal("8.2500")`` -> ``"8.25%"`` in the given (or active) locale, without
    trailing zeros."""
    from babel.numbers import format_decimal

    number = Decimal(str(value)).normalize()
    if number == number.to_integral_value():
        number = number.quantize(Decimal(1))
    return format_decimal(number, locale=locale or current_locale(), format="#,##0.####") + "%"
