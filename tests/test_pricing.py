"""The one module that computes a request's net, tax and gross (``pricing``)."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from wagtail_client_billing import pricing
from wagtail_client_billing.pricing import Discount, Tax


def test_exclusive_tax_is_rounded_per_line_after_the_discount():
    # Three lines of $10.00, $3.33 x 3 and $0.05; 10% off; 8.25% sales tax on top.
    figures = pricing.compute(
        [(1000, 1), (333, 3), (5, 1)],
        "usd",
        tax=Tax(Decimal("8.25"), inclusive=False),
        discount=Discount(percent_off=Decimal(10)),
    )
    assert figures.subtotal == 2004
    assert figures.discount == 200  # 200.4 rounded
    # Lines after discount: 1000-100=900, 999-100=899, 5-0=5 -> tax 74.25->74, 74.17->74, 0.41->0
    assert [line.discount for line in figures.lines] == [100, 100, 0]
    assert [line.tax for line in figures.lines] == [74, 74, 0]
    assert figures.tax == 148
    assert figures.net == 1804
    assert figures.gross == 1952


def test_inclusive_tax_is_part_of_the_price():
    figures = pricing.compute([(11900, 1)], "eur", tax=Tax(Decimal(19), inclusive=True))
    assert (figures.subtotal, figures.tax, figures.net, figures.gross) == (
        11900,
        1900,
        10000,
        11900,
    )
    assert figures.tax_inclusive


def test_an_amount_off_is_spread_over_the_lines_to_the_last_unit():
    figures = pricing.compute(
        [(100, 1), (100, 1), (100, 1)], "jpy", discount=Discount(amount_off=100)
    )
    assert [line.discount for line in figures.lines] == [34, 33, 33]
    assert figures.gross == 200


def test_a_discount_never_exceeds_the_subtotal():
    figures = pricing.compute([(500, 1)], "usd", discount=Discount(amount_off=900))
    assert figures.discount == 500
    assert figures.gross == 0


def test_halves_round_up():
    assert pricing.line_tax(10, Tax(Decimal(5), inclusive=False)) == 1  # 0.5 -> 1
    assert pricing.line_tax(30, Tax(Decimal(5), inclusive=False)) == 2  # 1.5 -> 2


@given(
    lines=st.lists(
        st.tuples(st.integers(0, 1_000_000), st.integers(1, 50)), min_size=1, max_size=6
    ),
    percent=st.decimals(0, 100, places=4),
    inclusive=st.booleans(),
    off=st.one_of(st.integers(0, 10_000_000), st.decimals(0, 100, places=2)),
)
def test_the_figures_always_add_up(lines, percent, inclusive, off):
    discount = Discount(amount_off=off) if isinstance(off, int) else Discount(percent_off=off)
    figures = pricing.compute(lines, "usd", tax=Tax(percent, inclusive), discount=discount)
    assert sum(line.discount for line in figures.lines) == figures.discount
    assert figures.net + figures.tax == figures.gross
    assert sum(line.total for line in figures.lines) == figures.gross
    if inclusive:
        assert figures.gross == figures.subtotal - figures.discount
    else:
        assert figures.net == figures.subtotal - figures.discount
