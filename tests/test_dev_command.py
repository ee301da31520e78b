"""``manage.py client_billing_dev``: every part answers, and Ctrl-C leaves nothing behind.

The command runs as a developer runs it, in the example project (``make demo``'s), as a
process of its own on free ports, against a migrated SQLite file. The test reaches each
part over the network (the dev server, the emulator, the SMTP sink and its mail log),
has the emulator sign a webhook that the app must accept, has the qcluster send an
email that must land in the mail log, then sends SIGINT as a terminal's Ctrl-C would
and checks the command exits 0, printed no traceback and left no process alive.

The parts it is made of (the SMTP sink, the mail log, the settings it gives its
children, its refusals) are tested in this process below.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.management import CommandError, call_command
from wagtail.models import Page, Site

from wagtail_client_billing.conf import SQLITE_OPTIONS
from wagtail_client_billing.devserver import config
from wagtail_client_billing.devserver.mailsink import MailSink
from wagtail_client_billing.management.commands.client_billing_dev import Command

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
#: A loaded 2-core machine imports Wagtail slowly: generous, and polled.
STARTUP_SECONDS = 240
STOP_SECONDS = 45


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)
    return result


def get(url: str, data: dict | None = None) -> tuple[int, bytes]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- the processes, read from /proc ------------------------------------------------------------


def processes() -> dict[int, tuple[int, int, int, str]]:
    """Every process: pid -> (parent pid, process group, start time, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # it ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[19]), cmdline)
    return found


def descendants(pid: int) -> dict[int, tuple[int, int, int, str]]:
    table = processes()
    family, grew = {pid}, True
    while grew:
        grew = False
        for child, (parent, *_rest) in table.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    family.discard(pid)
    return {p: table[p] for p in family}


# --- the command, running -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "postgres" in os.environ.get("DATABASE_URL", ""):
        pytest.skip("runs the example project on its own SQLite file: the SQLite run covers it")
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads the process table from /proc (Linux)")
    path = tmp_path_factory.mktemp("dev-command") / "template.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=EXAMPLE,
        env=example_env(path),
        check=True,
        timeout=600,
    )
    return path


