"""The README's install section, run as written, so the README and the package cannot drift.

The README marks its settings and URL snippets (``<!-- install:settings -->`` ...
``<!-- /install:settings -->`` around a fenced block). The quick tests here read them and
hold them to the system checks and to ``docs/settings.md``. The slow one,
:func:`test_the_readme_install_reaches_a_paid_invoice`, does what a new user does:

1. installs the package's wheel into a fresh venv (``WCB_WHEEL`` names a built one, as
   ``.ci/run`` does after ``make build``; without it the test builds one from the
   working tree into a temporary directory);
2. ``wagtail start mysite``, appends the settings snippet to ``mysite/settings/base.py``;
3. puts the URL snippet before Wagtail's catch-all in ``mysite/urls.py``;
4. ``migrate`` and ``createsuperuser``;
5. ``client_billing_dev`` on free ports; then, over HTTP as a browser would: logs in,
   creates a test account (the emulator's onboarding page), adds a billing request,
   takes the payment link from the SMTP sink's mail log, pays on the emulator's
   Checkout page without following its return redirect (so only the webhook can mark
   the invoice paid) and polls the project's database until the invoice is Paid; then
   stops the command with SIGINT and finds every port free again.

It takes one to three minutes (most of it ``pip``), so it is marked ``readme`` and runs
only when selected (``pytest -m readme tests/test_readme_install.py``); ``.ci/run`` does.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.utils import selected_by_marker
from wagtail_client_billing.checks import (
    SQLITE_OPTIONS,
    URLS_INCLUDE,
    check_q_cluster,
    check_settings,
    check_sqlite_options,
)
from wagtail_client_billing.conf import ENV_KEYS, parse_webhook_endpoints

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: Seconds the slow test waits for something another process does (a page, an email, a
#: webhook); polled, generous for a loaded two-core machine.
DEADLINE = 120.0
PASSWORD = "readme-not-secret"


def readme_snippet(name: str) -> str:
    """The fenced code between ``<!-- install:NAME -->`` and ``<!-- /install:NAME -->``."""
    text = README.read_text()
    marked = re.search(rf"<!-- install:{name} -->\n(.*?)<!-- /install:{name} -->", text, re.S)
    assert marked, f"README.md has no <!-- install:{name} --> block"
    fence = re.search(r"^( *)```python\n(.*?)^\1```", marked.group(1), re.S | re.M)
    assert fence, f"the install:{name} block is not a fenced python block"
    return textwrap.dedent(fence.group(2))


def install_section() -> str:
    text = README.read_text()
    start = text.index("## Install into a Wagtail site")
    return text[start : text.index("\n### ", start)]


def run_settings_snippet(environ: dict[str, str]) -> dict[str, Any]:
    """The settings snippet executed after a ``wagtail start`` project's ``base.py``."""
    namespace: dict[str, Any] = {
        "INSTALLED_APPS": ["home", "search", "wagtail", "django.contrib.admin"],
        "DATABASES": {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/db.sqlite3"}
        },
    }
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        exec(compile(readme_snippet("settings"), "README.md", "exec"), namespace)  # noqa: S102
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return namespace


# --- the README and the checks agree (quick) ---------------------------------------------------


def test_the_install_has_at_most_five_steps_ending_with_the_dev_command():
    steps = re.findall(r"^(\d+)\. ", install_section(), re.M)
    assert steps == [str(n) for n in range(1, len(steps) + 1)] and len(steps) <= 5
    last = install_section().split(f"\n{steps[-1]}. ", 1)[1]
    assert last.startswith("`python manage.py client_billing_dev`")
    for command in ("pip install wagtail-client-billing", "migrate", "createsuperuser"):
        assert command in install_section(), command  # what the slow test runs
    assert "docs/developers-guide.md" in install_section()


def test_the_readme_settings_pass_the_checks_with_nothing_in_the_environment(settings, monkeypatch):
    namespace = run_settings_snippet({})

    assert namespace["INSTALLED_APPS"][-3:] == [
        "wagtail_client_billing",
        "django_q",
        "wagtail.contrib.settings",
    ]
    assert namespace["WAGTAIL_CLIENT_BILLING"]["STRIPE_WEBHOOK_ENDPOINTS"] == []
    assert namespace["DATABASES"]["default"]["OPTIONS"] == SQLITE_OPTIONS
    settings.Q_CLUSTER = namespace["Q_CLUSTER"]
    assert check_q_cluster() == []
    from django.conf import settings as django_settings

    # Without the setting_changed signal: the test's own connection stays as it is.
    monkeypatch.setattr(django_settings, "DATABASES", namespace["DATABASES"])
    assert check_sqlite_options() == []


