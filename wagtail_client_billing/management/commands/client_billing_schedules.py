"""``manage.py client_billing_schedules``: install the app's django-q2 schedules.

Run it once after ``migrate`` (and again after changing ``WEBHOOK_PAYLOAD_RETENTION``); it is
idempotent, so deploy scripts can run it every time.
"""

from django.core.management.base import BaseCommand

from ...tasks import install_schedules, schedule_specs


class Command(BaseCommand):
    help = (
        "Create or update the django-q2 schedules: expire due invoices every minute, "
        "send the sites' reminder emails every 15 minutes, reconcile open Checkout "
        "Sessions and recent payments' refunds and disputes every 15 minutes, resume lost emails, webhook events and "
        "session expiries every 5 minutes, purge old webhook payloads daily (when "
        "WEBHOOK_PAYLOAD_RETENTION is set). Safe to run repeatedly."
    )

    def handle(self, *args, **options):
        outcome = install_schedules()
        specs = {spec.name: spec for spec in schedule_specs()}
        for name, what in outcome.items():
            spec = specs.get(name)
            if spec is None:
                line = f"{name}: {what} (retired: another schedule does its work)"
            elif what in ("off", "removed"):
                line = f"{name}: {what} ({spec.setting} is not set)"
            else:
                line = f"{name}: {what}, {spec.func} every {spec.minutes} min"
            style = self.style.SUCCESS if what in ("created", "updated") else self.style.NOTICE
            self.stdout.write(style(line) if what != "unchanged" else line)
        self.stdout.write("Run `manage.py qcluster` to execute them.")
