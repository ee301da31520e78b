"""``manage.py client_billing_stripe_check``: check this site's Stripe setup against Stripe.

Run it with the site's real keys after deploying, and again after changing keys or
webhook endpoints. It only reads (no object is created or changed on Stripe):

* each configured secret key: its kind and mode against the setting it sits in, and
  whether the read-only calls the app relies on succeed with it (401 and 403 named
  plainly, with the permission a restricted key lacks);
* the webhook endpoints registered on Stripe: whether one points at this site's webhook
  URL (from each Wagtail Site's root URL), listens to every event type the app handles
  and sends events in the API version the app is written for;
* what the API cannot show (whether an endpoint listens to connected accounts, its
  signing secret), and what to look at in the Dashboard instead.

It prints what to fix and exits non-zero when something must be fixed. No key is ever
printed: only its kind, mode and, for a full-length key, its last four characters.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.urls import NoReverseMatch, reverse
from wagtail.models import Site

from ... import gateway, stripe_api
from ...conf import billing_settings
from ...webhooks.registry import HANDLED_EVENT_TYPES

WEBHOOK_URL_NAME = "wagtail_client_billing:stripe_webhook"

OK, FIX, WARN, INFO = "ok", "fix", "warn", "info"

#: Key prefix -> (kind, test mode). Stripe's API reference: secret keys start with
#: ``sk_test_`` / ``sk_live_``, restricted keys with ``rk_test_`` / ``rk_live_``.
KEY_KINDS = {
    "sk_test_": ("secret", True),
    "sk_live_": ("secret", False),
    "rk_test_": ("restricted", True),
    "rk_live_": ("restricted", False),
}

#: Keys that do not belong in a secret-key setting, and what they are.
WRONG_KEYS = {
    "pk_": "a publishable key",
    "whsec_": "a webhook signing secret",
}

#: Shorter than this, the last four characters would give away too much of a key
#: (real Stripe keys are around a hundred characters long).
SHOW_END_FROM_LENGTH = 24

DASHBOARD_CONNECT_HINT = (
    "Stripe's API does not say whether an endpoint receives events from connected "
    "accounts. In the Stripe Dashboard (Developers > Webhooks, or Workbench > Webhooks), "
    "open {endpoints} and check that it listens to events on Connected accounts: the "
    "app's payments are direct charges on your clients' accounts, so their events are "
    "Connect events. An endpoint that listens only to your own account never receives "
    "them."
)
DASHBOARD_SIGNING_HINT = (
    "Stripe's API never shows an endpoint's signing secret after it was created: "
    "compare the Signing secret of {endpoints} in the Dashboard with the secrets of its "
    "entry in STRIPE_WEBHOOK_ENDPOINTS."
)


def expected_api_version() -> str:
    """The Stripe API version the app is written for, which its webhook endpoints must use."""
    return stripe_api.STRIPE_API_VERSION


@dataclass
class Finding:
    """One line of the report. ``fix`` says what to do when ``level`` is ``fix`` or ``warn``."""

    level: str
    message: str
    fix: str = ""
    #: Lines shown under the message (the endpoints a listing found).
    details: list[str] = field(default_factory=list)


@dataclass
class ModeReport:
    mode: str
    setting: str
    key: str = ""
    findings: list[Finding] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, level: str, message: str, fix: str = "", details: list[str] | None = None
    ) -> None:
        self.findings.append(Finding(level, message, fix, details or []))

    @property
    def to_fix(self) -> list[Finding]:
        return [f for f in self.findings if f.level == FIX]


def describe_key(key: str) -> tuple[str, bool | None]:
    """``("a secret key for test mode (ends ...abcd)", True)``: what a key is, never the
    key. The second item is the key's mode (``None`` when it is not a Stripe API key)."""
    for prefix, (kind, test_mode) in KEY_KINDS.items():
        if key.startswith(prefix):
            mode = "test" if test_mode else "live"
            end = f" ending in {key[-4:]}" if len(key) >= SHOW_END_FROM_LENGTH else ""
            return f"a {kind} key for {mode} mode ({prefix}...{end})", test_mode
    for prefix, what in WRONG_KEYS.items():
        if key.startswith(prefix):
            return f"{what} ({prefix}...)", None
    return "not a Stripe API key", None