def test_the_readme_settings_read_both_endpoints_from_the_documented_variables(
    settings, monkeypatch
):
    environ = {
        "STRIPE_TEST_SECRET_KEY": "sk_test_readme",
        "STRIPE_LIVE_SECRET_KEY": "sk_live_readme",
        "STRIPE_TEST_WEBHOOK_SECRETS": "whsec_test_new,whsec_test_old",
        "STRIPE_LIVE_WEBHOOK_SECRETS": "whsec_live",
    }
    billing = run_settings_snippet(environ)["WAGTAIL_CLIENT_BILLING"]

    endpoints, problems = parse_webhook_endpoints(billing["STRIPE_WEBHOOK_ENDPOINTS"], [], [])
    assert problems == []
    assert [(e.name, e.live, e.connect, e.secrets) for e in endpoints] == [
        ("test Connect", False, True, ("whsec_test_new", "whsec_test_old")),
        ("live Connect", True, True, ("whsec_live",)),
    ]
    for name, value in environ.items():  # the app's own fallback reads the same names
        monkeypatch.setenv(name, value)
    settings.WAGTAIL_CLIENT_BILLING = billing
    assert check_settings() == []


def test_every_variable_the_readme_reads_is_a_documented_fallback():
    snippet = readme_snippet("settings")
    read = set(re.findall(r'os\.environ(?:\.get\(|\[)"([A-Z_]+)"', snippet))
    read |= {f"STRIPE_{mode}_WEBHOOK_SECRETS" for mode in ("TEST", "LIVE")}  # the f-string
    assert 'f"STRIPE_{mode.upper()}_WEBHOOK_SECRETS"' in snippet
    documented = (ROOT / "docs" / "settings.md").read_text()
    for name in sorted(read - {"REDIS_URL"}):
        assert name in ENV_KEYS, name
        assert f"`{name}` (env)" in documented, name


def test_the_readme_url_line_is_the_one_the_check_asks_for():
    assert readme_snippet("urls").strip() == URLS_INCLUDE + ","
    assert "before" in install_section() and 'path("", include(wagtail_urls))' in install_section()


# --- the README run as written (slow) ----------------------------------------------------------