def example_env(database: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STRIPE_", "Q_", "DJANGO_", "EMAIL_", "CACHE_", "CLIENT_BILLING"))
        and key not in ("DATABASE_URL", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER")
    }
    env["DATABASE_URL"] = f"sqlite:///{database}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


class Running:
    """The command as a process of its own, its output collected line by line."""

    def __init__(self, database: Path, state_dir: Path) -> None:
        self.ports = SimpleNamespace(
            web=free_port(), emulator=free_port(), smtp=free_port(), mail=free_port()
        )
        self.database = database
        self.lines: list[str] = []
        self.errors = b""
        # Its own session, as a terminal's foreground job is apart from this test run:
        # the SIGINT below reaches the command and nothing else.
        self.process = subprocess.Popen(  # noqa: S603 (our own command)
            [
                sys.executable,
                "manage.py",
                "client_billing_dev",
                "--port",
                str(self.ports.web),
                "--emulator-port",
                str(self.ports.emulator),
                "--smtp-port",
                str(self.ports.smtp),
                "--mail-port",
                str(self.ports.mail),
                "--state-dir",
                str(state_dir),
                "--fix-site",
                "--no-input",
            ],
            cwd=EXAMPLE,
            env=example_env(database),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.decode("utf-8", "replace"))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.errors = self.process.stderr.read()

    @property
    def output(self) -> str:
        return "".join(self.lines) + self.errors.decode("utf-8", "replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"the command exited with {self.process.returncode}:\n{self.output}")
            return any("| ready:" in line for line in self.lines)

        wait_until(ready, "the command to print its links", STARTUP_SECONDS)

    def kill(self) -> None:
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def running(migrated_db: Path, tmp_path: Path) -> Iterator[Running]:
    database = tmp_path / "db.sqlite3"
    shutil.copy(migrated_db, database)
    command = Running(database, tmp_path / "state")
    yield command
    if command.process.poll() is None:
        command.kill()


def test_every_part_answers_and_ctrl_c_stops_them_all(running: Running) -> None:
    ports = running.ports
    running.wait_ready()
    output = running.output
    for link in (
        f"http://localhost:{ports.web}/",
        f"http://localhost:{ports.web}/admin/",
        f"http://127.0.0.1:{ports.mail}/",
        f"http://127.0.0.1:{ports.emulator}/",
    ):
        assert link in output, output

    # The dev server and the emulator answer.
    assert get(f"http://127.0.0.1:{ports.web}/admin/login/")[0] == 200
    assert get(f"http://127.0.0.1:{ports.emulator}/_emulator/events")[0] == 200

    # The emulator signs with a secret the app accepts, and posts where the app listens.
    emulator = f"http://127.0.0.1:{ports.emulator}/_emulator"
    event = {"type": "account.updated", "object": {"id": "acct_dev_unknown", "object": "account"}}
    assert get(f"{emulator}/events", {**event, "account": "acct_dev_unknown"})[0] == 200

    def delivered() -> list[dict]:
        deliveries = json.loads(get(f"{emulator}/deliveries")[1])["deliveries"]
        return [d for d in deliveries if d["event_type"] == "account.updated"]

    delivery = wait_until(delivered, "the webhook's delivery")[0]
    assert delivery["status"] == 200, delivery

    # What reaches the SMTP sink shows in the mail log, with its links.
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = "Direct", "a@dev.test", "b@dev.test"
    message.set_content("Pay at http://localhost:8000/billing/pay/direct/ please.")
    with smtplib.SMTP("127.0.0.1", ports.smtp, timeout=10) as smtp:
        smtp.send_message(message)

    # The qcluster runs tasks, and its mail goes to the sink (the dev settings' email).
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django_q.tasks import async_task; async_task('django.core.mail.send_mail', "
            "'From the cluster', 'Link: http://localhost:8000/billing/pay/queued/', "
            "'billing@dev.test', ['client@dev.test'])",
        ],
        cwd=EXAMPLE,
        env=example_env(running.database),
        check=True,
        timeout=300,
    )

    def mail_log() -> dict[str, list[str]]:
        messages = json.loads(get(f"http://127.0.0.1:{ports.mail}/messages.json")[1])["messages"]
        subjects = {m["subject"]: m["links"] for m in messages}
        return subjects if "From the cluster" in subjects else {}

    subjects = wait_until(mail_log, "the qcluster's email in the mail log", 120)
    assert subjects["Direct"] == ["http://localhost:8000/billing/pay/direct/"]
    assert subjects["From the cluster"] == ["http://localhost:8000/billing/pay/queued/"]
    status, page = get(f"http://127.0.0.1:{ports.mail}/")
    assert status == 200 and b"From the cluster" in page

    # The qcluster, the dev server (reloader and server) and the emulator are running.
    family = descendants(running.process.pid)
    commands = [command for *_rest, command in family.values()]
    assert sum("qcluster" in c for c in commands) >= 3, commands  # the cluster and its workers
    assert sum("runserver" in c for c in commands) == 2, commands  # the reloader, the server
    assert sum("stripe_emulator" in c for c in commands) == 1, commands
    groups = {group for _parent, group, _start, _command in family.values()}

    started = time.monotonic()
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=STOP_SECONDS) == 0, running.output
    took = time.monotonic() - started

    # Nothing is left: no process of the family, none in its process groups.
    time.sleep(0.5)
    table = processes()
    left = [
        (pid, info[3])
        for pid, info in table.items()
        if (pid in family and info[2] == family[pid][2]) or info[1] in groups
    ]
    assert left == [], left
    assert "Traceback" not in running.output, running.output
    assert "| stopped" in running.output
    assert took < STOP_SECONDS

    # --fix-site pointed the fresh project's localhost:80 Site at the dev server.
    with sqlite3.connect(running.database) as db:
        ports_of_localhost = db.execute(
            "SELECT port FROM wagtailcore_site WHERE hostname = 'localhost'"
        ).fetchall()
    assert ports_of_localhost == [(ports.web,)]


# --- the parts, in this process -----------------------------------------------------------------


@pytest.fixture
def sink() -> Iterator[MailSink]:
    sink = MailSink("127.0.0.1", 0, 0).start()
    yield sink
    sink.stop()


def test_the_sink_takes_what_djangos_smtp_backend_sends_with_a_login(sink: MailSink) -> None:
    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend",
        host="127.0.0.1",
        port=sink.smtp_port,
        username="site-user",
        password="anything",
        timeout=10,
    )
    message = EmailMultiAlternatives(
        "Invoice INV-000001",
        "Pay here: https://client.example/billing/pay/tok123/\n.\n..a line with dots\n",
        "Agency <billing@agency.example>",
        ["ana@client.example"],
        connection=connection,
    )
    message.attach_alternative(
        "<p><a href='https://client.example/billing/pay/tok123/'>Pay</a> — 12,50&nbsp;€</p>",
        "text/html",
    )
    assert message.send() == 1

    [received] = sink.log.messages()
    assert received.subject == "Invoice INV-000001"
    assert received.envelope_to == ("ana@client.example",)
    assert received.links == ("https://client.example/billing/pay/tok123/",)
    # Dot-stuffing is undone: the lines read as sent.
    assert "\n.\n..a line with dots" in received.text.replace("\r\n", "\n")
    assert "— 12,50&nbsp;€" in received.html  # UTF-8 both ways


