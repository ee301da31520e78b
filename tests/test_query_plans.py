"""The three hot queries use an index on PostgreSQL: the expiry sweep's selection, the
invoice listing (newest first, per site) and the webhook's invoice look-up.

The queries are the ones the app really runs, captured while it runs them, then given
to ``EXPLAIN`` after the table holds enough rows (and ``ANALYZE`` has run) for the
planner to prefer an index wherever one fits. SQLite's planner and ``EXPLAIN`` output
are different things, so these run on PostgreSQL only.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.utils import make_account, make_site, make_user
from wagtail_client_billing import lifecycle, tasks
from wagtail_client_billing.models import Invoice
from wagtail_client_billing.webhooks.base import find_invoice

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="query plans are checked on PostgreSQL only (set DATABASE_URL); "
        "SQLite's planner and EXPLAIN output are not comparable",
    ),
]

ROWS = 50_000
TABLE = Invoice._meta.db_table


@pytest.fixture
def many_invoices():
    """``ROWS`` invoices over two sites, a tenth of them pending, then ANALYZE."""
    sites = [make_site("a.example"), make_site("b.example")]
    account = make_account()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {TABLE} (token, site_id, account_id, test_mode, sequence, number, email,
                currency, amount, description, note, billing_type, success_url, cancel_url,
                status, status_source, late_payment, payment_failure, created_at, expires_at,
                email_status, email_attempts, email_last_error, checkout_session_id,
                checkout_session_url, checkout_attempt, payment_intent_id, subscription_id,
                subscription_status, customer_id, renewals_paid, metadata)
            SELECT 'tok' || i, CASE WHEN i %% 2 = 0 THEN %s ELSE %s END, %s, true, i,
                'INV-' || i, 'client' || i || '@example.com', 'USD', 1000, '', '', 'one_time',
                'https://c.example/ok', 'https://c.example/no',
                CASE WHEN i %% 10 = 0 THEN 'pending' ELSE 'paid' END, '', false, '',
                now() - i * interval '1 minute',
                now() + (CASE WHEN i %% 10 = 0 THEN 1 ELSE -1 END) * i * interval '1 minute',
                'sent', 1, '', CASE WHEN i %% 3 = 0 THEN 'cs_test_' || i ELSE '' END, '', 0,
                '', '', '', '', 0, '{{}}'
            FROM generate_series(1, %s) AS i
            """,  # noqa: S608
            [sites[0].pk, sites[1].pk, account.pk, ROWS],
        )
        cursor.execute(f"ANALYZE {TABLE}")
    return sites


def captured(fn) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return [q["sql"] for q in ctx.captured_queries]


def plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def assert_uses_index(sql: str) -> None:
    text = plan(sql)
    assert "Index" in text, text
    assert f"Seq Scan on {TABLE}" not in text, text


def the_query(queries: list[str], *, starts: str, mentions: str = TABLE) -> str:
    matches = [q for q in queries if q.lstrip().upper().startswith(starts) and mentions in q]
    assert matches, queries
    return matches[0]


def test_expiry_sweep_selects_due_invoices_through_an_index(many_invoices):
    queries = captured(lambda: lifecycle.expire_due(now=timezone.now()))
    update = the_query(queries, starts="UPDATE")
    # EXPLAIN without ANALYZE plans the UPDATE without running it.
    assert_uses_index(update)


@pytest.mark.parametrize("sweep", ["resume_session_expiry", "resume_abandoned_emails"])
def test_the_sweeps_for_lost_work_read_through_an_index(many_invoices, sweep):
    queries = captured(getattr(tasks, sweep))
    assert_uses_index(the_query(queries, starts="SELECT"))


def test_invoice_listing_newest_first_per_site_uses_an_index(many_invoices):
    site = many_invoices[0]
    listing = Invoice.objects.for_listing().visible().filter(site=site)
    queries = captured(lambda: list(listing[:50]))
    assert_uses_index(the_query(queries, starts="SELECT"))


