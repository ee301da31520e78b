"""``manage.py client_billing_dev``: the whole app on one machine, for development.

Starts, in the site's own project, with settings that agree with each other:

* the bundled Stripe emulator (a child process), its webhooks signed with a secret the
  app accepts and posted to the app's webhook URL, its state kept in ``--state-dir``;
* an SMTP sink and a mail log page listing what it received, with the links in each
  message (both on threads of this process; standard library only);
* ``manage.py qcluster`` (unless ``--no-qcluster``) and ``manage.py runserver``, with the
  project's settings patched as :mod:`wagtail_client_billing.devserver.config` says
  (mail to the sink, ``STRIPE_API_BASE`` at the emulator, a test key, the webhook secret).

It prints the links, offers to point a loopback Site at the dev server's port (or does
with ``--fix-site``), and stops everything on Ctrl-C, ``SIGTERM`` or ``SIGHUP``: no
process is left behind. Development only: never run it in production.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.urls import NoReverseMatch, reverse

from ...conf import SETTINGS_NAME
from ...devserver import config
from ...devserver.mailsink import MailSink, ReceivedMessage
from ...devserver.processes import Supervisor, wait_until_answers

WEBHOOK_URL_NAME = "wagtail_client_billing:stripe_webhook"
#: Seconds the children have to answer (a loaded machine imports Wagtail slowly).
STARTUP_TIMEOUT = 180.0
#: Seconds they have to stop after SIGTERM before they are killed.
STOP_TIMEOUT = 15.0
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Command(BaseCommand):
    help = (
        "Run the site for development: the Stripe emulator, an SMTP sink with a mail log "
        "page, a qcluster and the dev server, with consistent secrets and ports. Ctrl-C "
        "stops them all."
    )
    # The checks run in handle(), once the development settings apply.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000, help="the dev server's port")
        parser.add_argument(
            "--emulator-port", type=int, default=12111, help="the Stripe emulator's port"
        )
        parser.add_argument("--smtp-port", type=int, default=1025, help="the SMTP sink's port")
        parser.add_argument("--mail-port", type=int, default=8025, help="the mail log page's port")
        parser.add_argument("--addr", default="127.0.0.1", help="the address every server binds to")
        parser.add_argument(
            "--no-qcluster",
            action="store_false",
            dest="qcluster",
            help="start no qcluster (run your own; emails and webhooks wait for it)",
        )
        parser.add_argument(
            "--noreload", action="store_true", help="run the dev server without its autoreloader"
        )
        parser.add_argument(
            "--fix-site",
            action="store_true",
            help="set the port of Sites on localhost to --port without asking",
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="ask nothing (a Site on another port is then only warned about)",
        )
        parser.add_argument(
            "--state-dir",
            default=".client_billing_dev",
            help="where the emulator keeps its accounts and sessions across runs",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        addr: str = options["addr"]
        port: int = options["port"]
        if ":" in addr or not addr:
            raise CommandError("--addr takes an IPv4 address or a host name, such as 0.0.0.0.")
        any_address = addr == "0.0.0.0"  # noqa: S104 (the developer's choice)
        local = "127.0.0.1" if any_address else addr
        public = "localhost" if any_address else addr
        ports = {
            "--port": port,
            "--emulator-port": options["emulator_port"],
            "--smtp-port": options["smtp_port"],
            "--mail-port": options["mail_port"],
        }
        self._check_ports(addr, ports)
        api_base = f"http://{local}:{options['emulator_port']}"

        plan = config.plan(
            settings, api_base=api_base, smtp_host=local, smtp_port=options["smtp_port"]
        )
        self._apply_here(plan)
        self.check(display_num_errors=False)
        try:
            webhook_path = reverse(WEBHOOK_URL_NAME)
        except NoReverseMatch as exc:
            raise CommandError(
                "The webhook URL does not resolve: include wagtail_client_billing.urls in "
                "your URLconf, before Wagtail's own URLs, e.g. "
                'path("billing/", include("wagtail_client_billing.urls")).'
            ) from exc
        self._check_migrations()
        site_urls = self._check_sites(port, options["fix_site"], options["interactive"])
        state_dir = self._state_dir(Path(options["state_dir"]))

        self.say("the dev server and the qcluster run with your settings, and:")
        for note in plan.notes:
            self.say(f"  {note}")

        env = self._child_env(plan, api_base, local, options)
        manage = _manage_command()
        supervisor = Supervisor(write=self.write, env=env, cwd=os.getcwd())
        stop = threading.Event()
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():  # a second Ctrl-C: no more waiting
                supervisor.kill_groups()
            stop.set()

        for sig in STOP_SIGNALS:
            signal.signal(sig, on_signal)
        sink: MailSink | None = None
        failure = None
        try:
            supervisor.start(
                "emulator",
                [
                    sys.executable,
                    "-m",
                    "wagtail_client_billing.testing.stripe_emulator",
                    "--host",
                    addr,
                    "--port",
                    str(options["emulator_port"]),
                    "--public-url",
                    f"http://{public}:{options['emulator_port']}",
                    "--webhook-url",
                    f"http://{local}:{port}{webhook_path}",
                    "--webhook-secret",
                    plan.webhook_secret,
                    "--state-file",
                    str(state_dir / "emulator.json"),
                ],
            )
            sink = MailSink(
                addr, options["smtp_port"], options["mail_port"], self._mail_printer()
            ).start()
            schedules = io.StringIO()
            call_command("client_billing_schedules", stdout=schedules)
            for line in schedules.getvalue().splitlines()[:-1]:  # not "Run qcluster ..."
                self.say(f"schedule {line}")
            if options["qcluster"]:
                supervisor.start("qcluster", [*manage, "qcluster"])
            runserver = [*manage, "runserver", f"{addr}:{port}"]
            if options["noreload"]:
                runserver.append("--noreload")
            server = supervisor.start("server", runserver)
            failure = wait_until_answers(
                f"{api_base}/_emulator/events", supervisor.children[0], stop, STARTUP_TIMEOUT
            ) or wait_until_answers(
                f"http://{local}:{port}{reverse('wagtailadmin_login')}",
                server,
                stop,
                STARTUP_TIMEOUT,
            )
            if failure is None:
                self._print_links(site_urls, port, public, sink, options)
                while not stop.wait(0.5):
                    if (child := supervisor.exited()) is not None:
                        failure = f"{child.name} exited with code {child.process.returncode}"
                        break
        except OSError as exc:  # a port taken since the check, an interpreter gone
            failure = f"could not start every part: {exc}"
        finally:
            if failure not in (None, "stopped"):
                self.say(f"{failure}; stopping the others")
            supervisor.stop(STOP_TIMEOUT)
            if sink is not None:
                sink.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failure not in (None, "stopped"):
            raise CommandError(failure)
        self.say("stopped")

    # --- before anything starts -----------------------------------------------------------

    _output_lock = threading.Lock()

    def write(self, line: str) -> None:
        """One whole line of output, from any thread."""
        with self._output_lock:
            self.stdout.write(line, ending="")
            self.stdout.flush()

    def say(self, message: str) -> None:
        self.write(f"{'dev':<8} | {message}\n")

    def _check_ports(self, addr: str, ports: dict[str, int]) -> None:
        if len(set(ports.values())) != len(ports):
            raise CommandError(f"Each part needs a port of its own: {ports}")
        for flag, number in ports.items():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((addr, number))
                except OSError as exc:
                    raise CommandError(
                        f"Port {number} on {addr} is not free ({exc.strerror}): "
                        f"choose another with {flag}."
                    ) from exc

    def _apply_here(self, plan: config.Plan) -> None:
        """Let this process (its checks, the schedules) see the app's settings as the
        children will."""
        patched = config.merge(
            getattr(settings, SETTINGS_NAME, None) or {}, plan.patches[SETTINGS_NAME]
        )
        setattr(settings, SETTINGS_NAME, patched)
        setting_changed.send(sender=type(self), setting=SETTINGS_NAME, value=patched, enter=True)

    def _check_migrations(self) -> None:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            raise CommandError(
                f"{len(pending)} migration(s) are not applied: run `python manage.py migrate` "
                "first."
            )

    def _check_sites(self, port: int, fix: bool, interactive: bool) -> list[str]:
        """The root URLs of the Sites this dev server answers for, after the port fix.

        A fresh ``wagtail start`` project's Site is ``localhost:80``; payment links and the
        links in emails are built from it, so they would point where nothing listens.
        """
        from wagtail.models import Site

        sites = list(Site.objects.order_by("-is_default_site", "hostname"))
        local = [s for s in sites if config.is_loopback(s.hostname)]
        taken = {(s.hostname, s.port) for s in sites}
        wrong = [s for s in local if s.port != port and (s.hostname, port) not in taken]
        if not local:
            self.say(
                "warning: no Wagtail Site is on localhost; payment links are built from a "
                "Site's root URL, so they will not open this dev server. Add a Site "
                f"'localhost' on port {port} in Settings → Sites."
            )
        if wrong:
            names = ", ".join(f"{s.hostname}:{s.port}" for s in wrong)
            if not fix and interactive and sys.stdin.isatty():
                try:
                    answer = input(
                        f"Payment links are built from the Site's root URL: set {names} to "
                        f"port {port}, where this dev server listens? [Y/n] "
                    )
                except (EOFError, KeyboardInterrupt):
                    self.stdout.write("")
                    raise CommandError("Nothing started.") from None
                fix = answer.strip().lower() in ("", "y", "yes")
            if fix:
                for site in wrong:
                    site.port = port
                    site.save(update_fields=["port"])
                self.say(f"set {names} to port {port}")
            else:
                self.say(
                    f"warning: {names} is not on port {port}: payment links in emails will "
                    f"not open this dev server. Run with --fix-site, or set the port in "
                    "Settings → Sites."
                )
        return [s.root_url + "/" for s in local if s.port == port]

    def _state_dir(self, path: Path) -> Path:
        path = path.resolve()
        path.mkdir(parents=True, exist_ok=True)
        ignore = path / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Made by manage.py client_billing_dev; nothing to commit.\n*\n")
        return path

    def _child_env(
        self, plan: config.Plan, api_base: str, local: str, options: dict[str, Any]
    ) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": config.SETTINGS_MODULE,
                config.ENV: json.dumps(
                    {"settings": settings.SETTINGS_MODULE, "patches": plan.patches}
                ),
                # For settings that read these themselves (the patches win either way).
                "STRIPE_API_BASE": api_base,
                "EMAIL_HOST": local,
                "EMAIL_PORT": str(options["smtp_port"]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        billing = plan.patches[SETTINGS_NAME]
        if "STRIPE_TEST_SECRET_KEY" in billing:
            env["STRIPE_TEST_SECRET_KEY"] = billing["STRIPE_TEST_SECRET_KEY"]
        if "STRIPE_TEST_WEBHOOK_SECRETS" in billing:
            env["STRIPE_TEST_WEBHOOK_SECRETS"] = ",".join(billing["STRIPE_TEST_WEBHOOK_SECRETS"])
        if options.get("pythonpath"):
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (options["pythonpath"], env.get("PYTHONPATH")) if p
            )
        return env

    # --- while running --------------------------------------------------------------------

    def _mail_printer(self) -> Callable[[ReceivedMessage], None]:
        def printed(message: ReceivedMessage) -> None:
            lines = [f"to {message.to}: {message.subject}"]
            lines += [f"  {link}" for link in message.links[:5]]
            self.write("".join(f"{'mail':<8} | {line}\n" for line in lines))

        return printed

    def _print_links(
        self,
        site_urls: list[str],
        port: int,
        public: str,
        sink: MailSink,
        options: dict[str, Any],
    ) -> None:
        first = site_urls[0] if site_urls else f"http://{public}:{port}/"
        admin = first.rstrip("/") + reverse("wagtailadmin_home")
        emulator = f"http://{public}:{options['emulator_port']}"
        lines = [
            "ready:",
            *(f"  site      {url}" for url in site_urls or [first]),
            f"  admin     {admin}",
            f"  mail log  http://{public}:{sink.web_port}/  (SMTP on port {sink.smtp_port})",
            f"  Stripe    {emulator}/_emulator/events  (the emulator: its Checkout and "
            "onboarding pages open from the app's links)",
            "Ctrl-C stops everything.",
        ]
        for line in lines:
            self.say(line)


def _manage_command() -> list[str]:
    """How to run another management command the way this one was run."""
    script = Path(sys.argv[0])
    if script.name == "manage.py" and script.is_file():
        return [sys.executable, str(script.resolve())]
    return [sys.executable, "-m", "django"]
