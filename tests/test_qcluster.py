"""A real ``manage.py qcluster``: the invoice email reaches an SMTP server and an overdue
invoice turns Expired, with nothing run by hand; and Stripe's deliveries kept by real
gunicorn workers killed with SIGKILL are applied once.

The cluster is a separate process, so it gets its own database: a SQLite file here, or
a fresh PostgreSQL database on the server in ``DATABASE_URL``. The broker is django-q2's
ORM broker, or Redis when ``Q_BROKER_URL`` is set (as in CI). The test process runs the
SMTP server (aiosmtpd on loopback) and reads the database until a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.utils import SMTPServer

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 120

SETTINGS = textwrap.dedent(
    """
    import os

    import dj_database_url

    from tests.settings import *  # noqa: F403

    DATABASES = {"default": dj_database_url.parse(os.environ["QCLUSTER_TEST_DATABASE_URL"])}
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        DATABASES["default"]["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = "127.0.0.1"
    EMAIL_PORT = int(os.environ["QCLUSTER_TEST_SMTP_PORT"])
    Q_CLUSTER = {
        **Q_CLUSTER,  # noqa: F405  (ORM broker, or Redis with Q_BROKER_URL)
        "name": os.environ["QCLUSTER_TEST_NAME"],
        "sync": False,
        "workers": 2,
        "poll": 0.2,
        "timeout": 120,
        "retry": 180,
        # The guard runs the scheduler once its counter reaches 30 seconds; a 30-second
        # cycle makes that the first turn, so schedules due now run at start-up.
        "guard_cycle": 30,
    }
    """
)

SETUP = textwrap.dedent(
    """
    import json
    from datetime import timedelta

    import django

    django.setup()

    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from tests.utils import make_account, make_invoice, make_site
    from wagtail_client_billing.tasks import queue_invoice_email

    site = make_site("qcluster.example", title="Cluster Client")
    account = make_account("acct_qcluster")
    with transaction.atomic():
        invoice = make_invoice(site, account, email="client@qcluster.example")
        queue_invoice_email(invoice)  # async_task once this commits
    overdue = make_invoice(
        site, account, email="late@qcluster.example",
        expires_at=timezone.now() - timedelta(minutes=5),
    )
    call_command("client_billing_schedules")
    print(json.dumps({"invoice": invoice.pk, "overdue": overdue.pk, "url": invoice.get_pay_url()}))
    """
)


class Database:
    """A database of its own for the cluster, and plain reads from the test process."""

    def __init__(self, tmp_path: Path) -> None:
        base = os.environ.get("DATABASE_URL", "")
        self.postgres = base.startswith(("postgres://", "postgresql://"))
        if self.postgres:
            parts = urlsplit(base)
            self.admin_url = base
            self.name = f"wcb_qcluster_{uuid.uuid4().hex[:12]}"
            self.url = urlunsplit(parts._replace(path=f"/{self.name}"))
        else:
            self.path = tmp_path / "qcluster.sqlite3"
            self.url = f"sqlite:///{self.path}"

    def create(self) -> None:
        if self.postgres:
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if self.postgres:
            import psycopg

            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def one(self, sql: str, params: tuple) -> tuple | None:
        if self.postgres:
            import psycopg

            with psycopg.connect(self.url) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchone()
        import sqlite3

        with sqlite3.connect(self.path, timeout=30) as conn:
            return conn.execute(sql, params).fetchone()


@pytest.fixture
def cluster_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], Database]]:
    broker = os.environ.get("Q_BROKER_URL")
    if broker:
        import redis

        try:
            redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
        except redis.RedisError as exc:
            pytest.skip(f"Q_BROKER_URL is set but Redis does not answer there: {exc}")
    (tmp_path / "qcluster_settings.py").write_text(SETTINGS)
    (tmp_path / "setup_data.py").write_text(SETUP)
    database = Database(tmp_path)
    database.create()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "qcluster_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "QCLUSTER_TEST_DATABASE_URL": database.url,
        "QCLUSTER_TEST_NAME": f"wcb_test_{uuid.uuid4().hex[:8]}",
    }
    try:
        yield env, database
    finally:
        database.drop()


def run(args: list[str], env: dict[str, str], timeout: int = 600) -> str:
    result = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def start_cluster(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``manage.py qcluster`` in a session of its own, its output in ``log_path``."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "django", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers are ours to stop, and only they
        )


def stop(process: subprocess.Popen) -> None:
    """SIGTERM lets the sentinel stop its workers; kill the group only if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_qcluster_delivers_the_email_and_expires_the_overdue_invoice(cluster_env, tmp_path):
    env, database = cluster_env
    with SMTPServer() as smtp:
        env["QCLUSTER_TEST_SMTP_PORT"] = str(smtp.port)
        run(["-m", "django", "migrate", "--noinput", "-v", "0"], env)
        made = json.loads(run([str(tmp_path / "setup_data.py")], env).strip().splitlines()[-1])

        log_path = tmp_path / "qcluster.log"
        cluster = start_cluster(env, log_path)
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            delivered = expired = sent = False
            while time.monotonic() < deadline and not (delivered and expired and sent):
                assert cluster.poll() is None, log_path.read_text()
                delivered = any(m["To"] == "client@qcluster.example" for m in smtp.messages)
                row = database.one(
                    "SELECT status FROM wagtail_client_billing_invoice WHERE id = ?",
                    (made["overdue"],),
                )
                expired = row is not None and row[0] == "expired"
                row = database.one(
                    "SELECT email_status FROM wagtail_client_billing_invoice WHERE id = ?",
                    (made["invoice"],),
                )
                sent = row is not None and row[0] == "sent"
                time.sleep(0.25)  # polling interval, not an assertion
        finally:
            stop(cluster)

    report = log_path.read_text()
    assert delivered, f"no email reached the SMTP server:\n{report}"
    assert sent, f"the invoice's email status did not become sent:\n{report}"
    assert expired, f"the overdue invoice was not expired by the schedule:\n{report}"
    (message,) = [m for m in smtp.messages if m["To"] == "client@qcluster.example"]
    assert made["url"] in message.get_body(("plain",)).get_content()
    assert message["Subject"].startswith("Invoice INV-")


LOST_TASKS_SETUP = textwrap.dedent(
    """
    import json

    import django

    django.setup()

    from django.db import transaction

    from tests.utils import make_account, make_invoice, make_site
    from wagtail_client_billing.tasks import queue_invoice_email

    site = make_site("inflight.example", title="In Flight")
    account = make_account("acct_inflight")
    with transaction.atomic():
        for n in range(%(count)d):
            queue_invoice_email(make_invoice(site, account, email=f"client{n}@inflight.example"))
    """
)

RESUME = textwrap.dedent(
    """
    import django

    django.setup()

    from wagtail_client_billing.tasks import resume_abandoned_emails

    print(resume_abandoned_emails())
    """
)

#: Seconds django-q2 lets a task run (and so the claim lease) in the crash test.
SHORT_TIMEOUT = 5


def test_emails_in_flight_when_a_redis_qcluster_is_killed_are_all_sent(cluster_env, tmp_path):
    """``kill -9`` of the cluster while it works through a batch of invoice emails: the
    tasks its workers held and the ones it had fetched from Redis and not started are
    gone from the broker. The resume sweep finds every one from the database, and a new
    cluster sends each email."""
    env, database = cluster_env
    if not os.environ.get("Q_BROKER_URL"):
        pytest.skip("the ORM broker hands a lost task out again by itself; this is Redis's case")
    import redis

    count = 12
    (tmp_path / "qcluster_settings.py").write_text(
        SETTINGS
        + f'Q_CLUSTER = {{**Q_CLUSTER, "timeout": {SHORT_TIMEOUT}, "retry": {SHORT_TIMEOUT + 2}}}\n'
    )
    (tmp_path / "setup_data.py").write_text(LOST_TASKS_SETUP % {"count": count})
    (tmp_path / "resume.py").write_text(RESUME)
    broker = redis.Redis.from_url(os.environ["Q_BROKER_URL"])
    queue_key = f"django_q:{env['QCLUSTER_TEST_NAME']}:q"

    def waiting() -> tuple[int, int]:
        """Emails still queued: all of them, and those no worker ever claimed."""
        row = database.one(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN email_attempts = 0 THEN 1 ELSE 0 END), 0) "
            "FROM wagtail_client_billing_invoice WHERE email_status = ?",
            ("queued",),
        )
        assert row is not None
        return int(row[0]), int(row[1])

    def logs() -> str:
        return "\n".join(p.read_text() for p in sorted(tmp_path.glob("qcluster*.log")))

    with SMTPServer() as smtp:
        smtp.delay = 1.0  # a slow relay: the workers are busy, the rest wait in the cluster
        env["QCLUSTER_TEST_SMTP_PORT"] = str(smtp.port)
        run(["-m", "django", "migrate", "--noinput", "-v", "0"], env)
        run([str(tmp_path / "setup_data.py")], env)
        assert broker.llen(queue_key) == count

        first = start_cluster(env, tmp_path / "qcluster-1.log")
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while time.monotonic() < deadline and not smtp.messages:
                assert first.poll() is None, logs()
                time.sleep(0.1)  # polling interval, not an assertion
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # sentinel, pusher, workers, all at once
            first.wait(timeout=10)
        killed_at = time.monotonic()
        queued, never_claimed = waiting()
        in_redis = broker.llen(queue_key)
        assert smtp.messages, f"no email was sent before the kill:\n{logs()}"
        # The cluster had fetched tasks it never started: the broker has lost them.
        assert never_claimed > in_redis, (queued, never_claimed, in_redis)

        # The sweep's schedule comes round once claims and queue times are a lease old.
        while time.monotonic() < killed_at + SHORT_TIMEOUT + 1:
            time.sleep(0.2)  # waiting out the lease in real time: the workers read the clock
        run([str(tmp_path / "resume.py")], env)

        second = start_cluster(env, tmp_path / "qcluster-2.log")
        try:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while time.monotonic() < deadline and waiting()[0]:
                assert second.poll() is None, logs()
                time.sleep(0.25)  # polling interval, not an assertion
        finally:
            stop(second)

    assert waiting()[0] == 0, f"emails still queued after the sweep:\n{logs()}"
    delivered = sorted({m["To"] for m in smtp.messages})
    assert delivered == sorted(f"client{n}@inflight.example" for n in range(count))
    # Twice only for a worker killed after the server accepted and before it was recorded.
    assert len(smtp.messages) <= count + 2


