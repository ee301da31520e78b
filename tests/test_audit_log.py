"""What the app writes to Wagtail's log table in bulk: the expiry sweep's one set-based
``INSERT ... SELECT`` (the only writer that goes around Wagtail's API) and the reminders'
``bulk_create`` of the log model."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from wagtail.log_actions import log

from tests.utils import make_invoice
from wagtail_client_billing import lifecycle
from wagtail_client_billing.models import ClientBillingLogEntry, Invoice

pytestmark = pytest.mark.django_db

LOG_TABLE = ClientBillingLogEntry._meta.db_table


def columns_of(field_names) -> set[str]:
    return {ClientBillingLogEntry._meta.get_field(name).column for name in field_names}


def sweep_insert_columns() -> list[str]:
    """The columns the sweep's ``INSERT ... SELECT`` names, read from the SQL it runs."""
    with CaptureQueriesContext(connection) as captured:
        lifecycle.expire_due()
    quoted = re.escape(connection.ops.quote_name(LOG_TABLE))
    (insert,) = [
        match
        for query in captured.captured_queries
        if (match := re.match(rf"\s*INSERT INTO {quoted} \(([^)]*)\)", query["sql"]))
    ]
    return [name.strip().strip('"`') for name in insert.group(1).split(",")]


def test_the_sweeps_insert_names_every_column_of_wagtails_log_model_or_leaves_it_null(
    connected_site, account
):
    """A column a new Wagtail adds to ``BaseLogEntry`` fails this until the sweep's
    writer fills it (or it is nullable and listed as left NULL on purpose)."""
    make_invoice(connected_site, account, expires_at=timezone.now() - timedelta(minutes=1))
    written = sweep_insert_columns()

    model_columns = {
        field.column
        for field in ClientBillingLogEntry._meta.concrete_fields
        if not field.primary_key
    }
    left_null = columns_of(lifecycle.LOG_BULK_LEFT_NULL)
    assert len(written) == len(set(written))
    assert set(written) == columns_of(lifecycle.LOG_BULK_COLUMNS)
    assert set(written) | left_null == model_columns
    assert set(written).isdisjoint(left_null)
    assert all(
        ClientBillingLogEntry._meta.get_field(name).null for name in lifecycle.LOG_BULK_LEFT_NULL
    )


def test_a_sweep_entry_reads_back_like_one_wagtails_log_writes(connected_site, account):
    due = make_invoice(connected_site, account, expires_at=timezone.now() - timedelta(minutes=1))
    other = make_invoice(connected_site, account)
    lifecycle.expire_due()
    log(
        instance=other,
        action=lifecycle.LOG_ACTIONS["expired"],
        data={"old": "pending", "new": "expired", "source": "sweep"},
    )

    swept = ClientBillingLogEntry.objects.for_instance(due).get()
    logged = ClientBillingLogEntry.objects.for_instance(other).get()

    for name in lifecycle.LOG_BULK_COLUMNS:
        if name in ("object_id", "label", "timestamp"):
            continue
        assert getattr(swept, name) == getattr(logged, name), name
    assert (swept.object_id, swept.label) == (str(due.pk), due.number)
    assert (swept.user, swept.uuid, swept.revision) == (None, None, None)
    assert swept.timestamp is not None
    assert Invoice.objects.get(pk=due.pk).status == "expired"
