"""Line items of a billing request: the form, the total, the catalogue, Checkout.

An editor adds lines (description, whole quantity, unit price, optionally from the
site's catalogue); the invoice's amount is their total in minor units, Checkout gets one
line item per line, and a request made the old way (one amount) is one line, as before.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.emulator_helpers import make_client
from tests.test_admin_invoices import form_data, form_errors, url
from tests.utils import connect, make_account, make_emulated_account, make_site, make_user
from wagtail_client_billing import gateway
from wagtail_client_billing.billing import lines as billing_lines
from wagtail_client_billing.models import Invoice, Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client):
    user = make_user("admin", superuser=True)
    client.force_login(user)
    return user


def with_lines(site, lines, **overrides) -> dict[str, str]:
    """The request form's data with ``lines`` as Wagtail's InlinePanel posts them: each a
    dict of the line form's fields, its ORDER and DELETE, and the management form."""
    data = form_data(site, amount="", description="Website package", **overrides)
    data.update({"lines-TOTAL_FORMS": str(len(lines)), "lines-INITIAL_FORMS": "0"})
    data.update({"lines-MIN_NUM_FORMS": "0", "lines-MAX_NUM_FORMS": "1000"})
    for index, line in enumerate(lines):
        fields = {"quantity": "1", "ORDER": str(index + 1), "DELETE": "", **line}
        for name, value in fields.items():
            data[f"lines-{index}-{name}"] = value
    return data


THREE = [
    {"description": "Homepage redesign", "quantity": "1", "unit_price": "1200"},
    {"description": "Hosting", "quantity": "12", "unit_price": "15"},
    {"description": "Logo variants", "quantity": "3", "unit_price": "333.33"},
]


def stored_lines(invoice: Invoice) -> list[tuple[int, str, int, int]]:
    return [
        (line.position, line.description, line.quantity, line.unit_amount)
        for line in invoice.lines.order_by("position")
    ]


def checkout_lines(invoice: Invoice) -> list[tuple[str, int, int]]:
    params = gateway.checkout_params(
        invoice,
        success_url="https://client.example/ok",
        cancel_url="https://client.example/no",
        expires_at=timezone.now() + timedelta(hours=2),
    )
    return [
        (
            item["price_data"]["product_data"]["name"],
            item["quantity"],
            item["price_data"]["unit_amount"],
        )
        for item in params["line_items"]
    ]


# --- totals in three currencies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "prices", "units", "total"),
    [
        ("USD", ("1200", "15", "333.33"), (120000, 1500, 33333), 120000 + 18000 + 99999),
        ("JPY", ("120000", "1500", "333"), (120000, 1500, 333), 120000 + 18000 + 999),
        ("KWD", ("120", "1.5", "3.33"), (120000, 1500, 3330), 120000 + 18000 + 9990),
    ],
)
def test_a_three_line_request_costs_the_sum_of_its_lines_in_minor_units(
    client, admin, connected_site, currency, prices, units, total
):
    lines = [{**line, "unit_price": price} for line, price in zip(THREE, prices, strict=True)]

    response = client.post(url("add"), with_lines(connected_site, lines, currency=currency))

    assert response.status_code == 302, form_errors(response)
    invoice = Invoice.objects.get()
    assert (invoice.currency, invoice.amount) == (currency, total)
    assert stored_lines(invoice) == [
        (0, "Homepage redesign", 1, units[0]),
        (1, "Hosting", 12, units[1]),
        (2, "Logo variants", 3, units[2]),
    ]
    assert checkout_lines(invoice) == [
        ("Homepage redesign", 1, units[0]),
        ("Hosting", 12, units[1]),
        ("Logo variants", 3, units[2]),
    ]


@pytest.mark.parametrize(
    ("currency", "price", "message"),
    [
        ("JPY", "15.5", "JPY amounts have no decimal places."),
        ("USD", "15.505", "USD amounts have at most 2 decimal places."),
        ("KWD", "1.505", "KWD amounts must end in 0"),
        ("USD", "$15", "Enter the price as a number"),
        ("USD", "", "Enter the price of one."),
    ],
)
def test_a_unit_price_the_currency_cannot_take_is_an_error_on_its_line(
    client, admin, connected_site, currency, price, message
):
    lines = [THREE[0], {**THREE[1], "unit_price": price}]

    response = client.post(url("add"), with_lines(connected_site, lines, currency=currency))

    assert response.status_code == 200
    [_first, second] = response.context["form"].formsets["lines"].forms
    assert any(message in error for error in second.errors["unit_price"]), second.errors
    assert not Invoice.objects.exists()