def test_the_mail_log_lists_shows_and_serves_each_message(sink: MailSink) -> None:
    with smtplib.SMTP("127.0.0.1", sink.smtp_port, timeout=10) as smtp:
        smtp.sendmail(
            "a@dev.test",
            ["b@dev.test"],
            b"Subject: <script>x</script>\r\n\r\nSee http://localhost:8000/billing/pay/abc/.\r\n",
        )
    base = f"http://127.0.0.1:{sink.web_port}"

    status, index = get(f"{base}/")
    assert status == 200
    assert b"&lt;script&gt;x&lt;/script&gt;" in index and b"<script>x" not in index
    assert b"http://localhost:8000/billing/pay/abc/" in index  # the trailing dot is not a link's
    status, page = get(f"{base}/messages/1/")
    assert status == 200 and b"billing/pay/abc/" in page
    status, raw = get(f"{base}/messages/1.eml")
    assert status == 200 and raw.startswith(b"Subject: <script>")
    assert json.loads(get(f"{base}/messages.json")[1])["messages"][0]["links"] == [
        "http://localhost:8000/billing/pay/abc/"
    ]
    assert get(f"{base}/messages/2/")[0] == 404


def test_the_children_get_the_emulator_a_test_key_a_secret_and_the_sink(settings) -> None:
    """A project that configured none of it: the plan fills each gap, and says so."""
    settings.WAGTAIL_CLIENT_BILLING = {"CURRENCIES": ["EUR"]}
    project = SimpleNamespace(
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"},
            "other": {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"timeout": 5}},
            "memory": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "pg": {"ENGINE": "django.db.backends.postgresql"},
        },
        ALLOWED_HOSTS=["www.example.com"],
        DEBUG=True,
    )

    plan = config.plan(project, api_base="http://127.0.0.1:1", smtp_host="127.0.0.1", smtp_port=2)

    assert plan.webhook_secret == config.DEV_WEBHOOK_SECRET
    assert plan.patches["WAGTAIL_CLIENT_BILLING"] == {
        "STRIPE_API_BASE": "http://127.0.0.1:1",
        "STRIPE_TEST_SECRET_KEY": config.DEV_TEST_SECRET_KEY,
        "STRIPE_TEST_WEBHOOK_SECRETS": [config.DEV_WEBHOOK_SECRET],
    }
    assert plan.patches["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (plan.patches["EMAIL_HOST"], plan.patches["EMAIL_PORT"]) == ("127.0.0.1", 2)
    # The options the W010 check asks for, where the project set none of its own; an
    # in-memory database is one process's alone.
    assert plan.patches["DATABASES"] == {
        "default": {"OPTIONS": SQLITE_OPTIONS},
        "other": {
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
        },
    }
    assert plan.patches["Q_CLUSTER"]["orm"] == "default"
    assert plan.patches["ALLOWED_HOSTS"] == ["www.example.com", "127.0.0.1"]
    assert len(plan.notes) == 6  # one per patch, each SQLite database its own
    json.dumps(plan.patches)  # they travel to the children as JSON

    # Applied the way the children's settings module applies them.
    namespace = {
        "WAGTAIL_CLIENT_BILLING": dict(settings.WAGTAIL_CLIENT_BILLING),
        "DATABASES": project.DATABASES,
    }
    config.apply(namespace, plan.patches)
    assert namespace["WAGTAIL_CLIENT_BILLING"]["CURRENCIES"] == ["EUR"]
    assert namespace["DATABASES"]["other"]["OPTIONS"] == {
        "timeout": 5,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }


def test_the_emulator_signs_with_the_projects_own_test_secret(settings) -> None:
    """The suite's settings name a test endpoint: its first secret is the emulator's, and
    the project's key and endpoints stay as they are."""
    plan = config.plan(settings, api_base="http://127.0.0.1:1", smtp_host="127.0.0.1", smtp_port=2)

    assert plan.webhook_secret == "whsec_test_suite"
    assert plan.patches["WAGTAIL_CLIENT_BILLING"] == {"STRIPE_API_BASE": "http://127.0.0.1:1"}
    assert "ALLOWED_HOSTS" not in plan.patches and "Q_CLUSTER" not in plan.patches


def test_a_port_in_use_is_named_before_anything_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        others = [str(free_port()) for _ in range(3)]
        with pytest.raises(CommandError, match=f"Port {port} .* --smtp-port"):
            call_command(
                "client_billing_dev",
                *("--port", others[0], "--emulator-port", others[1], "--mail-port", others[2]),
                *("--smtp-port", str(port), "--no-input"),
            )


def test_a_localhost_site_on_another_port_is_warned_about_or_fixed(db) -> None:
    """A new ``wagtail start`` project's Site is localhost:80, where nothing listens."""
    Site.objects.all().delete()
    root = Page.get_first_root_node()
    Site.objects.create(hostname="localhost", port=80, root_page=root, is_default_site=True)
    Site.objects.create(hostname="www.client.example", port=443, root_page=root)
    output = io.StringIO()
    command = Command(stdout=output)

    assert command._check_sites(8123, fix=False, interactive=False) == []
    assert "localhost:80 is not on port 8123" in output.getvalue()
    assert "--fix-site" in output.getvalue()
    assert Site.objects.get(hostname="localhost").port == 80

    assert command._check_sites(8123, fix=True, interactive=False) == ["http://localhost:8123/"]
    assert Site.objects.get(hostname="localhost").port == 8123
    assert Site.objects.get(hostname="www.client.example").port == 443  # not ours to move
