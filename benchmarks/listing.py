"""Benchmark 2: the admin invoice listing at 100 and at 1,000,000 invoices.

Pages are requested in-process through Django's test ``Client`` logged in as a
superuser, so the time is the server's (middleware, view, queries, template), with no
network. Each page's slowest query is reported, which shows what the paginator's
``COUNT(*)`` costs on a large table.
"""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import NoReverseMatch, reverse

from .util import captured, median

#: A client with invoices at both sizes (row 42, then every 50,000th row after it): the
#: search page at 100 invoices then shows a row, like the page at N, instead of being the
#: empty page, which makes no page query (Django skips it when the count is 0).
EMAIL = "client42@example.com"


def listing_url() -> str | None:
    """The invoice listing's URL, from the viewset (None while it is not registered)."""
    reverse("wagtailadmin_home")  # importing the admin URLs registers the viewsets
    from wagtail_client_billing.models import Invoice

    viewset = getattr(Invoice, "snippet_viewset", None)
    names = [viewset.get_url_name("list")] if viewset else []
    names.append("wagtail_client_billing_invoices:list")
    for name in names:
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return None


def pages(site_id: int) -> dict[str, str]:
    url = listing_url()
    if url is None:
        return {}
    return {
        "global": url,
        # Half of all invoices are paid: a full page of rows at 100 invoices and at N,
        # so the ratio shows what the table's size costs, not rendering 48 more rows.
        "filtered": f"{url}?status=paid",
        # Selective (a tenth of the sites, pending): 2 rows at 100 invoices, a full page
        # at N, so its ratio includes rendering 48 more rows (about 1 ms each).
        "filtered_site": f"{url}?site={site_id}&status=pending",
        "search": f"{url}?q={EMAIL}",
    }


def rows(response) -> int:
    """Rows in the body of the listing's table: the invoices the page shows."""
    html = response.content.decode()
    if 'class="listing' not in html:
        return 0
    table = html.split('class="listing', 1)[1].split("</table>", 1)[0]
    return table.split("<tbody", 1)[-1].count("<tr")


def client_for_superuser() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    return client


def measure_pages(site_id: int, repeats: int) -> dict:
    urls = pages(site_id)
    if not urls:
        return {"skipped": "the invoice listing (viewsets.InvoiceViewSet) is not registered"}
    client = client_for_superuser()
    results = {}
    for name, url in urls.items():
        response = client.get(url)  # warm up: templates, translations, the session
        assert response.status_code == 200, (url, response.status_code)
        times, counts, slowest = [], [], []
        for _ in range(repeats):
            with captured() as ctx:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
            counts.append(len(ctx.captured_queries))
            top = max(ctx.captured_queries, key=lambda q: float(q["time"]))
            slowest.append((float(top["time"]), top["sql"]))
        slowest.sort()
        sql_time, sql = slowest[len(slowest) // 2]
        results[name] = {
            "url": url,
            "seconds": median(times),
            "queries": median(counts),
            "slowest_query_seconds": sql_time,
            "slowest_query": sql[:160],
            "rows": rows(response),
        }
    return results


def compare(small: dict, large: dict) -> dict:
    if "skipped" in small or "skipped" in large:
        return small if "skipped" in small else large
    out = {}
    for name, big in large.items():
        if not isinstance(big, dict):
            continue
        little = small[name]
        out[name] = {
            "small_seconds": little["seconds"],
            "large_seconds": big["seconds"],
            "time_ratio": big["seconds"] / little["seconds"],
            "small_queries": little["queries"],
            "large_queries": big["queries"],
            "queries_equal": little["queries"] == big["queries"],
            "small_rows": little.get("rows"),
            "large_rows": big.get("rows"),
            "large_slowest_query_seconds": big["slowest_query_seconds"],
            "large_slowest_query": big["slowest_query"],
        }
    return out