@pytest.mark.readme
def test_the_readme_install_reaches_a_paid_invoice(request, tmp_path):
    if not selected_by_marker(request.config, "readme"):
        pytest.skip("slow (a wheel, a fresh venv, wagtail start): run with -m readme; .ci/run does")

    python = fresh_venv(tmp_path)
    project = start_project(python, tmp_path)
    env = clean_environment()
    manage = [str(python), "manage.py"]
    run([*manage, "migrate", "--noinput", "-v0"], cwd=project, env=env)
    run(
        [*manage, "createsuperuser", "--noinput", "--username", "admin", "--email", "a@b.example"],
        cwd=project,
        env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    ports = {name: free_port() for name in ("port", "emulator-port", "smtp-port", "mail-port")}
    # --fix-site is the "yes" a person gives when asked to move the Site to the dev port.
    command = [*manage, "client_billing_dev", "--no-input", "--fix-site", "--noreload"]
    command += [f"--{name}={port}" for name, port in ports.items()]

    started = time.monotonic()
    with dev_command(command, project, env) as dev:
        site = f"http://127.0.0.1:{ports['port']}"
        wait_until(lambda: answers(f"{site}/admin/login/"), "the dev server answers", dev)
        took("client_billing_dev ready", started)
        database = project / "db.sqlite3"
        browser = Browser()
        browser.log_in(site)
        (site_pk,) = query(database, "SELECT id FROM wagtailcore_site WHERE is_default_site")

        # Settings → Client Billing → Create a test account → the emulator's onboarding.
        connect = f"{site}/admin/client-billing/connect/{site_pk}/?mode=test"
        page = browser.submit(
            connect,
            "country",
            {
                "test_mode": "on",
                "country": "US",
                "privacy_policy_url": "https://mysite.example/privacy",
                "terms_of_service_url": "https://mysite.example/terms",
            },
        )
        assert "/_hosted/onboarding/" in page.url, dev.explain(page.text[:2000])
        browser.submit(page.url, "action", {"action": "complete"}, html=page.text)
        assert query(database, "SELECT charges_enabled FROM wagtail_client_billing_stripeaccount")

        # + Add billing request.
        page = browser.submit(
            f"{site}/admin/client-billing/invoices/add/",
            "amount",
            {
                "site": str(site_pk),
                "email": "client@readme.example",
                "currency": "USD",
                "amount": "125.00",
                "billing_type": "one_time",
                "description": "Website build",
                "success_url": f"{site}/?paid=1",
                "cancel_url": f"{site}/?cancelled=1",
                "test_mode": "on",
            },
        )
        invoices = "SELECT status FROM wagtail_client_billing_invoice WHERE email = ?"
        assert query(database, invoices, "client@readme.example") == ("pending",), dev.explain(
            page.text[:2000]
        )

        # The payment link, from the mail log, on the Site's root URL the command set.
        mail_log = f"http://127.0.0.1:{ports['mail-port']}/messages.json"
        pay_url = wait_until(lambda: pay_link(mail_log), "the invoice email in the mail log", dev)
        assert pay_url.startswith(f"http://localhost:{ports['port']}/billing/pay/"), pay_url

        # Pay on the emulator's Checkout page; the return redirect is not followed.
        checkout = browser.open(pay_url.replace("localhost", "127.0.0.1", 1), follow=False)
        assert checkout.status in (302, 303), dev.explain(checkout.text[:2000])
        form = browser.open(checkout.location)
        assert "/_hosted/checkout/" in form.url, dev.explain(form.text[:2000])
        paid = browser.submit(form.url, "action", {"action": "pay"}, html=form.text, follow=False)
        assert paid.status == 303, dev.explain(paid.text[:2000])

        wait_until(
            lambda: query(database, invoices, "client@readme.example") == ("paid",),
            "the webhook marking the invoice Paid",
            dev,
        )
        events = (
            "SELECT outcome FROM wagtail_client_billing_webhookevent "
            "WHERE type = 'checkout.session.completed'"
        )
        assert query(database, events) == ("processed",)

        took("to a paid invoice", started)
        dev.interrupt()
        took("and stopped", started)
    for name, port in ports.items():
        assert port_is_free(port), f"--{name} {port} is still in use after Ctrl-C"


# --- the steps ----------------------------------------------------------------------------------


def fresh_venv(tmp_path: Path) -> Path:
    """A venv with nothing but the package's wheel and what it depends on; its python."""
    wheel = Path(os.environ["WCB_WHEEL"]) if os.environ.get("WCB_WHEEL") else build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "wagtail_client_billing/management/commands/client_billing_dev.py" in names, wheel
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # This interpreter's pip installs into the new venv (no ensurepip: faster), without
    # compiling every module of Wagtail and Django to bytecode first.
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-compile",
            str(wheel),
        ]
    )
    where = run(
        [str(python), "-c", "import wagtail_client_billing as p; print(p.__file__)"],
        cwd=tmp_path,
        env=clean_environment(),
    )
    assert str(venv) in where, where
    return python


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of the working tree (tracked and new files), built outside it."""
    source = tmp_path / "source"
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    for name in files.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(source)])
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    return wheel


def start_project(python: Path, tmp_path: Path) -> Path:
    """``wagtail start mysite`` with the README's settings and URL snippets applied."""
    run([str(python.parent / "wagtail"), "start", "mysite"], cwd=tmp_path)
    project = tmp_path / "mysite"
    base = project / "mysite" / "settings" / "base.py"
    base.write_text(base.read_text() + "\n\n" + readme_snippet("settings"))
    urls = project / "mysite" / "urls.py"
    text = urls.read_text()
    catch_all = re.search(r'^( *)path\("", include\(wagtail_urls\)\),', text, re.M)
    assert catch_all, "wagtail start's urls.py has no catch-all line to put the URLs before"
    indent = catch_all.group(1)
    lines = "".join(indent + line + "\n" for line in readme_snippet("urls").strip().splitlines())
    urls.write_text(text[: catch_all.start()] + lines + text[catch_all.start() :])
    return project


