"""The example project, the Stripe emulator, an SMTP sink and qcluster, driven in Chromium.

Wired as ``make demo`` wires them (``manage.py client_billing_dev``), on free ports:

* the Stripe emulator as its own process (``--webhook-url`` to the live server's webhook,
  ``--webhook-secret``, ``--state-file``), once per session;
* an SMTP sink: aiosmtpd in this process, so a test reads what arrived directly
  (:class:`Mailbox`), once per session and emptied before each test;
* per test, on a fresh copy of a migrated template database (file SQLite in a temp dir,
  ``DATABASE_URL``): ``manage.py runserver --noreload`` and ``manage.py qcluster``.

Two templates are made once: ``bare`` (a superuser, an editor without this app's
permissions, one site) and ``connected`` (the same with a charges-enabled test account,
for the scenarios that start after the connect step). Copying a file is much faster
than migrating, and nothing one test does can leak into the next.

Every test here is marked ``e2e`` and skipped, saying why, when Debian's Chromium is not
installed. The browser is Chromium at ``/usr/bin/chromium`` (Playwright cannot download
its own here), headless.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXAMPLE_PROJECT = REPO / "example_project"
ARTIFACTS = HERE / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = REPO / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SKIP_REASON = "Debian's chromium is not installed: apt-get install chromium; .ci/run installs it"
AXE_MISSING = "axe-core is not installed: run `npm ci` at the repository root; .ci/run does"
WEBHOOK_SECRET = "whsec_e2e_not_secret"
VIEWPORT = {"width": 1280, "height": 800}
#: How long a test waits for something that happens in another process (a webhook, a
#: task, an email) before failing. Generous for a loaded 2-core CI machine; polled.
DEADLINE = 30.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            continue
        item.add_marker(pytest.mark.e2e)
        if not CHROMIUM.exists():
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


# --- small helpers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``check`` until it returns something truthy; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    def answers() -> bool:
        if process is not None and process.poll() is not None:
            pytest.fail(f"{' '.join(map(str, process.args))} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
        except urllib.error.HTTPError:
            return True  # it answers
        except OSError:
            return False
        return True

    wait_until(answers, f"{url} to answer", timeout)


def die_with_parent() -> None:
    """In a child: get SIGTERM when the test run dies without tearing down (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop(process: subprocess.Popen) -> None:
    """End a process this suite started, and its children (its own session)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


# --- the SMTP sink -------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What an aiosmtpd server received, read directly by the test."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def wait_for(self, to: str, containing: str = "") -> email.message.EmailMessage:
        """The first message to ``to`` whose subject or text has ``containing``."""

        def find() -> email.message.EmailMessage | None:
            with self.lock:
                messages = list(self.messages)
            for message in messages:
                if to in str(message["To"]) and (
                    containing in str(message["Subject"]) or containing in text_body(message)
                ):
                    return message
            return None

        return wait_until(find, f"an email to {to} in the SMTP sink")


def text_body(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""  # type: ignore[union-attr]


def payment_link(message: email.message.EmailMessage) -> str:
    match = re.search(r"https?://\S+/billing/pay/[^\s/]+/", text_body(message))
    assert match, f"no payment link in the email:\n{text_body(message)}"
    return match.group(0)


@pytest.fixture(scope="session")
def _smtp_sink() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def smtp_with_login() -> Iterator[tuple[Mailbox, int, tuple[str, str]]]:
    """A site's own SMTP server (plain, on loopback) that requires AUTH LOGIN/PLAIN."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    login = ("billing@client-a.example", "right-password")

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        ok = (
            isinstance(data, LoginPassword)
            and (
                data.login.decode(),
                data.password.decode(),
            )
            == login
        )
        # handled=False: aiosmtpd itself answers "535 ... credentials invalid".
        return AuthResult(success=ok, handled=False)

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield mailbox, port, login
    controller.stop()


# --- the example project's processes -------------------------------------------------------


@dataclass
class Stack:
    """The running demo for one test: addresses, the database, the sink, the emulator."""

    root: Path
    port: int
    emulator_url: str
    smtp_port: int
    mailbox: Mailbox
    database: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def env(self, database: Path | None = None) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "PYTEST_", "Q_", "STRIPE_", "EMAIL_"))
            and key != "DATABASE_URL"
        }
        env.update(
            DJANGO_SETTINGS_MODULE="example_project.settings",
            DATABASE_URL=f"sqlite:///{database or self.database}",
            STRIPE_API_BASE=self.emulator_url,
            STRIPE_TEST_WEBHOOK_SECRETS=WEBHOOK_SECRET,
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(self.smtp_port),
            WAGTAILADMIN_BASE_URL=self.base_url,
            Q_WORKERS="1",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        """Start a process of the demo; its output goes to ``<name>.log`` in the temp dir."""
        with open(self.root / f"{name}.log", "ab") as log:
            process = subprocess.Popen(  # noqa: S603 -- our own interpreter and manage.py
                [sys.executable, *command],
                cwd=EXAMPLE_PROJECT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.processes.append(process)
        return process

    def manage(self, *args: str, database: Path | None = None) -> str:
        """Run a management command against this test's database; its output."""
        result = subprocess.run(  # noqa: S603 -- our own interpreter and scripts
            [sys.executable, "manage.py", *args],
            cwd=EXAMPLE_PROJECT,
            env=self.env(database),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode:
            pytest.fail(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Read or change the test's database from the test, as another process would."""
        return self.sql_on(self.database, query, params)

    @staticmethod
    def sql_on(database: Path, query: str, params: tuple = ()) -> list[tuple]:
        connection = sqlite3.connect(database, timeout=20)
        try:
            with connection:
                return connection.execute(query, params).fetchall()
        finally:
            connection.close()

    def emulator(self, path: str, data: dict | None = None) -> Any:
        """Call one of the emulator's ``/_emulator/`` controls."""
        request = urllib.request.Request(
            self.emulator_url + path,
            data=None if data is None else json.dumps(data).encode(),
            method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def invoice_status(self, number: str) -> str:
        rows = self.sql(
            "SELECT status FROM wagtail_client_billing_invoice WHERE number = ?", (number,)
        )
        return rows[0][0] if rows else ""

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()


@dataclass
class Session:
    """What the whole session shares: ports, templates, the emulator and the sink."""

    root: Path
    stack: Stack
    templates: dict[str, Path]


def template_key() -> str:
    """Changes whenever a migrated template could differ: migrations, versions, bootstrap."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for package in ("django", "wagtail", "django-q2", "django-taggit", "django-modelcluster"):
        digest.update(f"{package}={version(package)};".encode())
    sources = [
        *sorted((REPO / "wagtail_client_billing" / "migrations").glob("*.py")),
        *sorted((EXAMPLE_PROJECT / "home" / "migrations").glob("*.py")),
        HERE / "bootstrap.py",
    ]
    for path in sources:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def build_templates(builder: Stack, root: Path, emulator_state: Path) -> dict[str, Path]:
    """Migrate once, add the people and the site, and a copy with a connected account."""
    bare = root / "bare.sqlite3"
    connected = root / "connected.sqlite3"
    builder.manage("migrate", "--noinput", database=bare)
    run_bootstrap(builder, bare, "bare", "--port", str(builder.port))
    copy_database(bare, connected)
    # The template's account.updated events have no server to go to: don't send them.
    builder.emulator("/_emulator/settings", {"webhooks_enabled": False})
    run_bootstrap(builder, connected, "connect")
    builder.emulator("/_emulator/settings", {"webhooks_enabled": True})
    (account_id,) = builder.sql_on(
        connected, "SELECT stripe_id FROM wagtail_client_billing_stripeaccount"
    )[0]
    # The emulator saves its state file every 0.2 s; wait until it holds the account.
    wait_until(
        lambda: emulator_state.exists() and account_id in emulator_state.read_text(),
        "the emulator's state file to hold the connected account",
    )
    return {"bare": bare, "connected": connected}


@pytest.fixture(scope="session")
def e2e_session(tmp_path_factory: pytest.TempPathFactory, _smtp_sink) -> Iterator[Session]:
    """Start everything once; each test gets a fresh database through :func:`fresh_stack`.

    Migrating Wagtail takes a minute on a busy 2-core machine, so the migrated templates
    (and the emulator's state, which holds the templates' connected account) are kept
    in ``tests/e2e/artifacts/templates/``, keyed by the migrations and package versions.
    """
    if not CHROMIUM.exists():
        pytest.skip(SKIP_REASON)
    mailbox, smtp_port = _smtp_sink
    root = tmp_path_factory.mktemp("e2e")
    port = free_port()
    emulator_url = f"http://127.0.0.1:{free_port()}"
    live = root / "live.sqlite3"
    stack = Stack(root, port, emulator_url, smtp_port, mailbox, live)
    emulator_state = root / "emulator.json"
    cache = ARTIFACTS / "templates" / template_key()
    cached = all((cache / name).exists() for name in TEMPLATE_FILES)
    if cached:
        for name in TEMPLATE_FILES:
            shutil.copyfile(cache / name, root / name)

    emulator = stack.start(
        "emulator",
        [
            "-m",
            "wagtail_client_billing.testing.stripe_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            emulator_url.rsplit(":", 1)[1],
            "--webhook-url",
            f"http://127.0.0.1:{port}/billing/stripe/webhook/",
            "--webhook-secret",
            WEBHOOK_SECRET,
            "--state-file",
            str(emulator_state),
            "--retry-delay",
            "0.5",
        ],
    )
    try:
        wait_for_http(f"{emulator_url}/_emulator/events", emulator)
        if cached:
            templates = {"bare": root / "bare.sqlite3", "connected": root / "connected.sqlite3"}
        else:
            templates = build_templates(stack, root, emulator_state)
            for stale in cache.parent.glob("*"):
                shutil.rmtree(stale, ignore_errors=True)
            cache.mkdir(parents=True, exist_ok=True)
            for name in TEMPLATE_FILES:
                shutil.copyfile(root / name, cache / name)
        for template in templates.values():
            # The site's port is the live server's, which is new every session.
            stack.sql_on(template, "UPDATE wagtailcore_site SET port = ?", (port,))
        copy_database(templates["bare"], live)
        server = stack.start(
            "runserver",
            ["manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        )
        stack.start("qcluster", ["manage.py", "qcluster"])
        wait_for_http(stack.url("/admin/login/"), server)
        yield Session(root, stack, templates)
    finally:
        stack.stop()


TEMPLATE_FILES = ("bare.sqlite3", "connected.sqlite3", "emulator.json")


def run_bootstrap(stack: Stack, database: Path, *args: str) -> None:
    result = subprocess.run(  # noqa: S603 -- our own interpreter and scripts
        [sys.executable, str(HERE / "bootstrap.py"), *args],
        cwd=EXAMPLE_PROJECT,
        env=stack.env(database),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode:
        pytest.fail(f"bootstrap {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def copy_database(source: Path, target: Path) -> None:
    """Copy a (WAL-mode) SQLite database with SQLite's backup API.

    Into a database the live server and qcluster have open, too: the backup takes
    SQLite's write lock and replaces every page, and their next query reads the new
    content, so the processes need no restart between tests.
    """
    src = sqlite3.connect(source, timeout=20)
    dst = sqlite3.connect(target, timeout=20)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def fresh_stack(e2e_session: Session, template: str) -> Stack:
    stack = e2e_session.stack
    copy_database(e2e_session.templates[template], stack.database)
    stack.mailbox.clear()
    return stack


@pytest.fixture
def bare_stack(e2e_session: Session) -> Stack:
    """The demo on a fresh database with people and a site, and no Stripe account yet."""
    return fresh_stack(e2e_session, "bare")


@pytest.fixture
def stack(e2e_session: Session) -> Stack:
    """The demo on a fresh database whose site has a charges-enabled test account."""
    return fresh_stack(e2e_session, "connected")


# --- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser(e2e_session: Session) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """Make browser contexts (a person each: their own cookies); closed after the test."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(viewport=VIEWPORT, locale="en-US")
        context.set_default_timeout(15_000)
        # No network here: Gravatar's avatar would be a broken image in every screenshot.
        context.route(re.compile(r"^https?://[^/]*gravatar\.com/"), serve_default_avatar)
        contexts.append(context)
        return context

    yield make
    failed = getattr(request.node, "rep_call", None)
    for index, context in enumerate(contexts):
        if failed is not None and failed.failed:
            for number, page in enumerate(context.pages):
                page.screenshot(
                    path=str(ARTIFACTS / f"FAILED-{request.node.name}-{index}-{number}.png")
                )
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def log_in(page: Any, stack: Stack, username: str, password: str) -> None:
    page.goto(stack.url("/admin/login/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(stack.url("/admin/"))


@pytest.fixture
def admin_page(stack: Stack, new_context: Callable[[], Any]) -> Any:
    """The billing editor (a superuser), logged in, on a site with a connected account."""
    page = new_context().new_page()
    log_in(page, stack, "admin", "admin")
    return page


def serve_default_avatar(route: Any) -> None:
    import wagtail

    avatar = (
        Path(wagtail.__file__).parent / "admin/static/wagtailadmin/images/default-user-avatar.png"
    )
    route.fulfill(path=str(avatar)) if avatar.exists() else route.abort()


#: Screenshots the README and docs show: ``E2E_DOCS_IMAGES=1 make e2e`` refreshes them.
DOCS_IMAGES = {
    "client-branded-de-375": "client-branded-de-375.png",
    "client-branded-ja-1280": "client-branded-ja-1280.png",
    "invoice-pdf": "invoice-pdf.png",
    "settings-stripe-connected": "settings-stripe.png",
    "settings-invoices-tab": "settings-invoices.png",
    "settings-email-error": "settings-email-test.png",
    "invoice-create": "invoice-create.png",
    "invoice-listing": "invoice-listing.png",
    "invoice-inspect": "invoice-inspect.png",
    "client-checkout": "client-checkout.png",
    "client-processing": "client-processing.png",
    "client-expired": "client-expired.png",
    "client-withdrawn": "client-withdrawn.png",
    "invoice-draft-edit": "invoice-draft-edit.png",
    "client-withdrawn-de": "client-page-de.png",
    "client-paid-fr": "client-page-fr.png",
    "portal-375": "portal-375.png",
    "portal-1280": "portal-1280.png",
}


def screenshot(page: Any, name: str) -> Path:
    """The viewport from the top of the page, into ``tests/e2e/artifacts/``."""
    path = ARTIFACTS / f"{name}.png"
    page.evaluate(
        """() => {
            // Wagtail scrolls smoothly: jump instead, or the shot is taken mid-way.
            window.scrollTo({top: 0, behavior: "instant"});
            for (const element of document.querySelectorAll("*")) {
                if (element.scrollTop) element.scrollTo({top: 0, behavior: "instant"});
            }
        }"""
    )
    page.mouse.move(0, 0)
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    if name in DOCS_IMAGES and os.environ.get("E2E_DOCS_IMAGES"):
        shutil.copyfile(path, REPO / "docs" / "images" / DOCS_IMAGES[name])
    return path


def run_axe(page: Any, exclude: list[str] | None = None) -> list[dict]:
    """axe-core's serious and critical violations on the page (``exclude``: CSS selectors)."""
    if not AXE_JS.exists():
        pytest.skip(AXE_MISSING)
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate(
        """async (exclude) => {
            const context = exclude.length ? {exclude: exclude.map((s) => [s])} : document;
            return await axe.run(context, {resultTypes: ["violations"]});
        }""",
        exclude or [],
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