def test_invoice_listing_newest_first_across_sites_uses_an_index(many_invoices):
    queries = captured(lambda: list(Invoice.objects.for_listing().visible()[:50]))
    assert_uses_index(the_query(queries, starts="SELECT"))


def test_webhook_finds_its_invoice_through_an_index(many_invoices):
    pk = Invoice.objects.filter(status="pending").values_list("pk", flat=True).first()
    session = Invoice.objects.exclude(checkout_session_id="").values_list(
        "checkout_session_id", flat=True
    )[0]
    by_pk = captured(lambda: find_invoice(pk=pk))
    assert_uses_index(the_query(by_pk, starts="SELECT"))
    by_session = captured(lambda: find_invoice(pk=None, session_id=session))
    assert_uses_index(the_query(by_session, starts="SELECT"))


def test_listing_filtered_by_site_and_status_and_its_count_use_an_index(many_invoices):
    site = many_invoices[0]
    filtered = Invoice.objects.for_listing().filter(site=site, status="pending")
    queries = captured(lambda: (filtered.count(), list(filtered[:50])))
    for query in queries:
        assert_uses_index(query)


def test_listing_search_uses_the_trigram_indexes(many_invoices):
    from django.db.models import Q

    term = "client4242@"
    # What Wagtail's listing runs for search_fields without a search backend.
    found = Invoice.objects.for_listing().filter(
        Q(email__icontains=term) | Q(number__icontains=term) | Q(description__icontains=term)
    )
    queries = captured(lambda: (found.count(), list(found[:50])))
    for query in queries:
        text = plan(query)
        assert "wcb_invoice_email_trgm" in text, text
        assert f"Seq Scan on {TABLE}" not in text, text


@pytest.fixture
def superuser_client(client):
    client.force_login(make_user("plans-admin", superuser=True))
    return client


def listing_page_queries(client, query: str) -> list[str]:
    """The invoice-table queries of one request to the admin listing."""
    listing = reverse(Invoice.snippet_viewset.get_url_name("list"))  # type: ignore[attr-defined]
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(listing + query)
    assert response.status_code == 200
    return [q["sql"] for q in ctx.captured_queries if f'"{TABLE}"' in q["sql"]]


def test_listing_view_reads_its_page_through_an_index(superuser_client, many_invoices):
    site = many_invoices[0]
    for query in ("", f"?site={site.pk}&status=pending", "?ordering=-created_at"):
        queries = listing_page_queries(superuser_client, query)
        assert len(queries) == 2, queries  # the paginator's count, then the page
        count, page = queries
        assert_uses_index(page)
        if "site=" in query:  # the global count reads nine rows in ten: a scan is fair there
            assert_uses_index(count)


def test_listing_search_for_an_email_or_a_number_is_an_exact_indexed_match(
    superuser_client, many_invoices
):
    for term, index in (
        ("Client4242@Example.com", "wcb_invoice_email_ci"),
        ("inv-4242", None),  # not a whole number (six digits): a trigram search
        ("INV-424242", "wcb_invoice_number"),
    ):
        for sql in listing_page_queries(superuser_client, f"?q={term}"):
            text = plan(sql)
            assert f"Seq Scan on {TABLE}" not in text, text
            if index:
                assert index in text, text


def test_deleting_a_tax_rate_looks_up_its_invoices_through_an_index(many_invoices):
    """``PROTECT`` asks which invoices use the rate: the partial index over the invoices
    that have one serves it (migration 0027), not a scan of every invoice."""
    from wagtail_client_billing.models import TaxRate

    rate = TaxRate.objects.create(site=many_invoices[0], display_name="VAT", percentage=20)
    queries = captured(rate.delete)
    assert_uses_index(the_query(queries, starts="SELECT", mentions=f'FROM "{TABLE}"'))
    assert not TaxRate.objects.filter(pk=rate.pk).exists()
