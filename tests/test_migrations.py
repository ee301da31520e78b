"""Data: nothing is ever hard-deleted by the app, and its migrations are complete,
reversible, and are set-based on a table of 30,000 invoices (SQLite and PostgreSQL)."""

from __future__ import annotations

import ast
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import ProtectedError
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.utils import connect, make_account, make_invoice, make_site, make_user
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    Invoice,
    InvoiceLine,
    Payment,
    StripeAccount,
    WebhookEvent,
)

APP = "wagtail_client_billing"
PACKAGE = Path(__file__).resolve().parent.parent / APP
LARGE = 30_000

#: ``.delete()`` calls the package may make, by file and receiver: none of them on the
#: app's records. Schedules are django-q2's; the Stripe call deletes a test account on
#: Stripe (the record stays, marked deauthorized); ``lifecycle.delete`` is the soft delete,
#: and ``billing.invoices.delete`` the domain's call of it.
ALLOWED_DELETES = {
    ("tasks.py", "duplicate"),
    ("tasks.py", "existing"),
    # install_schedules removes the django-q2 schedules of earlier releases.
    ("tasks.py", "Schedule.objects.filter(name=name)"),
    ("gateway.py", "client.v1.accounts"),
    ("billing/invoices.py", "lifecycle"),
    ("views/admin_invoices.py", "invoices"),
    # The rollup's rebuild empties the rollup (figures derived from the invoices).
    ("rollup.py", "rollup_model.objects.all()"),
    # A merge removes the merged-away client once its invoices moved (PROTECT keeps a
    # client with invoices), and a second Stripe customer id on the same account (kept
    # in the merge's log entry).
    ("billing/clients.py", "other"),
    ("billing/clients.py", "customer"),
    # A webhook delivery, once a worker stored it as an event (the event is the record).
    ("webhooks/intake.py", "WebhookDelivery.objects.filter(pk__in=admitted)"),
}


