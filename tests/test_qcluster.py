"""A real ``manage.py qcluster``: the invoice email reaches an SMTP server and an overdue
invoice turns Expired, with nothing run by hand.

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
        with open(log_path, "w") as log:
            cluster = subprocess.Popen(
                [sys.executable, "-m", "django", "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers are ours to stop, and only they
            )
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
