"""Baselines: the least a Django view can do for the same request.

``bare_insert`` is the webhook baseline: it verifies nothing and inserts the body as one
row of a raw table. ``bare_redirect`` is the pay link's: a redirect with no query.
"""

from django.db import connection
from django.http import HttpResponse, HttpResponseRedirect
from django.views.decorators.csrf import csrf_exempt

#: The baseline's table, created by :func:`benchmarks.data.create_baseline_table`.
HIT_TABLE = "bench_hit"


@csrf_exempt
def bare_insert(request):
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {HIT_TABLE} (body) VALUES (%s)", [request.body.decode()])  # noqa: S608
    return HttpResponse(b'{"ok": true}', content_type="application/json")


def bare_redirect(request):
    return HttpResponseRedirect("https://checkout.stripe.com/c/pay/cs_test_bench", status=303)