def clean_environment() -> dict[str, str]:
    """This process's environment without what configures Django, Stripe or the suite."""
    dropped = ("DJANGO_", "STRIPE_", "Q_", "WCB_", "DATABASE_URL", "REDIS_URL", "CACHE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "EMAIL_BACKEND", "TEST_DB_NAME", "PGURL"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 (our own commands)
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    took(" ".join(Path(part).name if "/" in part else part for part in command[:5]), started)
    return result.stdout


def took(step: str, started: float) -> None:
    """Say how long a step took (shown with ``-s``, or under a failure's captured output)."""
    print(f"readme install: {time.monotonic() - started:6.1f}s  {step}")


# --- the processes and the pages ----------------------------------------------------------------


class DevCommand:
    """``client_billing_dev`` in a session of its own, its output in a file."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.log = cwd / "client_billing_dev.log"
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 (our own command)
            command,
            cwd=cwd,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def explain(self, detail: str = "") -> str:
        """What the command printed (its last lines), for a failure message."""
        output = self.log.read_text(errors="replace").splitlines()[-60:]
        return f"{detail}\n--- client_billing_dev:\n" + "\n".join(output)

    def interrupt(self) -> None:
        """Ctrl-C, as a terminal sends it (to the foreground process group)."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(self.explain("client_billing_dev did not stop within 60 s of Ctrl-C"))
        assert code == 0, self.explain(f"client_billing_dev exited with {code} after Ctrl-C")

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._out.close()


@contextlib.contextmanager
def dev_command(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[DevCommand]:
    dev = DevCommand(command, cwd, env)
    try:
        yield dev
    finally:
        dev.close()


def wait_until(probe: Any, what: str, dev: DevCommand) -> Any:
    """Poll ``probe`` until it returns something true, or fail after :data:`DEADLINE`."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = probe()
        if result:
            return result
        if dev.process.poll() is not None:
            pytest.fail(
                dev.explain(f"client_billing_dev exited ({dev.process.returncode}) before {what}")
            )
        if time.monotonic() > deadline:
            pytest.fail(dev.explain(f"no sign of {what} after {DEADLINE:.0f} s"))
        time.sleep(0.25)


def query(database: Path, sql: str, *params: Any) -> tuple | None:
    """One row from the project's SQLite database, read as another process would."""
    with contextlib.closing(
        sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=20)
    ) as db:
        return db.execute(sql, params).fetchone()


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def pay_link(mail_log: str) -> str | None:
    try:
        with urllib.request.urlopen(mail_log, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    links = re.findall(r"https?://[^\s\"'<>\\]+/billing/pay/[^\s\"'<>\\]+", text)
    return links[0] if links else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Page:
    def __init__(self, url: str, status: int, text: str, location: str = "") -> None:
        self.url, self.status, self.text, self.location = url, status, text, location


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """Cookies, forms with their CSRF tokens and redirects: what the steps need of one."""

    def __init__(self) -> None:
        jar = http.cookiejar.CookieJar()
        cookies = urllib.request.HTTPCookieProcessor(jar)
        self._follow = urllib.request.build_opener(cookies)
        self._stay = urllib.request.build_opener(cookies, _NoRedirect)

    def open(self, url: str, data: dict[str, str] | None = None, *, follow: bool = True) -> Page:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body, headers={"Referer": url})
        opener = self._follow if follow else self._stay
        try:
            with opener.open(request, timeout=60) as response:
                return Page(response.url, response.status, response.read().decode(errors="replace"))
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            return Page(url, error.code, text, error.headers.get("Location", ""))

    def submit(
        self,
        url: str,
        field: str,
        values: dict[str, str],
        *,
        html: str | None = None,
        follow: bool = True,
    ) -> Page:
        """Fill in the form on ``url`` that has ``field`` with ``values`` and send it."""
        if html is None:
            page = self.open(url)
            assert page.status == 200, (url, page.status, page.text[:2000])
            html, url = page.text, page.url
        parser = _Forms()
        parser.feed(html)
        form = next((f for f in parser.forms if field in f["names"]), None)
        assert form is not None, f"no form with {field!r} on {url}"
        return self.open(
            urllib.parse.urljoin(url, form["action"]), {**form["fields"], **values}, follow=follow
        )

    def log_in(self, site: str) -> None:
        page = self.submit(
            f"{site}/admin/login/", "username", {"username": "admin", "password": PASSWORD}
        )
        assert "/admin/login/" not in page.url, page.text[:2000]


class _Forms(HTMLParser):
    """Each form's action, field names and the values a browser would send untouched."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "names": set(), "fields": {}})
            return
        if not self.forms or not a.get("name") and tag != "option":
            return
        form = self.forms[-1]
        if tag == "input":
            kind = a.get("type", "text").lower()
            form["names"].add(a["name"])
            if kind in ("submit", "button", "image", "file", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            form["fields"][a["name"]] = a.get(
                "value", "on" if kind in ("checkbox", "radio") else ""
            )
        elif tag == "button":
            form["names"].add(a["name"])
        elif tag == "select":
            self._select = a["name"]
            form["names"].add(a["name"])
        elif tag == "option" and self._select:
            if "selected" in a or self._select not in form["fields"]:
                form["fields"][self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            form["names"].add(a["name"])
            form["fields"][a["name"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea and self.forms:
            self.forms[-1]["fields"][self._textarea] += data