def test_lines_that_add_up_to_less_than_stripes_minimum_are_refused(client, admin, connected_site):
    lines = [{"description": "Sticker", "quantity": "2", "unit_price": "0.20"}]

    response = client.post(url("add"), with_lines(connected_site, lines))

    assert response.status_code == 200
    assert "The lines add up to $0.40. The minimum for USD is $0.50." in str(
        response.context["form"].non_field_errors()
    )


def test_a_line_without_a_description_or_a_quantity_of_zero_is_refused(
    client, admin, connected_site
):
    lines = [
        {"description": "", "quantity": "1", "unit_price": "10"},
        {"description": "Hosting", "quantity": "0", "unit_price": "10"},
    ]

    response = client.post(url("add"), with_lines(connected_site, lines))

    first, second = response.context["form"].formsets["lines"].forms
    assert first.errors["description"] == ["Describe the line for the client."]
    assert "quantity" in second.errors
    assert not Invoice.objects.exists()


def test_a_deleted_line_is_not_billed(client, admin, connected_site):
    lines = [THREE[0], {**THREE[1], "DELETE": "1"}]

    client.post(url("add"), with_lines(connected_site, lines))

    invoice = Invoice.objects.get()
    assert invoice.amount == 120000
    assert stored_lines(invoice) == [(0, "Homepage redesign", 1, 120000)]


def test_a_typed_amount_gives_way_to_the_lines_total(client, admin, connected_site):
    data = with_lines(connected_site, THREE[:2])
    data["amount"] = "5"  # typed before lines were added (the form disables it then)

    client.post(url("add"), data)

    assert Invoice.objects.get().amount == 120000 + 18000


# --- the quick path -----------------------------------------------------------------------------


def test_a_request_made_the_old_way_is_one_line_of_its_amount_and_description(
    client, admin, connected_site
):
    response = client.post(url("add"), form_data(connected_site))

    assert response.status_code == 302
    invoice = Invoice.objects.get()
    assert invoice.amount == 12550
    assert stored_lines(invoice) == [(0, "Website build, phase 2", 1, 12550)]
    assert billing_lines.is_quick(invoice)
    # Checkout gets what it got before lines existed: one item named by the description.
    assert checkout_lines(invoice) == [("Website build, phase 2", 1, 12550)]


def test_an_invoice_saved_without_lines_by_site_code_still_checks_out_as_one_line(
    connected_site, account
):
    invoice = Invoice.objects.create(
        site=connected_site,
        account=account,
        email="client@example.com",
        currency="USD",
        amount=4200,
        description="",
        success_url="https://client.example/ok",
        cancel_url="https://client.example/no",
        expires_at=timezone.now() + timedelta(hours=24),
    )

    assert checkout_lines(invoice) == [(invoice.number, 1, 4200)]


# --- the catalogue ------------------------------------------------------------------------------


@pytest.fixture
def hosting(connected_site):
    return Product.objects.create(
        site=connected_site,
        name="Hosting",
        description="Managed hosting, one month",
        unit_amount=1500,
        currency="USD",
    )


def test_a_catalogue_product_fills_in_a_line_and_later_edits_leave_the_invoice_alone(
    client, admin, connected_site, hosting
):
    lines = [{"product": str(hosting.pk), "description": "", "quantity": "12", "unit_price": ""}]

    response = client.post(url("add"), with_lines(connected_site, lines))
    assert response.status_code == 302, form_errors(response)
    hosting.unit_amount, hosting.description = 2500, "Premium hosting"
    hosting.save()

    invoice = Invoice.objects.get()
    assert invoice.amount == 18000
    [line] = invoice.lines.all()
    assert (line.description, line.quantity, line.unit_amount, line.product) == (
        "Managed hosting, one month",
        12,
        1500,
        hosting,
    )


def test_an_edited_description_and_price_win_over_the_products(
    client, admin, connected_site, hosting
):
    lines = [
        {
            "product": str(hosting.pk),
            "description": "Hosting (agency rate)",
            "quantity": "1",
            "unit_price": "12",
        }
    ]

    client.post(url("add"), with_lines(connected_site, lines))

    [line] = Invoice.objects.get().lines.all()
    assert (line.description, line.unit_amount) == ("Hosting (agency rate)", 1200)