WEBHOOK_SETUP = textwrap.dedent(
    """
    import json

    import django

    django.setup()

    from tests.utils import connect, make_account, make_invoice, make_site
    from tests.webhook_helpers import completed

    site = make_site("gunicorn.example")
    account = make_account("acct_test_gunicorn")
    connect(site, account)
    events = []
    for n in range(%(count)d):
        invoice = make_invoice(site, account, checkout_session_id=f"cs_test_a1gunicorn{n}")
        events.append(completed(invoice, invoice.checkout_session_id, payment_intent=f"pi_{n}"))
    print(json.dumps(events))
    """
)

RESUME_WEBHOOKS = textwrap.dedent(
    """
    from datetime import timedelta

    import django

    django.setup()

    from django.db.models import F

    from wagtail_client_billing.models import WebhookDelivery
    from wagtail_client_billing.tasks import resume_received_webhook_events

    # The sweep's schedule comes round once the deliveries are older than the task
    # timeout: they were kept ten minutes ago. (Moving this process's clock instead
    # would date the ORM broker's tasks in the future, out of the cluster's reach.)
    WebhookDelivery.objects.update(received_at=F("received_at") - timedelta(minutes=10))
    print(resume_received_webhook_events())
    """
)


def test_webhook_deliveries_held_by_killed_gunicorn_workers_are_applied_once(cluster_env, tmp_path):
    """Real gunicorn workers keep and acknowledge each delivery, holding their batches
    for the queue; ``kill -9`` of every worker loses the batches, not the deliveries:
    the resume sweep queues them, a qcluster stores each event once (each of them was
    delivered twice) and pays each invoice once."""
    import http.client

    from tests.test_dev_command import free_port
    from wagtail_client_billing.testing.webhooks import sign_payload

    env, database = cluster_env
    count = 6
    # Batches that only the process's exit would send: SIGKILL gives it none.
    (tmp_path / "qcluster_settings.py").write_text(
        SETTINGS
        + "WAGTAIL_CLIENT_BILLING = {**WAGTAIL_CLIENT_BILLING, "
        + '"WEBHOOK_QUEUE_BATCH": 1000, "WEBHOOK_QUEUE_DELAY": 3600}\n'
    )
    (tmp_path / "setup_data.py").write_text(WEBHOOK_SETUP % {"count": count})
    (tmp_path / "resume.py").write_text(RESUME_WEBHOOKS)
    env["QCLUSTER_TEST_SMTP_PORT"] = "1"  # receipts fail and are retried: not this test's
    run(["-m", "django", "migrate", "--noinput", "-v", "0"], env)
    events = json.loads(run([str(tmp_path / "setup_data.py")], env).strip().splitlines()[-1])

    def count_of(sql: str, params: tuple = ()) -> int:
        row = database.one(sql, params)
        assert row is not None
        return int(row[0])

    port = free_port()
    with open(tmp_path / "gunicorn.log", "w") as log:
        web = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable, "-m", "gunicorn", "django.core.wsgi:get_wsgi_application()",
                "--bind", f"127.0.0.1:{port}", "--workers", "2",
                "--worker-class", "gthread", "--threads", "2", "--log-level", "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # the arbiter and its workers are ours to kill
        )  # fmt: skip
    try:
        statuses = []
        deadline = time.monotonic() + DEADLINE_SECONDS
        for event in events * 2:  # every event delivered twice
            body = json.dumps(event).encode()
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    conn.request(
                        "POST",
                        "/billing/stripe/webhook/",
                        body,
                        {
                            "Content-Type": "application/json",
                            "Stripe-Signature": sign_payload(body, "whsec_test_suite"),
                        },
                    )
                    statuses.append(conn.getresponse().status)
                    break
                except ConnectionRefusedError:  # gunicorn still starting
                    assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                    time.sleep(0.2)  # polling interval, not an assertion
    finally:
        os.killpg(web.pid, signal.SIGKILL)  # the arbiter and every worker, all at once
        web.wait(timeout=10)

    assert statuses == [200] * (2 * count), (tmp_path / "gunicorn.log").read_text()
    deliveries = "SELECT COUNT(*) FROM wagtail_client_billing_webhookdelivery"
    assert count_of(deliveries) == 2 * count  # kept, acknowledged, never queued
    assert count_of("SELECT COUNT(*) FROM wagtail_client_billing_webhookevent") == 0

    assert run([str(tmp_path / "resume.py")], env).strip() == str(2 * count)
    log_path = tmp_path / "qcluster.log"
    cluster = start_cluster(env, log_path)
    paid = "SELECT COUNT(*) FROM wagtail_client_billing_invoice WHERE status = ?"
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline and count_of(paid, ("paid",)) < count:
            assert cluster.poll() is None, log_path.read_text()
            time.sleep(0.25)  # polling interval, not an assertion
    finally:
        stop(cluster)

    assert count_of(paid, ("paid",)) == count, log_path.read_text()
    assert count_of(deliveries) == 0
    assert count_of(
        "SELECT COUNT(*) FROM wagtail_client_billing_webhookevent WHERE outcome = ?",
        ("processed",),
    ) == count  # fmt: skip
    assert count_of(
        "SELECT COUNT(*) FROM wagtail_client_billing_clientbillinglogentry WHERE action = ?",
        ("wagtail_client_billing.paid",),
    ) == count  # fmt: skip
