"""The status table: every status has what the screens, the log and the client need,
and everything that asks "what may happen now" answers from the table.

The first tests are the "Adding a status" checklist of ``docs/architecture.md`` as
assertions: a maintainer who added a status and forgot a part is told which.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import models
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils.translation import gettext_lazy
from wagtail.log_actions import registry

from tests.utils import make_emulated_invoice, make_invoice, make_user
from wagtail_client_billing import lifecycle, status
from wagtail_client_billing.filters import InvoiceFilterSet
from wagtail_client_billing.lifecycle import TransitionNotAllowed
from wagtail_client_billing.models import Invoice, InvoiceStatus
from wagtail_client_billing.status import STATUSES, ClientPage, Status, Tone

PACKAGE = Path(status.__file__).resolve().parent
STYLESHEET = PACKAGE / "static/wagtail_client_billing/admin/invoices.css"
PUBLIC = "wagtail_client_billing/public/"
ROWS = [pytest.param(row, id=str(row.value)) for row in STATUSES.values()]
NS = "wagtail_client_billing_invoices"

pytestmark = pytest.mark.django_db


def admin_url(name: str, invoice: Invoice) -> str:
    return reverse(f"{NS}:{name}", args=[invoice.pk])


def session_creates(emulator) -> list:
    return [r for r in emulator.requests if (r.method, r.path) == ("POST", "/v1/checkout/sessions")]


# --- the checklist ------------------------------------------------------------------------------


def test_every_status_has_one_row_and_every_row_a_status():
    assert list(STATUSES) == list(InvoiceStatus.values)


@pytest.mark.parametrize("row", ROWS)
def test_a_status_moves_only_to_statuses_the_table_knows(row):
    assert row.targets <= set(STATUSES), f"{row.value}: unknown targets"


@pytest.mark.parametrize("row", ROWS)
def test_a_status_has_a_registered_log_action(row):
    assert row.log_action.startswith("wagtail_client_billing."), row.value
    assert registry.action_exists(row.log_action), f"{row.value}: register {row.log_action}"
    assert registry.get_action_label(row.log_action) == row.log_label


def test_each_status_writes_its_own_log_action():
    actions = [row.log_action for row in STATUSES.values()]
    assert len(set(actions)) == len(actions)


@pytest.mark.parametrize("row", ROWS)
def test_a_status_the_client_cannot_pay_has_a_page_that_exists(row):
    if row.payable:
        assert row.page is None  # the payment link goes to Checkout
    else:
        assert row.page is not None, f"{row.value}: give it a client page"
        get_template(PUBLIC + row.page.template)  # raises TemplateDoesNotExist
        assert row.page.http_status in (200, 410), row.value


@pytest.mark.parametrize("row", ROWS)
def test_a_status_has_a_tone_the_stylesheet_colours(row):
    assert isinstance(row.tone, Tone), row.value
    assert f'.wcb-status[data-tone="{row.tone}"]' in STYLESHEET.read_text()


@pytest.mark.parametrize("row", ROWS)
def test_a_status_is_a_choice_of_the_field_and_the_listings_filter(row):
    field = Invoice._meta.get_field("status")
    assert isinstance(field, models.CharField)
    filter_choices = list(InvoiceFilterSet().filters["status"].field.choices)

    assert (row.value, row.label) in field.choices
    assert (row.value, row.label) in filter_choices
    assert len(row.value) <= field.max_length


def test_the_column_has_room_for_the_statuses_to_come():
    assert Invoice._meta.get_field("status").max_length >= len("partially_refunded")


@pytest.mark.parametrize("row", ROWS)
def test_a_status_that_cannot_be_deleted_says_why(row):
    assert row.deletable or str(row.refusal)


def test_a_row_must_be_payable_or_have_a_page_and_say_why_it_cannot_be_deleted():
    common = {"log_action": "x", "log_label": "x", "log_message": "x", "tone": Tone.INFO}
    with pytest.raises(ValueError, match="payable"):
        Status("a", targets=frozenset({"deleted"}), **common)
    with pytest.raises(ValueError, match="payable"):
        Status("a", targets=frozenset({"deleted"}), payable=True, page=ClientPage("a"), **common)
    with pytest.raises(ValueError, match="deleted"):
        Status("a", targets=frozenset(), page=ClientPage("a.html"), **common)


# --- everything reads the table -----------------------------------------------------------------


def test_lifecycle_moves_and_logs_by_the_table():
    assert {value: row.targets for value, row in STATUSES.items()} == lifecycle.TRANSITIONS
    assert {value: row.log_action for value, row in STATUSES.items()} == lifecycle.LOG_ACTIONS


@pytest.mark.parametrize("row", ROWS)
def test_may_this_invoice_be_deleted_has_one_answer(row, client):
    """The model, the lifecycle, the delete screen and the buttons agree with the table."""
    invoice = make_invoice(status=row.value)
    client.force_login(make_user("admin", superuser=True))
    delete_url = admin_url("delete", invoice)

    assert invoice.can_be_deleted == row.deletable
    inspect = client.get(admin_url("inspect", invoice)).content.decode()
    assert (delete_url in inspect) == row.deletable
    page = client.get(delete_url)
    assert page.context["can_be_deleted"] == row.deletable
    if row.deletable:
        assert lifecycle.delete(invoice, user=None)
    elif row.value == InvoiceStatus.DELETED:
        assert not lifecycle.delete(invoice, user=None)
        assert page.context["refusal"] == str(row.refusal)
    else:
        with pytest.raises(TransitionNotAllowed, match=str(row.refusal)):
            lifecycle.delete(invoice, user=None)
        assert page.context["refusal"] == str(row.refusal)


@pytest.mark.parametrize("row", ROWS)
def test_the_actions_offered_follow_the_tables_flags(row, client):
    invoice = make_invoice(status=row.value)
    client.force_login(make_user("admin", superuser=True))

    html = client.get(admin_url("inspect", invoice)).content.decode()

    assert (admin_url("resend", invoice) in html) == row.payable
    assert (invoice.get_pay_url() in html) == row.payable
    assert (admin_url("copy", invoice) in html) == row.withdrawn


@pytest.mark.parametrize("row", ROWS)
def test_the_tag_shows_the_label_in_the_tables_tone(row):
    invoice = make_invoice(status=row.value)

    html = render_to_string(
        "wagtail_client_billing/admin/invoices/status_tag.html", {"invoice": invoice}
    )

    assert f'data-tone="{row.tone}">{row.label}</span>' in html


@pytest.mark.parametrize("row", ROWS)
def test_the_payment_link_goes_by_the_table(row, client, stripe_emulator):
    invoice = make_emulated_invoice(stripe_emulator, f"{row.value}.example", status=row.value)

    response = client.get(urlsplit(invoice.get_pay_url()).path)

    if row.payable:
        invoice.refresh_from_db()
        assert response.status_code == 303
        assert response["Location"] == invoice.checkout_session_url
    else:
        assert row.page is not None
        assert response.status_code == row.page.http_status
        assert response.templates[0].name == PUBLIC + row.page.template
        assert not session_creates(stripe_emulator)


def test_a_status_the_table_does_not_know_never_goes_to_checkout(client, stripe_emulator):
    """A value written by a newer release (or by hand) is not payable, even with a
    Checkout Session open from when it was pending."""
    invoice = make_emulated_invoice(stripe_emulator, "unknown.example")
    path = urlsplit(invoice.get_pay_url()).path
    assert client.get(path).status_code == 303  # pending: a session is opened and recorded
    Invoice.objects.filter(pk=invoice.pk).update(status="disputed")
    asked = len(stripe_emulator.requests)

    response = client.get(path)

    assert response.status_code == 503
    assert "cannot be paid online" in response.content.decode()
    assert len(stripe_emulator.requests) == asked  # Stripe was not asked for a session


def test_a_status_added_to_the_table_is_offered_and_shown_as_the_table_says(
    client, monkeypatch, stripe_emulator
):
    """What "Adding a status" asks for, for a status held back from Checkout: its row
    reaches the client's page, the tag, the filter and the delete rule."""
    on_hold = Status(
        "on_hold",
        targets=frozenset({InvoiceStatus.PAID}),
        log_action="wagtail_client_billing.on_hold",
        log_label=gettext_lazy("On hold"),
        log_message=gettext_lazy("Put on hold"),
        tone=Tone.WARNING,
        page=ClientPage("processing.html", 200),
        refusal=gettext_lazy("An invoice on hold cannot be deleted."),
    )
    monkeypatch.setitem(STATUSES, "on_hold", on_hold)
    invoice = make_emulated_invoice(stripe_emulator, "on-hold.example", status="on_hold")

    response = client.get(urlsplit(invoice.get_pay_url()).path)
    tag = render_to_string(
        "wagtail_client_billing/admin/invoices/status_tag.html", {"invoice": invoice}
    )

    assert response.status_code == 200
    assert response.templates[0].name == PUBLIC + "processing.html"
    assert not session_creates(stripe_emulator)
    assert 'data-tone="warning"' in tag
    assert "on_hold" in dict(InvoiceFilterSet().filters["status"].field.choices)
    assert not invoice.can_be_deleted
    with pytest.raises(TransitionNotAllowed, match="on hold cannot be deleted"):
        lifecycle.delete(invoice, user=None)