def test_a_product_of_another_site_or_currency_is_refused(client, admin, connected_site, hosting):
    other = make_site("other.example")
    foreign = Product.objects.create(site=other, name="Theirs", unit_amount=100, currency="USD")
    euro = Product.objects.create(site=connected_site, name="Euro", unit_amount=100, currency="EUR")
    lines = [
        {"product": str(foreign.pk), "description": "x", "unit_price": "1"},
        {"product": str(euro.pk), "description": "y", "unit_price": "1"},
    ]

    response = client.post(url("add"), with_lines(connected_site, lines))

    first, second = response.context["form"].formsets["lines"].forms
    assert first.errors["product"] == ["This product is in another site's catalogue."]
    assert second.errors["product"] == ["This product is priced in EUR."]


def test_an_editor_is_offered_only_the_products_of_sites_they_may_bill(client, connected_site):
    from wagtail import hooks as wagtail_hooks

    from wagtail_client_billing import hooks

    other = make_site("other.example")
    connect(other, make_account("acct_other"))
    Product.objects.create(site=connected_site, name="Ours", unit_amount=100, currency="USD")
    Product.objects.create(site=other, name="Theirs", unit_amount=100, currency="USD")
    Product.objects.create(
        site=connected_site, name="Retired", unit_amount=100, currency="USD", active=False
    )
    editor = make_user(
        "editor", perms=("wagtail_client_billing.add_invoice", "wagtailadmin.access_admin")
    )
    client.force_login(editor)

    def limit(user, sites):
        return sites.filter(pk=connected_site.pk)

    with wagtail_hooks.register_temporarily(hooks.SITES_FOR_USER, limit):
        response = client.get(url("add"))
        empty = response.context["form"].formsets["lines"].empty_form

    assert [p.name for p in empty.fields["product"].queryset] == ["Ours"]


# --- send new, Checkout and recurring billing ----------------------------------------------------


def test_send_new_invoice_starts_from_the_old_ones_lines(client, admin, connected_site):
    client.post(url("add"), with_lines(connected_site, THREE[:2]))
    old = Invoice.objects.get()
    from wagtail_client_billing import lifecycle

    lifecycle.delete(old, user=admin)

    response = client.get(url("copy", old.pk))
    forms = response.context["form"].formsets["lines"].forms
    assert [(f.initial.get("unit_price"), f.instance.description) for f in forms] == [
        ("1200.00", "Homepage redesign"),
        ("15.00", "Hosting"),
    ]


def test_paying_a_three_line_invoice_charges_its_total_with_no_mismatch(
    client, admin, stripe_emulator
):
    site = make_site("lines-pay.example")
    connect(site, make_emulated_account(stripe_emulator, "lines-pay.example"))
    lines = [THREE[0], THREE[1], {**THREE[2], "unit_price": "3.33"}]
    response = client.post(url("add"), with_lines(site, lines, currency="KWD"))
    assert response.status_code == 302, form_errors(response)
    invoice = Invoice.objects.get()

    client.get(urlsplit(invoice.get_pay_url()).path)
    invoice.refresh_from_db()
    session = stripe_emulator.get_session(invoice.checkout_session_id)
    assert session["amount_subtotal"] == invoice.amount
    listed = make_client(stripe_emulator).v1.checkout.sessions.line_items.list(
        invoice.checkout_session_id, options={"stripe_account": invoice.account.stripe_id}
    )
    assert [(i.description, i.quantity, i.amount_total) for i in listed] == [
        ("Homepage redesign", 1, 1200000),
        ("Hosting", 12, 180000),
        ("Logo variants", 3, 9990),
    ]
    stripe_emulator.pay(invoice.checkout_session_id)
    stripe_emulator.deliver_pending()

    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert not invoice.amount_mismatch
    assert invoice.checkout_amount_subtotal == invoice.amount


def test_a_recurring_request_sends_every_line_at_its_interval(client, admin, connected_site):
    client.post(url("add"), with_lines(connected_site, THREE[:2], billing_type="monthly"))
    invoice = Invoice.objects.get()

    params = gateway.checkout_params(
        invoice,
        success_url="https://client.example/ok",
        cancel_url="https://client.example/no",
        expires_at=timezone.now() + timedelta(hours=2),
    )

    assert params["mode"] == "subscription"
    assert [i["price_data"]["recurring"] for i in params["line_items"]] == [
        {"interval": "month"},
        {"interval": "month"},
    ]