def normalise_url(url: str) -> tuple[str, str, int | None, str]:
    """Scheme, host and port compared the way browsers do; the path exactly, as Stripe
    posts to the path as given and Django would answer a POST without its slash with
    a redirect Stripe does not follow."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    port = parts.port
    if (scheme, port) in (("https", 443), ("http", 80)):
        port = None
    return scheme, (parts.hostname or "").lower(), port, parts.path or "/"


def describe_endpoint(endpoint: gateway.WebhookEndpoint) -> str:
    """One line for an endpoint: id, URL, status, API version, how many events."""
    events = endpoint.enabled_events
    return (
        f"{endpoint.id}  {endpoint.url}  {endpoint.status}  "
        f"API {endpoint.api_version or '(account default)'}  "
        f"{'all events' if '*' in events else f'{len(events)} events'}"
    )


def site_webhook_urls() -> list[str]:
    """This app's webhook URL on each Wagtail Site, the default site's first."""
    path = reverse(WEBHOOK_URL_NAME)
    sites = Site.objects.order_by("-is_default_site", "hostname", "port")
    return list(dict.fromkeys(site.root_url + path for site in sites))


class Command(BaseCommand):
    help = (
        "Check the platform's Stripe keys and webhook endpoints against Stripe itself (read "
        "only): each key's mode and permissions, and whether a webhook endpoint points at "
        "this site, listens to every event the app handles and uses the API version it "
        "expects. Exits with status 1 when something must be fixed."
    )

    # The command reports a key in the wrong setting itself, with what to do; the system
    # check that refuses such a key would stop it before it could.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--mode",
            choices=["test", "live", "both"],
            default="both",
            help="Which key to check. 'both' (the default) skips a mode whose key is not set.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print the report as JSON instead of text.",
        )

    def handle(self, *args: Any, mode: str = "both", as_json: bool = False, **options: Any) -> None:
        modes = [True, False] if mode == "both" else [mode == "test"]
        reports = [self.check_mode(test_mode, required=mode != "both") for test_mode in modes]
        to_fix = [(r.mode, f) for r in reports for f in r.to_fix]
        if as_json:
            self.write_json(reports, to_fix)
        else:
            self.write_text(reports, to_fix)
        if to_fix:
            raise CommandError(
                f"{len(to_fix)} thing{'s' if len(to_fix) != 1 else ''} to fix in the Stripe "
                "setup; see above.",
                returncode=1,
            )

    # -- the checks ---------------------------------------------------------------------

    def check_mode(self, test_mode: bool, *, required: bool) -> ModeReport:
        mode = "test" if test_mode else "live"
        setting = f"STRIPE_{mode.upper()}_SECRET_KEY"
        report = ModeReport(mode=mode, setting=setting)
        key = billing_settings.secret_key(test_mode)
        if not key:
            fix = f"Set {setting} (or the environment variable of that name) to your {mode} key."
            if required:
                report.add(FIX, f"{setting} is not set.", fix)
            else:
                report.add(INFO, f"{setting} is not set: {mode} mode not checked.")
            return report
        report.key, key_mode = describe_key(str(key))
        if key_mode is None:
            report.add(
                FIX,
                f"{setting} holds {report.key}.",
                f"Put the {mode} secret key (sk_{mode}_...) or a restricted key "
                f"(rk_{mode}_...) from Dashboard > Developers > API keys in {setting}.",
            )
            return report
        if key_mode != test_mode:
            other = "test" if key_mode else "live"
            report.add(
                FIX,
                f"{setting} holds {report.key}: {mode} billing requests would use {other} mode.",
                f"Put your {mode} key (sk_{mode}_... or rk_{mode}_...) in {setting}, and this "
                f"one in STRIPE_{other.upper()}_SECRET_KEY.",
            )
            return report
        report.add(OK, f"{setting} holds {report.key}.")
        if not self.check_reads(report, test_mode):
            return report
        if str(key).startswith(("rk_test_", "rk_live_")):
            report.add(
                INFO,
                "A restricted key: this check can only try what the app reads. The app also "
                "creates connected accounts and Account Links, creates and expires Checkout "
                "Sessions on connected accounts.",
                "In the Dashboard, give the key Write on Accounts, Account Links and Checkout "
                "Sessions, for your account and, under Connect, for connected accounts.",
            )
        self.check_endpoints(report, test_mode)
        return report

    def check_reads(self, report: ModeReport, test_mode: bool) -> bool:
        """The read-only calls the app needs; ``False`` when the key is refused outright."""
        try:
            platform = gateway.retrieve_platform_account(test_mode=test_mode)
        except gateway.GatewayError as error:
            self.refused(report, error, "read the platform account (GET /v1/account)")
            return False
        name = f' "{platform.display_name}"' if platform.display_name else ""
        country = f" ({platform.country})" if platform.country else ""
        report.add(OK, f"Platform account {platform.id}{name}{country} is readable.")

        accounts: list[str] = []
        try:
            accounts = gateway.list_connected_accounts(test_mode=test_mode)
        except gateway.GatewayError as error:
            self.refused(report, error, "list connected accounts (GET /v1/accounts)")
        else:
            newest = f" (newest: {accounts[0]})" if accounts else " (none yet)"
            report.add(OK, f"Connected accounts can be listed{newest}.")

        # On a connected account when there is one: that is where the app's sessions live.
        on = accounts[0] if accounts else None
        where = f" on {on}" if on else " on the platform"
        try:
            gateway.list_checkout_sessions(test_mode=test_mode, account_id=on)
        except gateway.GatewayError as error:
            self.refused(report, error, f"list Checkout Sessions{where}")
        else:
            report.add(OK, f"Checkout Sessions can be listed{where}.")
        return True

    def refused(self, report: ModeReport, error: gateway.GatewayError, what: str) -> None:
        setting = report.setting
        if error.http_status == 401:
            report.add(
                FIX,
                f"Stripe refused the key in {setting} (401) when asked to {what}: the key is "
                "wrong, revoked or expired.",
                f"Copy the key again from Dashboard > Developers > API keys into {setting}.",
            )
        elif isinstance(error, gateway.MissingPermission):
            missing = f" the permission {error.permission}" if error.permission else " a permission"
            report.add(
                FIX,
                f"Stripe refused to {what} (403): the restricted key in {setting} lacks{missing}.",
                f"In Dashboard > Developers > API keys, edit the restricted key and grant it"
                f"{missing}, or use the secret key.",
            )
        elif error.http_status == 403:
            report.add(
                FIX,
                f"Stripe refused to {what} (403, {error.code or 'no code'}).",
                "The account no longer allows the platform to act on it; an editor should "
                "connect it again from the site's Client Billing settings.",
            )
        else:
            status = f"HTTP {error.http_status}" if error.http_status else "no answer"
            report.add(FIX, f"Could not {what} ({status}): {error}", "Run the check again.")

    def check_endpoints(self, report: ModeReport, test_mode: bool) -> None:
        try:
            endpoints = gateway.list_webhook_endpoints(test_mode=test_mode)
        except gateway.GatewayError as error:
            if isinstance(error, gateway.MissingPermission):
                report.add(
                    WARN,
                    f"The key in {report.setting} may not list webhook endpoints, so they were "
                    "not checked (the app itself does not need that permission).",
                    "Grant the key Read on Webhook Endpoints, or run the check with a key "
                    "that has it, or check the endpoint in the Dashboard by hand.",
                )
            else:
                self.refused(report, error, "list webhook endpoints (GET /v1/webhook_endpoints)")
            return
        report.endpoints = [asdict(e) for e in endpoints]
        count = len(endpoints)
        report.add(
            OK,
            f"{count} webhook endpoint{'s' if count != 1 else ''} registered in {report.mode} mode.",
            details=[describe_endpoint(e) for e in endpoints],
        )
        try:
            wanted = site_webhook_urls()
        except NoReverseMatch:
            report.add(
                FIX,
                f"The app's webhook URL ({WEBHOOK_URL_NAME}) cannot be built.",
                'Include the app\'s URLs: path("billing/", include("wagtail_client_billing.urls")).',
            )
            return
        if not wanted:
            report.add(FIX, "There is no Wagtail Site.", "Add a Site under Settings > Sites.")
            return
        by_key = {normalise_url(url): url for url in wanted}
        ours = [e for e in endpoints if normalise_url(e.url) in by_key]
        if not ours:
            self.no_endpoint(report, endpoints, wanted)
            return
        handled = set(HANDLED_EVENT_TYPES)
        version = expected_api_version()

        def missing_events(endpoint: gateway.WebhookEndpoint) -> list[str]:
            if "*" in endpoint.enabled_events:
                return []
            return sorted(handled - set(endpoint.enabled_events))

        def version_readable(endpoint: gateway.WebhookEndpoint) -> bool:
            # No version of its own: the account's default, which the API does not show.
            return bool(endpoint.api_version) and stripe_api.is_known(endpoint.api_version)

        working = [
            e
            for e in ours
            if e.status == "enabled" and not missing_events(e) and version_readable(e)
        ]
        for endpoint in ours:
            before = len(report.findings)
            if endpoint.status != "enabled":
                report.add(
                    FIX,
                    f"Webhook endpoint {endpoint.id} is {endpoint.status or 'not enabled'}: "
                    "Stripe sends it nothing.",
                    f"Enable {endpoint.id} in the Dashboard (Developers > Webhooks).",
                )
            if missing := missing_events(endpoint):
                # When another endpoint does the work, this one may be the endpoint for the
                # platform's own account, which needs none of the app's events.
                report.add(
                    WARN if working else FIX,
                    f"Webhook endpoint {endpoint.id} does not listen to {', '.join(missing)}.",
                    f"Add {', '.join(missing)} to the events of {endpoint.id} in the Dashboard.",
                )
            if endpoint.api_version != version:
                shown = endpoint.api_version or "your account's default API version"
                move = (
                    f"An endpoint's API version cannot be changed: add a new endpoint at "
                    f"{endpoint.url} with API version {version} and the same events, put its "
                    f"signing secret in STRIPE_WEBHOOK_ENDPOINTS, then delete {endpoint.id}."
                )
                if version_readable(endpoint):
                    report.add(
                        WARN,
                        f"Webhook endpoint {endpoint.id} sends events in {shown}; the app is "
                        f"written for {version} and still reads {shown}.",
                        move,
                    )
                else:
                    report.add(
                        FIX,
                        f"Webhook endpoint {endpoint.id} sends events in {shown}; the app is "
                        f"written for {version}.",
                        move,
                    )
            if len(report.findings) == before:
                report.add(
                    OK,
                    f"Webhook endpoint {endpoint.id} points at {endpoint.url}, listens to all "
                    f"{len(handled)} event types the app handles and uses API version {version}.",
                )
        self.check_configured(report, test_mode, ours)
        ids = ", ".join(e.id for e in ours)
        report.add(INFO, DASHBOARD_CONNECT_HINT.format(endpoints=ids))
        report.add(INFO, DASHBOARD_SIGNING_HINT.format(endpoints=ids))

    def check_configured(
        self, report: ModeReport, test_mode: bool, ours: list[gateway.WebhookEndpoint]
    ) -> None:
        """Each endpoint posting to the site needs its signing secret in the settings, or
        the app refuses what it sends (a live Connect endpoint's secret also covers the
        test events of accounts connected in live mode, but not the test endpoint's)."""
        configured = [e for e in billing_settings.webhook_endpoints() if e.live != test_mode]
        ids = ", ".join(e.id for e in ours)
        if not configured:
            report.add(
                FIX,
                f"No {report.mode}-mode webhook endpoint is configured in "
                f"STRIPE_WEBHOOK_ENDPOINTS: the app refuses every delivery of {ids}.",
                f'Add an entry with "live": {not test_mode} and the signing secret of '
                f"{ids} (Dashboard > Developers > Webhooks > the endpoint > Signing secret).",
            )
        elif len(configured) < len(ours):
            names = ", ".join(repr(e.name) for e in configured)
            report.add(
                WARN,
                f"{len(ours)} {report.mode}-mode endpoints post to this site ({ids}) but "
                f"STRIPE_WEBHOOK_ENDPOINTS has {len(configured)} ({names}).",
                "Give each endpoint its own entry with its own signing secret; deliveries "
                "signed with a secret the app does not know are refused.",
            )

    def no_endpoint(
        self, report: ModeReport, endpoints: list[gateway.WebhookEndpoint], wanted: list[str]
    ) -> None:
        hosts = {normalise_url(url)[1] for url in wanted}
        for endpoint in endpoints:
            if normalise_url(endpoint.url)[1] in hosts:
                report.add(
                    WARN,
                    f"Webhook endpoint {endpoint.id} points at {endpoint.url}, which is on this "
                    "site's host but is not the app's webhook URL.",
                )
        shown = " or ".join(wanted[:3]) + (" ..." if len(wanted) > 3 else "")
        report.add(
            FIX,
            f"No {report.mode}-mode webhook endpoint points at this site's webhook URL ({shown}).",
            f"In the Dashboard ({report.mode} mode), add an endpoint at {wanted[0]} listening "
            f"to events on Connected accounts, with API version {expected_api_version()} and "
            f"the events {', '.join(HANDLED_EVENT_TYPES)}; add its signing secret to "
            "STRIPE_WEBHOOK_ENDPOINTS.",
        )

    # -- output -------------------------------------------------------------------------

    def write_text(self, reports: list[ModeReport], to_fix: list[tuple[str, Finding]]) -> None:
        styles = {
            OK: self.style.SUCCESS,
            FIX: self.style.ERROR,
            WARN: self.style.WARNING,
            INFO: self.style.NOTICE,
        }
        for report in reports:
            self.stdout.write(f"Stripe, {report.mode} mode ({report.setting})")
            for finding in report.findings:
                label = styles[finding.level](f"{finding.level.upper():<4}")
                self.stdout.write(f"  {label}  {finding.message}")
                for line in finding.details:
                    self.stdout.write(f"        {line}")
                if finding.level in (WARN, INFO) and finding.fix:
                    self.stdout.write(f"        {finding.fix}")
            self.stdout.write("")
        if not to_fix:
            self.stdout.write(self.style.SUCCESS("Nothing to fix."))
            return
        self.stdout.write("To fix:")
        for number, (mode, finding) in enumerate(to_fix, 1):
            self.stdout.write(f"  {number}. [{mode}] {finding.message}")
            if finding.fix:
                self.stdout.write(f"     {finding.fix}")

    def write_json(self, reports: list[ModeReport], to_fix: list[tuple[str, Finding]]) -> None:
        data = {
            "ok": not to_fix,
            "expected_api_version": expected_api_version(),
            "handled_event_types": list(HANDLED_EVENT_TYPES),
            "modes": [asdict(report) for report in reports],
        }
        self.stdout.write(json.dumps(data, indent=2))