def delete_calls() -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(("migrations/", "testing/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("delete", "_raw_delete", "bulk_delete", "truncate")
            ):
                found.add((relative, ast.unparse(node.func.value)))
    return found


def test_the_package_never_hard_deletes_its_records():
    """Every ``.delete()`` in the package is on something that is not an invoice, an
    event or an account; a new one must be added here on purpose, after review."""
    calls = delete_calls()
    assert calls, "the scan found nothing: it is broken"
    unexpected = calls - ALLOWED_DELETES
    assert not unexpected, f"hard deletes to review: {sorted(unexpected)}"


@pytest.mark.django_db
def test_every_delete_like_action_keeps_every_row(client, stripe_emulator, settings):
    from wagtail_client_billing import gateway
    from wagtail_client_billing.testing.webhooks import build_event

    client.force_login(make_user("root", superuser=True))
    state = gateway.create_account(
        test_mode=True,
        country="US",
        privacy_policy_url="https://agency.example/privacy",
        terms_of_service_url="https://agency.example/terms",
        site_url="https://data.example/",
        idempotency_key="wcb-test-data",
    )
    site = make_site("data.example")
    account = make_account(state.id)
    connect(site, account)
    invoices = [make_invoice(site, account, email=f"c{i}@example.com") for i in range(4)]
    payload = build_event("charge.refunded", {"id": "ch_1"}, account=account.stripe_id)
    WebhookEvent.objects.create(
        event_id=payload["id"], type=payload["type"], payload=payload, invoice=invoices[0]
    )

    def counts():
        return (
            Invoice.objects.count(),
            WebhookEvent.objects.count(),
            StripeAccount.objects.count(),
            ClientBillingLogEntry.objects.count() > 0 or True,
        )

    before = counts()
    ns = "wagtail_client_billing_invoices"
    client.post(reverse(f"{ns}:delete", args=[invoices[0].pk]))
    client.post(
        reverse("wagtail_bulk_action", args=[APP, "invoice", "delete"])
        + f"?id={invoices[1].pk}&id={invoices[2].pk}"
    )
    Invoice.objects.filter(pk=invoices[3].pk).update(status="paid")
    client.post(reverse(f"{ns}:delete", args=[invoices[3].pk]))  # refused: paid
    client.post(
        reverse(
            "wagtail_client_billing_connect:unlink", kwargs={"site_pk": site.pk, "mode": "test"}
        ),
        {"delete_on_stripe": "on"},
    )

    assert counts() == before
    statuses = sorted(Invoice.objects.values_list("status", flat=True))
    assert statuses == ["deleted", "deleted", "deleted", "paid"]
    assert ClientBillingSettings.for_site(site).test_account is None
    with pytest.raises(ProtectedError):  # a site with invoices cannot take them with it
        site.delete()


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = StringIO()
    call_command("makemigrations", APP, "--check", "--dry-run", stdout=out)


def _migrate(target: str | None) -> float:
    """Migrate the app to ``target`` (a migration name, or None for zero); seconds taken."""
    started = time.monotonic()
    executor = MigrationExecutor(connection)
    if target is None:
        plan_target = [(APP, None)]
    elif target == "latest":
        plan_target = [key for key in executor.loader.graph.leaf_nodes() if key[0] == APP]
    else:
        plan_target = [(APP, target)]
    executor.loader.build_graph()
    executor.migrate(plan_target)
    return time.monotonic() - started


def _migrations() -> list[str]:
    executor = MigrationExecutor(connection)
    return sorted(name for app, name in executor.loader.disk_migrations if app == APP)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_every_migration_reverses_and_reapplies():
    """One step at a time down to zero and up again, after which the app works: a new
    invoice gets the first number and the admin's listing answers."""
    names = _migrations()
    assert names[0] == "0001_initial"
    for name in reversed(names[:-1]):
        _migrate(name)  # one step back at a time
    _migrate(None)
    assert "wagtail_client_billing_invoice" not in connection.introspection.table_names()
    for name in names:
        _migrate(name)  # and forward again, one step at a time
    assert "wagtail_client_billing_invoice" in connection.introspection.table_names()
    site, account = make_site("after.example"), make_account("acct_after")
    assert make_invoice(site, account).number == "INV-000001"
    client = Client()
    client.force_login(make_user("root", superuser=True))
    listing = client.get(reverse("wagtail_client_billing_invoices:list"))
    assert listing.status_code == 200
    assert "INV-000001" in listing.text


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_apps_log_entries_move_to_their_own_table_and_back():
    """Entries written to Wagtail's ModelLogEntry before the app had its own log table
    keep showing in the invoice's history after the upgrade, and go back on a downgrade."""
    from wagtail.log_actions import log
    from wagtail.models import ModelLogEntry

    from wagtail_client_billing.models import ClientBillingLogEntry

    invoice = make_invoice(make_site("log.example"), make_account("acct_log"))
    log(instance=invoice, action="wagtail_client_billing.created", data={"amount": 1})
    _migrate("0005_invoice_checkout_amounts")
    old = ModelLogEntry.objects.get(object_id=str(invoice.pk))
    assert (old.action, old.data, old.label) == (
        "wagtail_client_billing.created",
        {"amount": 1},
        invoice.number,
    )
    _migrate("latest")
    assert not ModelLogEntry.objects.filter(object_id=str(invoice.pk)).exists()
    [entry] = ClientBillingLogEntry.objects.for_instance(invoice)
    assert (entry.action, entry.data, entry.label) == (old.action, old.data, old.label)
    assert entry.timestamp == old.timestamp


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_sites_invoice_count_moves_to_its_counter_and_back():
    """A site keeps numbering where it was across the upgrade (the count leaves the
    settings row) and across a downgrade (it goes back there)."""
    counted, unsaved = make_site("counted.example"), make_site("unsaved.example")
    account = make_account("acct_counted")
    make_invoice(unsaved, account)
    _migrate("0007_lost_tasks_and_withdrawn_sessions")
    old_apps = (
        MigrationExecutor(connection)
        .loader.project_state((APP, "0007_lost_tasks_and_withdrawn_sessions"))
        .apps
    )
    Settings = old_apps.get_model(APP, "ClientBillingSettings")
    Settings.objects.update_or_create(site_id=counted.pk, defaults={"last_invoice_sequence": 41})
    # A count behind the site's invoices (written back by a settings save) is caught up.
    Settings.objects.filter(site_id=unsaved.pk).update(last_invoice_sequence=0)

    _migrate("latest")
    assert make_invoice(counted, account).number == "INV-000042"
    assert make_invoice(unsaved, account).number == "INV-000002"

    _migrate("0007_lost_tasks_and_withdrawn_sessions")
    counts = dict(Settings.objects.values_list("site_id", "last_invoice_sequence"))
    assert (counts[counted.pk], counts[unsaved.pk]) == (42, 2)
    _migrate("latest")
    assert make_invoice(counted, account).number == "INV-000043"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_deauthorization_logged_before_the_upgrade_is_not_logged_again():
    """The event id that a log entry held moves to the account, so the event redelivered
    (or reprocessed) after the upgrade adds no second entry."""
    from tests.webhook_helpers import account_event, post_event
    from wagtail_client_billing import webhooks

    names = _migrations()
    ours = next(n for n in names if n.endswith("_account_past_due_and_deauthorization_event"))
    before = names[names.index(ours) - 1]
    site, account = make_site("upgrade.example"), make_account("acct_test_upgrade")
    connect(site, account)
    application = {"id": "ca_platform", "object": "application", "name": "Agency"}
    event = account_event("account.application.deauthorized", application, account.stripe_id)
    post_event(Client(), event)
    entries = ClientBillingLogEntry.objects.filter(
        object_id=str(account.pk), action="wagtail_client_billing.account_unlinked"
    )
    assert entries.count() == 1

    _migrate(before)  # the entry is all a site upgrading has
    _migrate("latest")

    account.refresh_from_db()
    assert account.deauthorized_event_id == event["id"]
    webhooks.process(WebhookEvent.objects.get(event_id=event["id"]).pk, force=True)
    assert entries.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_renewals_states_and_settled_debits_before_the_upgrade_are_not_applied_again():
    """A renewal counted, a subscription state recorded and a bank debit settled before
    the upgrade are found again from the log and the stored events, so each event
    redelivered (or reprocessed) after it changes nothing."""
    from tests.webhook_helpers import (
        async_result,
        completed,
        post_event,
        session_event,
        stripe_invoice_obj,
        subscription_obj,
    )
    from wagtail_client_billing import webhooks

    names = _migrations()
    ours = next(n for n in names if n.endswith("_subscription_renewal_and_idempotency_columns"))
    before = names[names.index(ours) - 1]
    site, account = make_site("upgrade.example"), make_account("acct_test_upgrade")
    connect(site, account)
    monthly = make_invoice(site, account, billing_type="monthly", subscription_id="sub_test_up")
    once = make_invoice(site, account, checkout_session_id="cs_test_upgrade")
    now = int(timezone.now().timestamp())
    renewal = session_event(
        "invoice.paid",
        monthly,
        stripe_invoice_obj(monthly, "sub_test_up", "subscription_cycle", "in_test_up"),
    )
    newer = subscription_obj(monthly, "sub_test_up", "past_due")
    older = subscription_obj(monthly, "sub_test_up", "active")
    client = Client()
    post_event(client, renewal)
    post_event(client, session_event("customer.subscription.updated", monthly, newer, created=now))
    post_event(client, async_result(once, "cs_test_upgrade", succeeded=False))

    _migrate(before)  # the log entry and the stored events are all a site upgrading has
    _migrate("latest")

    monthly.refresh_from_db()
    assert monthly.renewals.get().stripe_invoice_id == "in_test_up"
    assert monthly.subscription_state_at is not None
    once.refresh_from_db()
    assert once.delayed_payment_resolved_session == "cs_test_upgrade"

    webhooks.process(WebhookEvent.objects.get(event_id=renewal["id"]).pk, force=True)
    post_event(
        client, session_event("customer.subscription.updated", monthly, older, created=now - 100)
    )
    post_event(client, completed(once, "cs_test_upgrade", paid=False))
    monthly.refresh_from_db()
    assert (monthly.renewals_paid, monthly.subscription_status) == (1, "past_due")
    assert (
        ClientBillingLogEntry.objects.filter(
            object_id=str(monthly.pk), action="wagtail_client_billing.renewal_paid"
        ).count()
        == 1
    )
    once.refresh_from_db()
    assert once.status == "pending"


def _insert_many(model, count: int, *, site_id: int, account_id: int, now) -> None:
    """``count`` invoices in one ``INSERT ... SELECT`` over a generated series: the
    database makes the rows (seconds), not 100,000 Python objects (a minute)."""
    qn = connection.ops.quote_name
    varying = {
        "token": "'tok' || CAST(n AS VARCHAR(20))",
        "sequence": "n + 1",
        "number": "'INV-' || CAST(n + 1 AS VARCHAR(20))",
        "email": "'client' || CAST(n AS VARCHAR(20)) || '@example.com'",
        "amount": "1000 + n",
        "description": "'Invoice ' || CAST(n AS VARCHAR(20))",
        "status": "CASE n - (n / 4) * 4 WHEN 0 THEN 'pending' WHEN 1 THEN 'paid' "
        "WHEN 2 THEN 'expired' ELSE 'deleted' END",
    }
    fixed = {
        "site": site_id,
        "account": account_id,
        "test_mode": True,
        "currency": "USD",
        "success_url": "https://large.example/thanks",
        "cancel_url": "https://large.example/cancel",
        "created_at": now,
        "expires_at": now + timedelta(hours=24),
    }
    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(qn(field.column))
        if field.name in varying:
            values.append(varying[field.name])
            continue
        if field.name in fixed:
            value = fixed[field.name]
        elif field.null:
            value = None
        else:
            value = field.get_default()
        values.append("%s")
        params.append(field.get_db_prep_save(value, connection))
    if connection.vendor == "postgresql":
        series = "SELECT n FROM generate_series(0, %s) AS n"
    else:
        series = (
            "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < %s) "
            "SELECT n FROM s"
        )
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM ({series}) AS series"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, count - 1])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migrations_back_and_forth_are_set_based_on_30000_invoices():
    """Every migration after the first, down and up again, on a table of 30,000 rows: statements independent of the rows."""
    names = _migrations()
    site, account = make_site("large.example"), make_account("acct_large")
    now = timezone.now()
    _migrate(names[0])
    executor = MigrationExecutor(connection)
    historical = executor.loader.project_state((APP, names[0])).apps.get_model(APP, "Invoice")
    _insert_many(historical, LARGE, site_id=site.pk, account_id=account.pk, now=now)

    with CaptureQueriesContext(connection) as statements:
        _migrate("latest")
        if len(names) > 1:
            _migrate(names[0])
        _migrate("latest")

    assert Invoice.objects.count() == LARGE
    assert Invoice.objects.filter(status="paid").count() == LARGE // 4
    # Set-based data migrations: a migration that rewrote the table row by row would
    # run at least one statement per invoice. Statements, not seconds, so a busy
    # machine cannot fail it (the time is the benchmarks' business).
    assert len(statements) < LARGE // 10, len(statements)
    # Clean up here: flushing the rows is the test runner's slowest path.
    InvoiceLine.objects.all()._raw_delete(connection.alias)
    Payment.objects.all()._raw_delete(connection.alias)  # the paid ones' backfilled payments
    Invoice.objects.all()._raw_delete(connection.alias)
