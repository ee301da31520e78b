"""Faults of the parts the app depends on, made real: the Stripe emulator failing (its
``inject_fault``) or unreachable, SMTP servers (aiosmtpd) that are down, slow, hang up
mid-message or refuse the login, and a ``qcluster`` killed with SIGKILL mid-task.

Each test checks what the people involved would notice: the client is asked to try
again in a moment (503 with ``Retry-After``), the editor reads what went wrong, the
invoice is left whole (nothing half-saved), and once the fault is gone one clean
outcome follows: one Checkout Session, one email.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from tests.utils import (
    free_port,
    make_invoice,
    make_site,
    make_user,
    use_custom_smtp,
)
from wagtail_client_billing import gateway, tasks
from wagtail_client_billing.models import (
    ClientBillingLogEntry,
    ClientBillingSettings,
    EmailStatus,
    Invoice,
    StripeAccount,
)

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]


# --- Stripe: the client's pay link ----------------------------------------------------------------


def sessions_of(emulator, invoice) -> list[dict]:
    with emulator.state.lock:
        sessions = list(emulator.state.checkout_sessions.values())
    return [s for s in sessions if (s.get("metadata") or {}).get("invoice_id") == str(invoice.pk)]


def click(client, invoice):
    return client.get(urlsplit(invoice.get_pay_url()).path)


def assert_try_again_page(response, invoice):
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    text = response.content.decode()
    assert "try again" in text.lower()
    assert invoice.email not in text and "Traceback" not in text
    assert "stripe" not in response.get("Location", "")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.checkout_session_id, invoice.checkout_session_url) == (
        "pending",
        "",
        "",
    )
    assert not ClientBillingLogEntry.objects.filter(
        object_id=str(invoice.pk), action="wagtail_client_billing.checkout_opened"
    ).exists()


@pytest.mark.parametrize("kind", ["500", "500-stored", "429", "reset"])
def test_a_stripe_fault_on_the_pay_link_asks_the_client_to_try_again_then_one_session(
    client, stripe_emulator, emulated_invoice, kind
):
    invoice = emulated_invoice
    stripe_emulator.inject_fault(kind, path_prefix="/v1/checkout/sessions")

    assert_try_again_page(click(client, invoice), invoice)

    response = click(client, invoice)  # a moment later
    assert response.status_code == 303
    (session,) = sessions_of(stripe_emulator, invoice)
    assert response["Location"] == session["url"]


def test_stripe_unreachable_asks_the_client_to_try_again(client, emulated_invoice, settings):
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",  # nothing listens: refused
    }
    assert_try_again_page(click(client, emulated_invoice), emulated_invoice)


def test_a_timeout_that_reached_stripe_is_retried_with_the_same_key_and_makes_one_session(
    client, stripe_emulator, emulated_invoice, settings
):
    """Stripe made the session but the answer came too late: the client's retry (the
    production default of network retries) replays the idempotency key, and Stripe
    answers with the session it made."""
    settings.WAGTAIL_CLIENT_BILLING = {
        **settings.WAGTAIL_CLIENT_BILLING,
        "STRIPE_MAX_NETWORK_RETRIES": 2,
    }
    invoice = emulated_invoice
    stripe_emulator.inject_fault("timeout", path_prefix="/v1/checkout/sessions")

    response = click(client, invoice)

    assert response.status_code == 303
    creates = [r for r in stripe_emulator.requests if r.path == "/v1/checkout/sessions"]
    assert len(creates) == 2
    assert creates[0].idempotency_key == creates[1].idempotency_key
    (session,) = sessions_of(stripe_emulator, invoice)
    invoice.refresh_from_db()
    assert invoice.checkout_session_id == session["id"]


def _session_creates(emulator) -> list:
    return [
        r
        for r in emulator.requests
        if r.method == "POST" and r.path == "/v1/checkout/sessions" and r.status is not None
    ]


def _until(check, timeout: float = 10.0) -> None:
    """Wait (on an event, not a sleep) until ``check()`` holds: the emulator's thread
    carries a request out on its own time."""
    waiter = threading.Event()
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the emulator never carried the request out"
        waiter.wait(0.02)


@pytest.mark.parametrize("seconds_later", [2, 400])
def test_a_click_after_a_timed_out_one_makes_no_second_payable_session(
    client, stripe_emulator, emulated_invoice, seconds_later
):
    """Without network retries the first click times out (Stripe made a session nobody
    saw) and the client clicks again, a moment later or minutes later (a session's
    expiry is rounded to five minutes, so the second click falls in another step): it
    asks with the same parameters and key, and the emulator still holds one session
    for the invoice, so there is never a second open page that could take a second
    payment."""
    invoice = emulated_invoice
    Invoice.objects.filter(pk=invoice.pk).update(expires_at=timezone.now() + timedelta(days=7))
    invoice.refresh_from_db()
    # One second before the 24-hour cap of a new session moves to the next 5-minute step.
    now = timezone.now()
    cap = (now + gateway.CHECKOUT_MAX_LIFETIME - gateway.CHECKOUT_LIFETIME_MARGIN).timestamp()
    step = gateway.CHECKOUT_EXPIRY_STEP
    first = now + timedelta(seconds=(int(cap) // step + 1) * step - cap - 1)
    stripe_emulator.inject_fault("timeout", path_prefix="/v1/checkout/sessions")

    with time_machine.travel(first, tick=True):
        assert_try_again_page(click(client, invoice), invoice)
    _until(lambda: len(_session_creates(stripe_emulator)) == 1)
    with time_machine.travel(first + timedelta(seconds=seconds_later), tick=True):
        response = click(client, invoice)

    assert response.status_code == 303
    assert len(sessions_of(stripe_emulator, invoice)) == 1
    first_request, second_request = _session_creates(stripe_emulator)
    assert second_request.idempotency_key == first_request.idempotency_key
    assert second_request.replayed


# --- Stripe: the editor ---------------------------------------------------------------------------

CONNECT_FORM = {
    "test_mode": "on",
    "country": "US",
    "privacy_policy_url": "https://agency.example/privacy",
    "terms_of_service_url": "https://agency.example/terms",
}


@pytest.mark.parametrize("kind", ["429", "reset", "refused"])
def test_a_stripe_fault_on_connect_is_shown_on_the_form_and_saves_nothing(
    client, stripe_emulator, settings, kind
):
    site = make_site("connect-fault.example")
    client.force_login(make_user("root", superuser=True))
    if kind == "refused":
        settings.WAGTAIL_CLIENT_BILLING = {
            **settings.WAGTAIL_CLIENT_BILLING,
            "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",
        }
    else:
        stripe_emulator.inject_fault(kind, path_prefix="/v1/accounts")
    page = reverse("wagtail_client_billing_connect:connect", kwargs={"site_pk": site.pk})
    client.get(page)

    response = client.post(page, CONNECT_FORM)

    assert response.status_code == 200
    text = response.content.decode()
    assert "Stripe" in text and "try again" in text.lower()
    assert "Traceback" not in text and "sk_test" not in text
    assert not StripeAccount.objects.exists()
    assert ClientBillingSettings.for_site(site).test_account is None


def test_deleting_while_stripe_is_down_withdraws_the_link_and_retries_the_session_expiry(
    client, stripe_emulator, emulated_invoice, django_capture_on_commit_callbacks
):
    """The editor's delete does not depend on Stripe: the invoice is withdrawn at once
    (its link shows a page, not Checkout), and expiring the open session on Stripe is
    retried in the background until Stripe answers."""
    from django_q.models import Schedule

    invoice = emulated_invoice
    assert click(client, invoice).status_code == 303
    invoice.refresh_from_db()
    session_id = invoice.checkout_session_id
    client.force_login(make_user("root", superuser=True))
    stripe_emulator.inject_fault("500", count=5, path_prefix=f"/v1/checkout/sessions/{session_id}")

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(
            reverse("wagtail_client_billing_invoices:delete", args=[invoice.pk]), follow=True
        )

    assert response.status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == "deleted"
    assert queued  # the session's expiry is queued for a worker, after commit
    assert Client_get(invoice).status_code == 410  # the client cannot reach Checkout any more

    # The worker runs it while Stripe fails: raised (django-q2 records it) and retried.
    with pytest.raises(gateway.StripeUnavailable):
        tasks.expire_checkout_session(invoice.pk)
    retry = Schedule.objects.get(name=f"client_billing_expire_session_{invoice.pk}_1")
    assert retry.next_run > timezone.now()
    assert stripe_emulator.get_session(session_id)["status"] == "open"

    with stripe_emulator.state.lock:
        stripe_emulator.state.faults.clear()  # Stripe is back
    tasks.expire_checkout_session(invoice.pk, 1)
    assert stripe_emulator.get_session(session_id)["status"] == "expired"
    invoice.refresh_from_db()
    assert invoice.status == "deleted"


def test_a_stripe_500_stored_for_the_session_expiry_is_retried_with_a_new_key(
    client, stripe_emulator, emulated_invoice
):
    """Stripe keeps a 500 under its idempotency key and replays it to every retry with
    that key for 24 hours: the retry the worker schedules must ask with a new key, or the
    withdrawn invoice's Checkout page stays payable until Stripe's own expiry."""
    import ast

    from django_q.models import Schedule

    invoice = emulated_invoice
    assert click(client, invoice).status_code == 303
    invoice.refresh_from_db()
    session_id = invoice.checkout_session_id
    client.force_login(make_user("root", superuser=True))
    client.post(reverse("wagtail_client_billing_invoices:delete", args=[invoice.pk]))
    stripe_emulator.inject_fault("500-stored", path_prefix=f"/v1/checkout/sessions/{session_id}")

    with pytest.raises(gateway.StripeUnavailable):
        tasks.expire_checkout_session(invoice.pk)
    retry = Schedule.objects.get(name=f"client_billing_expire_session_{invoice.pk}_1")
    tasks.expire_checkout_session(*ast.literal_eval(retry.args))  # as the worker runs it

    assert stripe_emulator.get_session(session_id)["status"] == "expired"
    first, second = [r for r in stripe_emulator.requests if r.path.endswith("/expire")]
    assert first.idempotency_key != second.idempotency_key
    invoice.refresh_from_db()
    assert invoice.status == "deleted"


def test_a_stripe_500_stored_on_connect_lets_the_editor_press_connect_again(
    client, stripe_emulator
):
    """The connect form keeps its idempotency key after a timeout (so a retry finds the
    account Stripe made), but not after a 500, which Stripe replays for that key."""
    site = make_site("connect-500.example")
    client.force_login(make_user("root", superuser=True))
    stripe_emulator.inject_fault("500-stored", path_prefix="/v1/accounts")
    page = reverse("wagtail_client_billing_connect:connect", kwargs={"site_pk": site.pk})
    client.get(page)

    failed = client.post(page, CONNECT_FORM)
    assert failed.status_code == 200 and "try again" in failed.content.decode().lower()
    assert not StripeAccount.objects.exists()

    response = client.post(page, CONNECT_FORM)  # the editor presses Connect again

    assert response.status_code == 302
    (account,) = StripeAccount.objects.all()
    assert ClientBillingSettings.for_site(site).test_account == account
    assert len(stripe_emulator.state.accounts) == 1


def Client_get(invoice):
    from django.test import Client

    return Client().get(urlsplit(invoice.get_pay_url()).path)


# --- SMTP -----------------------------------------------------------------------------------------


class FaultySMTP:
    """aiosmtpd on loopback whose next sessions misbehave as told.

    ``mode``: ``"ok"``; ``"slow"`` (answers EHLO/HELO only after ``delay`` seconds);
    ``"hangup"`` (receives the whole message, then drops the connection instead of
    answering: the message is not accepted). ``messages`` holds what was accepted.
    """

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mode = "ok"
        self.delay = 3.0
        self.messages: list[bytes] = []
        self.port = free_port()
        server = self

        class Handler:
            async def handle_EHLO(self, smtp, session, envelope, hostname, responses):
                if server.mode == "slow":
                    await asyncio.sleep(server.delay)
                session.host_name = hostname
                return responses

            async def handle_DATA(self, smtp, session, envelope):
                if server.mode == "hangup":
                    smtp.transport.close()
                    return "421 4.3.0 closing"
                server.messages.append(envelope.original_content)
                return "250 Message accepted"

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            ok = (
                login is not None
                and (
                    auth_data.login.decode(),
                    auth_data.password.decode(),
                )
                == login
            )
            return AuthResult(success=ok, handled=False)

        kwargs = {}
        if login:
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def inspect_page(client, invoice) -> str:
    response = client.get(reverse("wagtail_client_billing_invoices:inspect", args=[invoice.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def editor(client, db):
    client.force_login(make_user("root", superuser=True))
    return client


@pytest.mark.parametrize("fault", ["down", "slow", "hangup"])
def test_a_transient_smtp_fault_is_retried_shown_in_the_admin_and_sent_once(
    editor, site, account, fault, time_machine
):
    time_machine.move_to(timezone.now(), tick=True)
    with FaultySMTP() as server:
        config = use_custom_smtp(site, server, smtp_timeout=1)
        if fault == "down":
            config.smtp_port = free_port()  # nothing listens there
            config.save()
        server.mode = {"down": "ok", "slow": "slow", "hangup": "hangup"}[fault]
        invoice = make_invoice(site, account)
        tasks.queue_invoice_email(invoice)

        assert tasks.send_invoice_email(invoice.pk, 0) == "retrying"

        invoice.refresh_from_db()
        assert invoice.email_status == EmailStatus.RETRYING
        expected = {"down": "Cannot connect", "slow": "Timed out", "hangup": "closed"}[fault]
        assert expected in invoice.email_last_error
        page = inspect_page(editor, invoice)
        assert "Retrying" in page
        assert expected in page
        assert server.messages == []

        # The fault is gone; the retry (and a duplicate of it from the broker) runs.
        server.mode = "ok"
        config.smtp_port = server.port
        config.save()
        assert tasks.send_invoice_email(invoice.pk, 1) == "sent"
        assert tasks.send_invoice_email(invoice.pk, 1) == "already handled"
        assert tasks.send_invoice_email(invoice.pk, 0) == "already handled"

    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.SENT
    assert len(server.messages) == 1
    assert "Sent" in inspect_page(editor, invoice)


def test_an_smtp_login_refused_fails_at_once_is_shown_and_never_retried(editor, site, account):
    with FaultySMTP(login=("acme", "right")) as server:
        use_custom_smtp(site, server, smtp_username="acme", password="wrong")
        invoice = make_invoice(site, account)
        tasks.queue_invoice_email(invoice)

        assert tasks.send_invoice_email(invoice.pk, 0) == "failed"
        assert tasks.send_invoice_email(invoice.pk, 1) == "already handled"

    invoice.refresh_from_db()
    assert invoice.email_status == EmailStatus.FAILED
    page = inspect_page(editor, invoice)
    assert "Failed" in page and "Authentication failed" in page
    assert "wrong" not in invoice.email_last_error
    assert server.messages == []
    assert mail.outbox == []


# --- a worker killed mid-task ---------------------------------------------------------------------

#: Production values are in docs/developers-guide.md (timeout 60, retry 90); here the
#: broker hands an unacknowledged task out again after a few seconds, not a minute and a half.
KILL_SETTINGS = textwrap.dedent(
    """
    Q_CLUSTER = {**Q_CLUSTER, "timeout": 6, "retry": 8, "max_attempts": 3}  # noqa: F405
    """
)

KILL_SETUP = textwrap.dedent(
    """
    import json

    import django

    django.setup()

    from django.db import transaction

    from tests.utils import make_account, make_invoice, make_site
    from wagtail_client_billing.tasks import queue_invoice_email

    site = make_site("killed.example", title="Killed")
    account = make_account("acct_killed")
    with transaction.atomic():
        invoice = make_invoice(site, account, email="client@killed.example")
        queue_invoice_email(invoice)
    print(json.dumps({"invoice": invoice.pk}))
    """
)


class BlockingSMTP:
    """Accepts mail, except that the first message blocks (the server is hung) until the
    connection is gone; a message whose connection died is not accepted."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.blocked = threading.Event()
        self.messages: list[bytes] = []
        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                if not server.blocked.is_set():
                    server.blocked.set()
                    while not smtp.transport.is_closing():
                        await asyncio.sleep(0.1)
                    return "451 4.3.0 gone"
                server.messages.append(envelope.original_content)
                return "250 Message accepted"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def test_a_qcluster_killed_mid_send_runs_the_task_again_and_the_email_goes_once(tmp_path):
    from tests.test_qcluster import SETTINGS, Database, run, start_cluster, stop

    if os.environ.get("Q_BROKER_URL"):
        pytest.skip("django-q2's Redis broker has no delivery receipts: a killed task is lost")
    (tmp_path / "qcluster_settings.py").write_text(SETTINGS + KILL_SETTINGS)
    (tmp_path / "setup_data.py").write_text(KILL_SETUP)
    database = Database(tmp_path)
    database.create()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "qcluster_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "QCLUSTER_TEST_DATABASE_URL": database.url,
        "QCLUSTER_TEST_NAME": f"wcb_kill_{os.getpid()}",
    }

    def start(log_name):
        return start_cluster(env, tmp_path / log_name)

    def logs():
        return "\n".join(p.read_text() for p in sorted(tmp_path.glob("qcluster*.log")))

    try:
        with BlockingSMTP() as smtp:
            env["QCLUSTER_TEST_SMTP_PORT"] = str(smtp.port)
            run(["-m", "django", "migrate", "--noinput", "-v", "0"], env)
            made = json.loads(run([str(tmp_path / "setup_data.py")], env).strip().splitlines()[-1])

            first = start("qcluster-1.log")
            try:
                assert smtp.blocked.wait(60), f"the task never reached SMTP:\n{logs()}"
            finally:
                os.killpg(first.pid, signal.SIGKILL)  # sentinel, workers, all at once
                first.wait(timeout=10)
            assert smtp.messages == []

            second = start("qcluster-2.log")
            try:
                deadline = time.monotonic() + 30  # retry (8 s) + start-up, with room
                status = None
                while time.monotonic() < deadline:
                    row = database.one(
                        "SELECT email_status FROM wagtail_client_billing_invoice WHERE id = ?",
                        (made["invoice"],),
                    )
                    status = row and row[0]
                    if smtp.messages and status == "sent":
                        break
                    time.sleep(0.25)  # polling interval
                time.sleep(1)  # a duplicate run would have delivered by now
            finally:
                stop(second)
    finally:
        database.drop()

    assert len(smtp.messages) == 1, f"email delivered {len(smtp.messages)} times:\n{logs()}"
    assert status == "sent", f"email status {status}:\n{logs()}"