def test_a_recurring_request_takes_at_most_twenty_lines(client, admin, connected_site):
    lines = [{"description": f"Item {n}", "unit_price": "1"} for n in range(21)]

    response = client.post(url("add"), with_lines(connected_site, lines, billing_type="monthly"))

    assert "Stripe takes at most 20 lines on this billing type." in str(
        response.context["form"].non_field_errors()
    )


# --- the catalogue's screens ----------------------------------------------------------------------


CATALOGUE = "wagtail_client_billing_catalogue"


def test_an_editor_adds_a_product_to_a_sites_catalogue_with_a_price_in_main_units(
    client, admin, connected_site
):
    response = client.post(
        reverse(f"{CATALOGUE}:add"),
        {
            "site": str(connected_site.pk),
            "name": "Hosting",
            "description": "Managed hosting, one month",
            "currency": "KWD",
            "unit_price": "1.5",
            "active": "on",
        },
    )

    assert response.status_code == 302
    product = Product.objects.get()
    assert (product.site, product.unit_amount, product.currency) == (connected_site, 1500, "KWD")
    page = client.get(reverse(f"{CATALOGUE}:list")).content.decode()
    assert "Hosting" in page and "KWD" in page


def test_the_catalogue_shows_and_opens_only_the_products_of_the_editors_sites(client):
    from wagtail import hooks as wagtail_hooks

    from wagtail_client_billing import hooks

    ours, theirs = make_site("ours.example"), make_site("theirs.example")
    mine = Product.objects.create(site=ours, name="Ours", unit_amount=100, currency="USD")
    other = Product.objects.create(site=theirs, name="Theirs", unit_amount=100, currency="USD")
    editor = make_user(
        "editor",
        perms=(
            "wagtailadmin.access_admin",
            "wagtail_client_billing.add_product",
            "wagtail_client_billing.change_product",
        ),
    )
    client.force_login(editor)

    def limit(user, sites):
        return sites.filter(pk=ours.pk)

    with wagtail_hooks.register_temporarily(hooks.SITES_FOR_USER, limit):
        listing = client.get(reverse(f"{CATALOGUE}:list")).content.decode()
        own = client.get(reverse(f"{CATALOGUE}:edit", args=[mine.pk]))
        foreign = client.get(reverse(f"{CATALOGUE}:edit", args=[other.pk]))
        add = client.get(reverse(f"{CATALOGUE}:add"))
        history = client.get(reverse(f"{CATALOGUE}:history", args=[other.pk]))
        delete = client.post(reverse(f"{CATALOGUE}:delete", args=[other.pk]))

    assert "Ours" in listing and "Theirs" not in listing
    assert (own.status_code, foreign.status_code) == (200, 404)
    assert (history.status_code, delete.status_code) == (404, 404)
    assert Product.objects.filter(pk=other.pk).exists()
    assert list(add.context["form"].fields["site"].queryset) == [ours]


# --- what the client and the editor read -----------------------------------------------------------


def _three_line_invoice(client, site, currency="USD", prices=("1200", "15", "333.33")):
    lines = [{**line, "unit_price": price} for line, price in zip(THREE, prices, strict=True)]
    response = client.post(url("add"), with_lines(site, lines, currency=currency))
    assert response.status_code == 302, form_errors(response)
    return Invoice.objects.get()


@pytest.mark.parametrize(
    ("currency", "prices", "shown"),
    [
        ("USD", ("1200", "15", "333.33"), ("$1,200.00", "$15.00", "$999.99", "$2,379.99")),
        ("JPY", ("120000", "1500", "333"), ("¥120,000", "¥1,500", "¥999", "¥138,999")),
        (
            "KWD",
            ("120", "1.5", "3.33"),
            ("KWD120.000", "KWD1.500", "KWD9.990", "KWD147.990"),
        ),
    ],
)
def test_the_email_lists_each_line_and_the_total(
    client, admin, connected_site, currency, prices, shown
):
    from django.core import mail

    from wagtail_client_billing import emails

    invoice = _three_line_invoice(client, connected_site, currency, prices)
    mail.outbox.clear()

    emails.send_invoice_emails([invoice])

    [message] = mail.outbox
    text, html = message.body, message.alternatives[0][0]
    unit, hosting, logos, total = shown
    assert f"Homepage redesign: 1 × {unit} = {unit}" in text
    assert "Logo variants: 3 × " in text and f"= {logos}" in text
    assert f"Amount: {total}" in text
    for body in (text, html):
        assert hosting in body and total in body
    assert "What you are paying for" in html


