"""A billing request's figures: subtotal, discount, net, tax and gross, in minor units.

The one place the app computes them. The form's live total, the email, the inspect page,
the export and the Checkout Session's parameters all read :func:`compute`, so the client
sees the same figures everywhere, and they are the figures Stripe's Checkout computes
from the same lines, tax rate and coupon, following Stripe's documented rules:

* A line's amount is ``unit_amount × quantity``; the session's ``amount_subtotal`` is
  their sum (tax included where the rate is inclusive).
* A coupon applies to the whole session. An ``amount_off`` discounts at most the
  subtotal; a ``percent_off`` discounts that share of the subtotal, rounded to the
  nearest minor unit (halves away from zero). The discount is spread over the lines in
  proportion to their amounts, each line's share rounded down and the units left over
  given one each to the lines with the largest remainders (the earlier line first on a
  tie), so the lines' discounts add up to the discount exactly.
* Tax is computed per line on the line's amount after its discount, rounded to the
  nearest minor unit (halves away from zero): ``amount × p / 100`` on top for an
  exclusive rate; ``amount × p / (100 + p)`` of it for an inclusive one.
* ``total_details.amount_tax`` is the lines' tax; ``amount_total`` is the subtotal less
  the discount, plus the tax of an exclusive rate.

Everything is integer arithmetic on minor units (a percentage is a ``Decimal`` with at
most four decimal places, turned into an integer fraction), so no total drifts by a
rounding of floats. Net is what the client pays before tax, gross what they pay.

The emulator (``testing/emulator/pricing.py``) computes the same figures from Stripe's
rules in its own code on purpose: a misreading shared by both could not be caught.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

#: Stripe's tax rate ``percentage``: from 0 to 100, at most four decimal places.
TAX_PERCENT_DECIMALS = 4
#: A coupon's ``percent_off``: over 0 and at most 100, at most two decimal places.
DISCOUNT_PERCENT_DECIMALS = 2


@dataclass(frozen=True)
class Tax:
    """A tax rate as the figures need it: a percentage, inclusive or exclusive."""

    percentage: Decimal
    inclusive: bool


@dataclass(frozen=True)
class Discount:
    """A coupon: ``amount_off`` minor units, or ``percent_off`` percent, of the subtotal."""

    amount_off: int | None = None
    percent_off: Decimal | None = None


@dataclass(frozen=True)
class LineFigures:
    """One line: its amount as priced, its share of the discount, its tax and total."""

    amount: int
    discount: int
    tax: int
    total: int


@dataclass(frozen=True)
class Figures:
    """A request's figures in minor units of ``currency``.

    Attributes:
        subtotal: the lines' amounts as priced (Stripe's ``amount_subtotal``).
        discount: taken off the subtotal (``total_details.amount_discount``).
        tax: included in or added to the lines (``total_details.amount_tax``).
        net: what the client pays before tax (``gross - tax``).
        gross: what the client pays (``amount_total``).
        tax_inclusive: whether the tax is included in the prices.
    """

    currency: str
    lines: tuple[LineFigures, ...]
    subtotal: int
    discount: int
    tax: int
    net: int
    gross: int
    tax_inclusive: bool = False

    @property
    def has_tax(self) -> bool:
        return self.tax > 0

    def as_dict(self) -> dict[str, object]:
        return {
            "currency": self.currency,
            "subtotal": self.subtotal,
            "discount": self.discount,
            "tax": self.tax,
            "net": self.net,
            "gross": self.gross,
            "tax_inclusive": self.tax_inclusive,
        }


def _round_half_up(value: Fraction) -> int:
    """The nearest integer to a non-negative fraction, halves rounded up."""
    return int((value.numerator * 2 + value.denominator) // (value.denominator * 2))


def _fraction(value: Decimal) -> Fraction:
    return Fraction(value)


def discount_amount(subtotal: int, discount: Discount | None) -> int:
    """The discount on ``subtotal`` minor units: never more than the subtotal."""
    if discount is None:
        return 0
    if discount.amount_off is not None:
        return max(0, min(int(discount.amount_off), subtotal))
    if discount.percent_off is not None:
        share = Fraction(subtotal) * _fraction(discount.percent_off) / 100
        return min(_round_half_up(share), subtotal)
    return 0


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights``, largest remainders first.

    The parts add up to ``total`` exactly; a zero weight gets nothing.
    """
    whole = sum(weights)
    if total <= 0 or whole <= 0:
        return [0] * len(weights)
    parts = [total * w // whole for w in weights]
    left = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


def line_tax(amount: int, tax: Tax | None) -> int:
    """The tax in (inclusive) or on (exclusive) ``amount`` minor units."""
    if tax is None or amount <= 0:
        return 0
    percent = _fraction(tax.percentage)
    if tax.inclusive:
        return _round_half_up(Fraction(amount) * percent / (100 + percent))
    return _round_half_up(Fraction(amount) * percent / 100)


def compute(
    lines: Sequence[tuple[int, int]],
    currency: str,
    *,
    tax: Tax | None = None,
    discount: Discount | None = None,
) -> Figures:
    """The figures of ``lines`` (``(unit_amount, quantity)`` pairs) in ``currency``."""
    amounts = [int(unit) * int(quantity) for unit, quantity in lines]
    subtotal = sum(amounts)
    total_discount = discount_amount(subtotal, discount)
    shares = allocate(total_discount, amounts)
    figures: list[LineFigures] = []
    for amount, share in zip(amounts, shares, strict=True):
        base = amount - share
        line_tax_amount = line_tax(base, tax)
        added = 0 if (tax is None or tax.inclusive) else line_tax_amount
        figures.append(LineFigures(amount, share, line_tax_amount, base + added))
    total_tax = sum(f.tax for f in figures)
    gross = sum(f.total for f in figures)
    return Figures(
        currency=currency.upper(),
        lines=tuple(figures),
        subtotal=subtotal,
        discount=total_discount,
        tax=total_tax,
        net=gross - total_tax,
        gross=gross,
        tax_inclusive=bool(tax and tax.inclusive),
    )
