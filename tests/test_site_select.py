"""The site fields and filters: every site the editor may bill for, named as everywhere
else, in the markup of Django's own ``<select>``, written without a template per option."""

from __future__ import annotations

import pytest
from django import forms
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django.asserts import assertHTMLEqual
from wagtail.models import Site

from tests.utils import make_site, make_user
from wagtail_client_billing.forms.fields import SiteChoiceField, SiteSelect
from wagtail_client_billing.models import site_display_name

pytestmark = pytest.mark.django_db

CHOICES = [("", "All"), (3, 'Fish & <Chips> "Ltd"'), (11, "b.example"), (12, "Ω site")]


@pytest.mark.parametrize("value", [None, "", 3, "11", [12], "999"])
@pytest.mark.parametrize("attrs", [None, {"id": "id_site", "required": True, "disabled": False}])
def test_the_select_is_djangos_markup(value, attrs):
    ours = SiteSelect(choices=CHOICES).render("site", value, attrs)
    djangos = forms.Select(choices=CHOICES).render("site", value, attrs)
    assertHTMLEqual(ours, djangos)
    assert "&lt;Chips&gt;" in ours and "<Chips>" not in ours


def test_the_field_offers_each_site_by_its_name_in_one_query_and_cleans_to_the_site():
    named = make_site("named.example", title="Zed & Co")
    bare = make_site("bare.example")
    Site.objects.filter(pk=bare.pk).update(site_name="")
    sites = Site.objects.filter(pk__in=[named.pk, bare.pk]).order_by("pk")
    field = SiteChoiceField(queryset=sites)

    with CaptureQueriesContext(connection) as queries:
        choices = list(iter(field.choices))  # as the widget reads them (no len(): no COUNT)
    assert len(queries) == 1
    assert choices == [("", field.empty_label), (named.pk, "Zed & Co"), (bare.pk, "bare.example")]
    assert [label for _pk, label in choices[1:]] == [site_display_name(s) for s in sites]
    assert field.clean(str(bare.pk)) == bare
    with pytest.raises(forms.ValidationError):
        field.clean("999999")


def test_the_invoice_listing_filter_lists_the_sites_and_marks_the_chosen_one(client):
    admin = make_user("sites-admin", superuser=True)
    client.force_login(admin)
    alpha, beta = make_site("alpha.example", title="Alpha <Agency>"), make_site("beta.example")
    url = reverse("wagtail_client_billing_invoices:list")

    html = client.get(url, {"site": beta.pk}).content.decode()

    assert f'<option value="{alpha.pk}">Alpha &lt;Agency&gt;</option>' in html
    assert f'<option value="{beta.pk}" selected>beta.example</option>' in html
    assert '<option value="">All</option>' in html
