"""Races on PostgreSQL: a draft sent twice at once, sent while deleted, and sent while
other requests are created, never hands out a number twice or leaves a gap."""

from __future__ import annotations

import contextlib

import pytest
from django.db import connection

from tests.test_races import run_together
from tests.utils import connect, make_account, make_invoice, make_site, make_user
from wagtail_client_billing.billing import invoices
from wagtail_client_billing.lifecycle import TransitionNotAllowed
from wagtail_client_billing.models import Invoice, StripeAccount

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (DATABASE_URL): SQLite serialises every writer, so nothing races",
    ),
]

ROUNDS = 6


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_drafts_sent_twice_deleted_and_created_at_once_number_without_gaps_or_repeats():
    site, account = make_site("draft-races.example"), make_account("acct_test_draft_races")
    connect(site, account)
    StripeAccount.objects.filter(pk=account.pk).update(charges_enabled=True, details_submitted=True)
    editor = make_user("racer", superuser=True)
    for _ in range(ROUNDS):
        draft = make_invoice(site, account, status="draft")
        doomed = make_invoice(site, account, status="draft")

        def send(invoice=draft):
            with contextlib.suppress(invoices.NotAllowed):
                invoices.send(Invoice.objects.get(pk=invoice.pk), user=editor)

        def send_doomed(invoice=doomed):
            with contextlib.suppress(invoices.NotAllowed):
                invoices.send(Invoice.objects.get(pk=invoice.pk), user=editor)

        def delete_doomed(invoice=doomed):
            with contextlib.suppress(TransitionNotAllowed):
                invoices.delete(Invoice.objects.get(pk=invoice.pk), user=editor)

        def create():
            make_invoice(site, account)

        run_together([send, send, send_doomed, delete_doomed, create])
        draft.refresh_from_db()
        doomed.refresh_from_db()
        assert draft.status == "pending"
        # Deleted first (never numbered), or sent first and then deleted (numbered).
        assert doomed.status in ("pending", "deleted")

    numbered = list(
        Invoice.objects.filter(site=site)
        .exclude(sequence=None)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert numbered == list(range(1, len(numbered) + 1))  # no gap, no repeat
