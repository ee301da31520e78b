"""Tax rates, Stripe Tax, discounts and promotion codes on billing requests.

The check of issue 19: a request with three lines, one tax rate and a discount shows the
same net, tax and gross in the form's live total, the email, the inspect page, Checkout
(the emulator's session, which computes them from Stripe's rules in its own code) and
the export, in USD, JPY and KWD.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse

from tests.test_admin_invoices import form_errors, url
from tests.test_lines import THREE, with_lines
from tests.utils import connect, make_emulated_account, make_site, make_user
from wagtail_client_billing import gateway
from wagtail_client_billing.billing import taxes
from wagtail_client_billing.billing.checkout import checkout_url
from wagtail_client_billing.models import ClientBillingSettings, Invoice, TaxMode, TaxRate

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def taxed_site(stripe_emulator):
    site = make_site("taxed.example")
    connect(site, make_emulated_account(stripe_emulator, "taxed.example"))
    ClientBillingSettings.objects.filter(site=site).update(tax_mode=TaxMode.RATES)
    return site


def sales_tax(site, percentage="8.25", inclusive=False) -> TaxRate:
    return TaxRate.objects.create(
        site=site,
        display_name="Sales tax",
        percentage=Decimal(percentage),
        inclusive=inclusive,
        country="US",
        state="CA",
    )


def csv_rows(client) -> list[dict[str, str]]:
    response = client.get(url("list") + "?export=csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def major(minor: int, digits: int) -> str:
    return str(Decimal(minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


# The three lines of tests/test_lines.py, with 8.25% sales tax on top and 10% off.
# Worked out by hand from Stripe's rules: 10% of the subtotal rounded; shared over the
# lines by their amounts; tax per line on what is left of it, rounded.
CASES = [
    # currency, unit prices, (subtotal, discount, net, tax, gross), formatted net/tax/gross
    (
        "USD",
        ("1200", "15", "333.33"),
        (237999, 23800, 214199, 17672, 231871),
        ("$2,141.99", "$176.72", "$2,318.71"),
    ),
    (
        "JPY",
        ("120000", "1500", "333"),
        (138999, 13900, 125099, 10321, 135420),
        ("¥125,099", "¥10,321", "¥135,420"),
    ),
    (
        "KWD",
        ("120", "1.5", "3.33"),
        (147990, 14799, 133191, 10989, 144180),
        ("KWD133.191", "KWD10.989", "KWD144.180"),
    ),
]


@pytest.mark.parametrize(("currency", "prices", "minor", "shown"), CASES, ids=["USD", "JPY", "KWD"])
def test_net_tax_and_gross_agree_everywhere_the_request_shows(
    client,
    admin,
    stripe_emulator,
    taxed_site,
    django_capture_on_commit_callbacks,
    currency,
    prices,
    minor,
    shown,
):
    subtotal, discount, net, tax, gross = minor
    net_shown, tax_shown, gross_shown = shown
    digits = {"USD": 2, "JPY": 0, "KWD": 3}[currency]
    rate = sales_tax(taxed_site)
    lines = [{**line, "unit_price": price} for line, price in zip(THREE, prices, strict=True)]
    data = with_lines(
        taxed_site,
        lines,
        currency=currency,
        tax_rate=str(rate.pk),
        discount_kind="percent",
        discount_value="10",
    )

    # The form's live total.
    live = client.post(url("figures"), data).json()["rows"]
    assert dict(live) == {
        "Subtotal": live[0][1],
        "Discount 10%": live[1][1],
        "Net": net_shown,
        "Sales tax 8.25%": tax_shown,
        "Total": gross_shown,
    }

    # Sent: the stored request and its email.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("add"), data)
    assert response.status_code == 302, form_errors(response)
    invoice = Invoice.objects.get()
    assert invoice.amount == subtotal
    assert (invoice.tax_name, invoice.tax_percentage) == ("Sales tax", Decimal("8.25"))
    figures = invoice.figures
    assert (figures.subtotal, figures.discount, figures.net, figures.tax, figures.gross) == minor
    (message,) = mail.outbox
    html = message.alternatives[0][0]
    for body in (message.body, html):
        for text in (net_shown, tax_shown, gross_shown):
            assert text in body

    # The inspect page.
    page = client.get(url("inspect", invoice.pk)).content.decode()
    for text in (net_shown, tax_shown, gross_shown):
        assert text in page

    # Checkout: the emulator works the figures out itself from the rate and the coupon.
    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    session = stripe_emulator.get_session(invoice.checkout_session_id)
    assert session["amount_subtotal"] == subtotal
    assert session["total_details"]["amount_discount"] == discount
    assert session["total_details"]["amount_tax"] == tax
    assert session["amount_total"] == gross
    assert session["amount_total"] - session["total_details"]["amount_tax"] == net
    coupon = stripe_emulator.get_coupon(session["discounts"][0]["coupon"])
    assert (coupon["percent_off"], coupon["duration"]) == (10.0, "once")
    invoice.tax_rate.refresh_from_db()
    stripe_rate = stripe_emulator.get_tax_rate(
        invoice.tax_rate.stripe_ids[invoice.account.stripe_id]
    )
    assert (stripe_rate["percentage"], stripe_rate["inclusive"]) == (8.25, False)

    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert not invoice.amount_mismatch
    assert (invoice.checkout_amount_tax, invoice.checkout_amount_total) == (tax, gross)

    # The export.
    (row,) = csv_rows(client)
    assert row["Discount"] == major(discount, digits)
    assert row["Net"] == major(net, digits)
    assert row["Tax"] == major(tax, digits)
    assert row["Total"] == major(gross, digits)
    assert row["Tax rate"] == "Sales tax 8.25%"


# --- discounts ----------------------------------------------------------------------------------


def test_a_discount_that_leaves_less_than_stripes_minimum_is_a_form_error(
    client, admin, taxed_site
):
    data = with_lines(
        taxed_site,
        [{"description": "Domain", "quantity": "1", "unit_price": "1.00"}],
        discount_kind="amount",
        discount_value="0.60",
    )
    response = client.post(url("add"), data)
    assert response.status_code == 200
    assert form_errors(response)["discount_value"] == [
        "With this discount the total is $0.40, under Stripe's minimum charge of $0.50."
    ]
    assert not Invoice.objects.exists()


def test_a_discount_of_the_whole_subtotal_is_refused(client, admin, taxed_site):
    response = client.post(
        url("add"),
        with_lines(taxed_site, THREE[:1], discount_kind="amount", discount_value="1200"),
    )
    assert "discount_value" in form_errors(response)


def test_an_amount_off_is_a_coupon_in_the_requests_currency(
    client, admin, stripe_emulator, taxed_site
):
    response = client.post(
        url("add"),
        with_lines(taxed_site, THREE[:2], discount_kind="amount", discount_value="100"),
    )
    assert response.status_code == 302, form_errors(response)
    invoice = Invoice.objects.get()
    assert (invoice.discount_amount, invoice.figures.gross) == (10000, 138000 - 10000)
    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    session = stripe_emulator.get_session(invoice.checkout_session_id)
    coupon = stripe_emulator.get_coupon(invoice.stripe_coupon_id)
    assert (coupon["amount_off"], coupon["currency"]) == (10000, "usd")
    assert session["amount_total"] == invoice.figures.gross


@pytest.mark.parametrize(("chosen", "renewal"), [("once", 3000), ("forever", 2700)])
def test_a_recurring_discount_applies_to_the_first_payment_or_every_payment(
    client, admin, stripe_emulator, taxed_site, chosen, renewal
):
    response = client.post(
        url("add"),
        with_lines(
            taxed_site,
            [{"description": "Care plan", "quantity": "1", "unit_price": "30"}],
            billing_type="monthly",
            discount_kind="percent",
            discount_value="10",
            discount_duration=chosen,
        ),
    )
    assert response.status_code == 302, form_errors(response)
    invoice = Invoice.objects.get()
    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    assert stripe_emulator.get_coupon(invoice.stripe_coupon_id)["duration"] == chosen
    stripe_emulator.pay(invoice.checkout_session_id)
    session = stripe_emulator.get_session(invoice.checkout_session_id)
    subscription = stripe_emulator.get_subscription(session["subscription"])
    assert session["amount_total"] == 2700  # the first payment is discounted either way
    renewed = stripe_emulator.renew_subscription(subscription["id"])
    assert renewed["amount_due"] == renewal


def test_a_one_time_discount_never_lasts_forever(client, admin, taxed_site):
    client.post(
        url("add"),
        with_lines(
            taxed_site,
            THREE[:1],
            discount_kind="percent",
            discount_value="5",
            discount_duration="forever",
        ),
    )
    assert Invoice.objects.get().discount_duration == "once"


def test_a_promotion_code_request_lets_the_client_type_one_at_checkout(
    client, admin, stripe_emulator, taxed_site
):
    response = client.post(
        url("add"), with_lines(taxed_site, THREE[:1], discount_kind="promotion_code")
    )
    assert response.status_code == 302, form_errors(response)
    invoice = Invoice.objects.get()
    # The agency made the code in its own Stripe dashboard.
    stripe = gateway.get_client(True)
    options = {"stripe_account": invoice.account.stripe_id}
    coupon = stripe.v1.coupons.create({"percent_off": 25.0, "duration": "once"}, options)
    stripe.v1.promotion_codes.create(
        {"promotion": {"coupon": coupon.id, "type": "coupon"}, "code": "SPRING"}, options
    )

    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    session = stripe_emulator.get_session(invoice.checkout_session_id)
    assert session["allow_promotion_codes"] is True
    assert session["discounts"] == []
    stripe_emulator.apply_promotion_code(invoice.checkout_session_id, "spring")
    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert invoice.checkout_amount_discount == 30000
    assert invoice.checkout_amount_total == 90000


def test_checkout_takes_a_coupon_or_promotion_codes_never_both(stripe_emulator, taxed_site):
    account = ClientBillingSettings.objects.get(site=taxed_site).test_account
    stripe = gateway.get_client(True)
    options = {"stripe_account": account.stripe_id}
    coupon = stripe.v1.coupons.create({"percent_off": 10.0}, options)
    params = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 1000,
                    "product_data": {"name": "x"},
                },
                "quantity": 1,
            }
        ],
        "success_url": "https://x.example/ok",
        "discounts": [{"coupon": coupon.id}],
        "allow_promotion_codes": True,
    }
    with pytest.raises(Exception, match="only specify one of these parameters"):
        stripe.v1.checkout.sessions.create(params, options)


# --- tax rates ----------------------------------------------------------------------------------


def rate_on_stripe(client, site) -> tuple[TaxRate, str]:
    """A rate a sent request's Checkout made on the site's account, and its Stripe id."""
    rate = sales_tax(site)
    response = client.post(url("add"), with_lines(site, THREE[:1], tax_rate=str(rate.pk)))
    assert response.status_code == 302, form_errors(response)
    client.get(urlsplit(Invoice.objects.get().get_pay_url()).path)
    rate.refresh_from_db()
    (stripe_id,) = rate.stripe_ids.values()
    return rate, stripe_id


def edit_rate(client, rate, percentage="9.5"):
    return client.post(
        reverse("wagtail_client_billing_tax_rates:edit", args=[rate.pk]),
        {
            "display_name": "Sales tax",
            "percentage": percentage,
            "inclusive": "",
            "country": "us",
            "state": "ca",
        },
    )


def test_changing_a_rate_makes_a_new_one_and_archives_the_old_on_stripe(
    client, admin, stripe_emulator, taxed_site, django_capture_on_commit_callbacks
):
    rate, old_stripe_id = rate_on_stripe(client, taxed_site)
    sent = Invoice.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        edit = edit_rate(client, rate)
    assert edit.status_code == 302

    rate.refresh_from_db()
    new = TaxRate.objects.get(active=True)
    assert (rate.active, rate.replaced_by, new.percentage) == (False, new, Decimal("9.5"))
    assert (new.country, new.state) == ("US", "CA")
    assert stripe_emulator.get_tax_rate(old_stripe_id)["active"] is False
    sent.refresh_from_db()
    assert sent.tax_percentage == Decimal("8.25")  # a sent request keeps its tax
    # The form offers the new rate only.
    form = client.get(url("add") + f"?site={taxed_site.pk}").context["form"]
    assert list(form.fields["tax_rate"].queryset) == [new]


def test_deleting_a_rate_archives_it(client, admin, taxed_site):
    rate = sales_tax(taxed_site)
    response = client.post(reverse("wagtail_client_billing_tax_rates:delete", args=[rate.pk]))
    assert response.status_code == 302
    rate.refresh_from_db()
    assert rate.active is False
    assert rate.stripe_archive_due_at is None  # never made on Stripe: nothing to archive


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_archiving_on_stripe_is_retried_while_stripe_fails(
    client, admin, stripe_emulator, taxed_site, django_capture_on_commit_callbacks, change
):
    """Stripe failing does not fail the editor's save: the rate is archived here at once,
    and archiving its Stripe tax rate is a task that records the error and tries again
    later, with a new idempotency key (Stripe replays a stored 500 to the same one)."""
    import ast

    from django_q.models import Schedule

    from wagtail_client_billing import tasks

    rate, stripe_id = rate_on_stripe(client, taxed_site)
    stripe_emulator.inject_fault("500-stored", path_prefix=f"/v1/tax_rates/{stripe_id}")

    # The suite's django-q2 runs tasks in-process: the worker's failure is raised here.
    with pytest.raises(gateway.StripeUnavailable), django_capture_on_commit_callbacks(execute=True):
        if change == "edit":
            response = edit_rate(client, rate)
        else:
            response = client.post(
                reverse("wagtail_client_billing_tax_rates:delete", args=[rate.pk])
            )

    assert response.status_code == 302
    rate.refresh_from_db()
    assert rate.active is False
    assert stripe_emulator.get_tax_rate(stripe_id)["active"] is True  # Stripe failed
    assert (rate.stripe_archive_attempts, rate.stripe_archive_due_at is not None) == (1, True)
    assert rate.stripe_archive_error  # recorded, in plain words
    retry = Schedule.objects.get(name=f"client_billing_archive_tax_rate_{rate.pk}_1")
    assert retry.func == "wagtail_client_billing.tasks.archive_stripe_tax_rates"

    assert tasks.archive_stripe_tax_rates(*ast.literal_eval(retry.args)) == "archived"

    assert stripe_emulator.get_tax_rate(stripe_id)["active"] is False
    rate.refresh_from_db()
    assert (rate.stripe_archive_due_at, rate.stripe_archive_error) == (None, "")
    first, second = [r for r in stripe_emulator.requests if r.path == f"/v1/tax_rates/{stripe_id}"]
    assert first.idempotency_key != second.idempotency_key
    assert tasks.archive_stripe_tax_rates(rate.pk, 2) == "not due"  # a late duplicate


def test_the_tries_run_out_and_a_lost_archive_is_found_again(
    client, admin, stripe_emulator, taxed_site, time_machine
):
    """After ``TAX_RATE_ARCHIVE_MAX_ATTEMPTS`` failures the task gives up (the error
    stays on the rate); a task lost with its worker is queued again by the sweep."""
    from datetime import timedelta

    from django.utils import timezone
    from django_q.models import Schedule

    from wagtail_client_billing import tasks

    rate, stripe_id = rate_on_stripe(client, taxed_site)
    TaxRate.objects.filter(pk=rate.pk).update(active=False, stripe_archive_due_at=timezone.now())
    stripe_emulator.inject_fault("500", count=100, path_prefix=f"/v1/tax_rates/{stripe_id}")
    last = tasks.TAX_RATE_ARCHIVE_MAX_ATTEMPTS - 1
    with pytest.raises(gateway.GatewayError):
        tasks.archive_stripe_tax_rates(rate.pk, last)
    rate.refresh_from_db()
    assert rate.stripe_archive_due_at is None and rate.stripe_archive_error
    assert not Schedule.objects.filter(name__startswith="client_billing_archive_tax_rate_")
    assert tasks.resume_tax_rate_archives() == 0  # given up: not found again

    with stripe_emulator.state.lock:
        stripe_emulator.state.faults.clear()
    # A task lost with its worker: due, and older than the task timeout.
    TaxRate.objects.filter(pk=rate.pk).update(stripe_archive_due_at=timezone.now())
    assert tasks.resume_tax_rate_archives() == 0  # its task may still be running
    time_machine.move_to(timezone.now() + tasks.claim_lease() + timedelta(seconds=1))
    assert tasks.resume_tax_rate_archives() == 1  # queued, and run (the suite's sync cluster)

    assert stripe_emulator.get_tax_rate(stripe_id)["active"] is False
    rate.refresh_from_db()
    assert rate.stripe_archive_due_at is None


def test_an_inclusive_rate_is_part_of_the_prices(client, admin, stripe_emulator, taxed_site):
    rate = sales_tax(taxed_site, percentage="20", inclusive=True)
    client.post(
        url("add"),
        with_lines(
            taxed_site,
            [{"description": "Design", "quantity": "1", "unit_price": "120"}],
            tax_rate=str(rate.pk),
        ),
    )
    invoice = Invoice.objects.get()
    assert (invoice.figures.net, invoice.figures.tax, invoice.figures.gross) == (
        10000,
        2000,
        12000,
    )
    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    session = stripe_emulator.get_session(invoice.checkout_session_id)
    assert (session["amount_total"], session["total_details"]["amount_tax"]) == (12000, 2000)


def test_a_site_without_tax_ignores_a_posted_rate(client, admin, taxed_site):
    rate = sales_tax(taxed_site)
    ClientBillingSettings.objects.filter(site=taxed_site).update(tax_mode=TaxMode.NONE)
    client.post(url("add"), with_lines(taxed_site, THREE[:1], tax_rate=str(rate.pk)))
    invoice = Invoice.objects.get()
    assert (invoice.tax_rate, invoice.figures.tax) == (None, 0)


# --- Stripe Tax ---------------------------------------------------------------------------------


def test_stripe_tax_is_refused_while_the_account_has_not_set_it_up(stripe_emulator, taxed_site):
    account = ClientBillingSettings.objects.get(site=taxed_site).test_account
    problem = taxes.stripe_tax_problem(account)
    assert problem is not None
    assert "Stripe Tax is not set up" in problem
    stripe_emulator.activate_stripe_tax(account.stripe_id)
    assert taxes.stripe_tax_problem(account) is None


def test_stripe_tax_is_calculated_at_checkout_and_shown_once_paid(
    client, admin, stripe_emulator, taxed_site, django_capture_on_commit_callbacks
):
    account = ClientBillingSettings.objects.get(site=taxed_site).test_account
    stripe_emulator.activate_stripe_tax(account.stripe_id)
    ClientBillingSettings.objects.filter(site=taxed_site).update(tax_mode=TaxMode.STRIPE_TAX)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("add"), with_lines(taxed_site, THREE[:1]))
    assert response.status_code == 302, form_errors(response)
    invoice = Invoice.objects.get()
    assert invoice.automatic_tax
    (message,) = mail.outbox
    assert "calculated at checkout" in message.body
    assert "$1,200.00 + tax" in message.body

    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    session = stripe_emulator.get_session(invoice.checkout_session_id)
    assert session["automatic_tax"]["enabled"] is True
    assert session["billing_address_collection"] == "required"
    assert session["tax_id_collection"]["enabled"] is True
    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()
    invoice.refresh_from_db()
    assert (invoice.checkout_amount_tax, invoice.checkout_amount_total) == (12000, 132000)
    (row,) = csv_rows(client)
    assert (row["Tax"], row["Total"], row["Tax rate"]) == ("120.00", "1320.00", "Stripe Tax")
    page = client.get(url("inspect", invoice.pk)).content.decode()
    assert "$1,320.00" in page


def test_stripe_tax_on_an_account_without_it_is_refused_by_checkout(
    client, admin, stripe_emulator, taxed_site
):
    ClientBillingSettings.objects.filter(site=taxed_site).update(tax_mode=TaxMode.STRIPE_TAX)
    client.post(url("add"), with_lines(taxed_site, THREE[:1]))
    invoice = Invoice.objects.get()
    with pytest.raises(gateway.InvalidRequest, match="Stripe Tax has not been activated"):
        checkout_url(invoice)


def test_send_new_invoice_offers_the_old_ones_discount_and_its_rate_as_it_is_now(
    client, admin, taxed_site
):
    rate = sales_tax(taxed_site)
    client.post(
        url("add"),
        with_lines(
            taxed_site,
            THREE[:1],
            tax_rate=str(rate.pk),
            discount_kind="amount",
            discount_value="12.50",
        ),
    )
    old = Invoice.objects.get()
    Invoice.objects.filter(pk=old.pk).update(status="expired")  # sent anew once expired
    new_rate = taxes.revise(rate, {"percentage": Decimal("9")})

    form = client.get(url("copy", old.pk)).context["form"]

    assert form.initial["tax_rate"] == new_rate.pk
    assert form.initial["discount_value"] == "12.50"
    assert form["discount_kind"].value() == "amount"