def test_a_single_amount_email_has_no_list_of_lines(client, admin, connected_site):
    from django.core import mail

    from wagtail_client_billing import emails

    client.post(url("add"), form_data(connected_site))
    mail.outbox.clear()

    emails.send_invoice_emails([Invoice.objects.get()])

    assert "What you are paying for" not in mail.outbox[0].body


def test_the_inspect_page_lists_the_lines_and_their_total(client, admin, connected_site, hosting):
    lines = [
        {"product": str(hosting.pk), "description": "", "quantity": "12", "unit_price": ""},
        THREE[0],
    ]
    client.post(url("add"), with_lines(connected_site, lines))
    invoice = Invoice.objects.get()

    page = client.get(url("inspect", invoice.pk)).content.decode()

    assert "Managed hosting, one month" in page and "$180.00" in page
    assert "Homepage redesign" in page and "$1,380.00" in page
    assert 'class="listing wcb-lines"' in page


def test_a_single_amount_inspect_page_shows_no_lines_table(client, admin, connected_site):
    client.post(url("add"), form_data(connected_site))

    page = client.get(url("inspect", Invoice.objects.get().pk)).content.decode()

    assert "wcb-lines" not in page


# --- the exports ------------------------------------------------------------------------------------


def _csv(response) -> list[dict[str, str]]:
    import csv
    import io

    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_invoice_export_sums_up_each_invoices_lines_in_one_row(client, admin, connected_site):
    _three_line_invoice(client, connected_site)
    client.post(url("add"), form_data(connected_site, email="quick@example.com"))

    rows = _csv(client.get(url("list") + "?export=csv&ordering=created_at"))

    assert len(rows) == 2
    assert rows[0]["Amount"] == "2379.99"
    assert rows[0]["Lines"] == (
        "1 × Homepage redesign @ 1200.00; 12 × Hosting @ 15.00; 3 × Logo variants @ 333.33"
    )
    assert rows[1]["Lines"] == "1 × Website build, phase 2 @ 125.50"


def test_the_lines_export_has_a_row_per_line_of_the_listed_invoices(client, admin, connected_site):
    invoice = _three_line_invoice(client, connected_site, "JPY", ("120000", "1500", "333"))
    client.post(url("add"), form_data(connected_site, currency="EUR", amount="9"))

    rows = _csv(client.get(url("list") + "?export=csv&rows=lines&currency=JPY"))

    assert [
        (
            r["Invoice number"],
            r["Line"],
            r["Description"],
            r["Quantity"],
            r["Unit price"],
            r["Line total"],
            r["Currency"],
        )
        for r in rows
    ] == [
        (invoice.number, "1", "Homepage redesign", "1", "120000", "120000", "JPY"),
        (invoice.number, "2", "Hosting", "12", "1500", "18000", "JPY"),
        (invoice.number, "3", "Logo variants", "3", "333", "999", "JPY"),
    ]


def test_the_listing_offers_the_lines_export_with_its_filters(client, admin, connected_site):
    page = client.get(url("list") + "?currency=USD").content.decode()

    assert "Download lines CSV" in page
    assert "currency=USD&amp;export=csv&amp;rows=lines" in page


def test_site_code_creating_a_request_with_lines_gets_their_total_as_its_amount(
    connected_site, account
):
    from wagtail_client_billing.billing import invoices
    from wagtail_client_billing.models import InvoiceLine

    invoice = Invoice(
        site=connected_site,
        account=account,
        email="client@example.com",
        currency="JPY",
        amount=1,  # stale: the lines decide
        success_url="https://client.example/ok",
        cancel_url="https://client.example/no",
    )
    invoice.lines = [
        InvoiceLine(description="Translation", quantity=3, unit_amount=12000),
        InvoiceLine(description="Proofreading", quantity=1, unit_amount=5000),
    ]

    invoices.create(invoice, user=None)

    invoice = Invoice.objects.get()
    assert invoice.amount == 41000
    assert stored_lines(invoice) == [(0, "Translation", 3, 12000), (1, "Proofreading", 1, 5000)]


def test_send_new_from_a_single_amount_request_stays_a_single_amount(client, admin, connected_site):
    from wagtail_client_billing import lifecycle

    client.post(url("add"), form_data(connected_site))
    old = Invoice.objects.get()
    lifecycle.delete(old, user=admin)

    form = client.get(url("copy", old.pk)).context["form"]

    assert form.initial["amount"] == "125.50"
    assert form.formsets["lines"].forms == []
