"""Demo data: an admin, two client sites sharing one connected test account, invoices
in every status. Idempotent: running it again changes nothing that is already there.

Needs the Stripe emulator (or Stripe test mode) reachable at STRIPE_API_BASE, because
the connected account is created through the gateway like an editor's would be.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from wagtail.models import Page, Site

from home.models import HomePage
from wagtail_client_billing import gateway, lifecycle
from wagtail_client_billing.conf import billing_settings
from wagtail_client_billing.lifecycle import Source
from wagtail_client_billing.models import BillingType, ClientBillingSettings, Invoice, StripeAccount

SITES = [
    ("client-a.localhost", "Client A Bakery"),
    ("client-b.localhost", "Client B Studio"),
]

INVOICES = [
    # (email, currency, amount, type, description, final status)
    (
        "ana@client-a.example",
        "USD",
        12500,
        BillingType.ONE_TIME,
        "Website build, phase 1",
        "pending",
    ),
    ("ana@client-a.example", "USD", 4900, BillingType.MONTHLY, "Hosting and care plan", "pending"),
    ("ben@client-a.example", "EUR", 80000, BillingType.ONE_TIME, "Brand refresh", "paid"),
    (
        "carla@client-b.example",
        "JPY",
        30000,
        BillingType.ONE_TIME,
        "Translation (Japanese)",
        "processing",
    ),
    ("dev@client-b.example", "GBP", 15000, BillingType.ONE_TIME, "Landing page", "expired"),
    ("dev@client-b.example", "USD", 9900, BillingType.YEARLY, "Domain and email", "deleted"),
]


class Command(BaseCommand):
    help = "Create the demo's admin user, client sites, connected account and invoices."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="the dev server's port")

    def handle(self, *args, port: int, **options):
        admin = self._admin()
        sites = self._sites(port)
        account = self._account(admin, sites[0])
        for site in sites:
            billing, _ = ClientBillingSettings.objects.get_or_create(site=site)
            billing.test_account = account
            billing.reply_to = f"billing@{site.hostname}"
            billing.save()
        self._invoices(sites, account, admin, port)
        self.stdout.write(self.style.SUCCESS("Demo data ready: log in as admin / admin."))

    def _admin(self):
        User = get_user_model()
        admin, created = User.objects.get_or_create(
            username="admin",
            defaults={"email": "admin@demo.localhost", "is_staff": True, "is_superuser": True},
        )
        if created:
            admin.set_password("admin")
            admin.save()
        return admin

    def _sites(self, port: int) -> list[Site]:
        root = Page.get_first_root_node()
        default = Site.objects.filter(is_default_site=True).first()
        if default and (default.hostname, default.port) != ("localhost", port):
            default.hostname, default.port = "localhost", port
            default.save()
        sites = []
        for hostname, name in SITES:
            site = Site.objects.filter(hostname=hostname).first()
            if site is None:
                home = root.add_child(
                    instance=HomePage(
                        title=name,
                        slug=hostname.split(".")[0],
                        body=f"<p>Welcome to {name}. Thank you for your business.</p>",
                    )
                )
                site = Site.objects.create(
                    hostname=hostname, port=port, root_page=home, site_name=name
                )
            elif site.port != port:
                site.port = port
                site.save()
            sites.append(site)
        return sites

    def _account(self, admin, site: Site) -> StripeAccount:
        """The agency's connected test account, made through the gateway if Stripe lacks it."""
        existing = StripeAccount.objects.filter(metadata_demo_filter(), test_mode=True).first()
        if existing is not None:
            try:
                state = gateway.retrieve_account(test_mode=True, account_id=existing.stripe_id)
            except gateway.GatewayError:
                state = None
            if state is not None:
                return existing
        state = gateway.create_account(
            test_mode=True,
            country="US",
            privacy_policy_url="https://agency.example/privacy",
            terms_of_service_url="https://agency.example/terms",
            site_url=site.root_url,
            idempotency_key=f"demo-account-{timezone.now().timestamp()}",
            email="agency@demo.localhost",
        )
        self._complete_onboarding(state.id)
        state = gateway.retrieve_account(test_mode=True, account_id=state.id)
        account = StripeAccount.objects.create(
            stripe_id=state.id,
            test_mode=True,
            country=state.country,
            privacy_policy_url="https://agency.example/privacy",
            terms_of_service_url="https://agency.example/terms",
            charges_enabled=state.charges_enabled,
            payouts_enabled=state.payouts_enabled,
            details_submitted=state.details_submitted,
            requirements_due=state.requirements_due,
            connected_by=admin,
        )
        # Invoices made against an account the emulator forgot are moved to the new one.
        Invoice.objects.filter(metadata__demo=True).exclude(account=account).update(account=account)
        StripeAccount.objects.filter(test_mode=True).exclude(pk=account.pk).filter(
            invoices__isnull=True
        ).delete()
        return account

    def _complete_onboarding(self, account_id: str) -> None:
        base = billing_settings.STRIPE_API_BASE
        if not base:
            self.stdout.write("Finish onboarding in Stripe's test dashboard for " + account_id)
            return
        request = urllib.request.Request(
            f"{base.rstrip('/')}/_emulator/accounts/{account_id}/complete_onboarding",
            data=json.dumps({}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).read()

    @transaction.atomic
    def _invoices(self, sites: list[Site], account: StripeAccount, admin, port: int) -> None:
        if Invoice.objects.filter(metadata__demo=True).exists():
            return
        now = timezone.now()
        for index, (email, currency, amount, billing_type, description, status) in enumerate(
            INVOICES
        ):
            site = sites[0] if index < 3 else sites[1]
            base = f"http://{site.hostname}:{port}/"
            invoice = Invoice.objects.create(
                site=site,
                account=account,
                test_mode=True,
                email=email,
                currency=currency,
                amount=amount,
                billing_type=billing_type,
                description=description,
                success_url=base + "?paid=1",
                cancel_url=base + "?cancelled=1",
                created_by=admin,
                expires_at=now
                + (timedelta(hours=-1) if status == "expired" else timedelta(hours=24)),
                metadata={"demo": True},
            )
            if status == "paid":
                lifecycle.mark_paid(invoice, source=Source.SYSTEM, payment_intent_id="pi_demo_paid")
            elif status == "processing":
                lifecycle.mark_processing(
                    invoice, source=Source.SYSTEM, payment_intent_id="pi_demo_bank"
                )
            elif status == "expired":
                lifecycle.expire(invoice, source=Source.SWEEP)
            elif status == "deleted":
                lifecycle.delete(invoice, user=admin)


def metadata_demo_filter():
    """Accounts the demo made: the ones that demo invoices point at, or any when none do."""
    from django.db.models import Q

    demo_accounts = Invoice.objects.filter(metadata__demo=True).values("account")
    if demo_accounts.exists():
        return Q(pk__in=demo_accounts)
    return Q()
