"""Prepare an e2e template database: run in its own process, against the example project.

``python tests/e2e/bootstrap.py bare --port 8123`` makes the people and the site every
scenario starts from; ``python tests/e2e/bootstrap.py connect`` then connects a test
Stripe account (on the emulator at ``STRIPE_API_BASE``, onboarding completed) to that
site, the way ``seed_demo`` does, for the scenarios that begin after the connect step.

The database comes from ``DATABASE_URL`` like the example project's settings; the test
session runs this once per template and copies the file for each test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path

EXAMPLE_PROJECT = Path(__file__).resolve().parents[2] / "example_project"

#: Who logs in: a superuser (the billing editor) and an editor without this app's rights.
ADMIN = ("admin", "admin")
EDITOR = ("editor", "editor")
SITE_NAME = "Client A Bakery"
WELCOME = "Welcome to Client A Bakery. Thank you for your business."


def setup_django() -> None:
    sys.path.insert(0, str(EXAMPLE_PROJECT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    import django

    django.setup()


def bare(port: int) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from home.models import HomePage
    from wagtail.models import Page, Site

    User = get_user_model()
    User.objects.create_superuser(ADMIN[0], "admin@agency.example", ADMIN[1])
    editor = User.objects.create_user(EDITOR[0], "editor@agency.example", EDITOR[1])
    # Wagtail's own "Editors" group: admin access and pages, nothing of this app.
    editor.groups.add(Group.objects.get(name="Editors"))

    root = Page.get_first_root_node()
    home = root.add_child(
        instance=HomePage(title=SITE_NAME, slug="client-a", body=f"<p>{WELCOME}</p>")
    )
    Site.objects.all().delete()
    Site.objects.create(
        hostname="127.0.0.1",
        port=port,
        root_page=home,
        site_name=SITE_NAME,
        is_default_site=True,
    )


def connect() -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from wagtail.models import Site

    from wagtail_client_billing import gateway
    from wagtail_client_billing.conf import billing_settings
    from wagtail_client_billing.models import ClientBillingSettings, StripeAccount

    admin = get_user_model().objects.get(username=ADMIN[0])
    site = Site.objects.get(is_default_site=True)
    urls = {
        "privacy_policy_url": "https://agency.example/privacy",
        "terms_of_service_url": "https://agency.example/terms",
    }
    state = gateway.create_account(
        test_mode=True,
        country="US",
        site_url=site.root_url,
        idempotency_key=f"e2e-account-{timezone.now().timestamp()}",
        email="agency@agency.example",
        **urls,
    )
    request = urllib.request.Request(
        f"{billing_settings.STRIPE_API_BASE.rstrip('/')}/_emulator/accounts/{state.id}"
        "/complete_onboarding",
        data=json.dumps({}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()
    state = gateway.retrieve_account(test_mode=True, account_id=state.id)
    account = StripeAccount.objects.create(
        stripe_id=state.id,
        test_mode=True,
        country=state.country,
        charges_enabled=state.charges_enabled,
        payouts_enabled=state.payouts_enabled,
        details_submitted=state.details_submitted,
        requirements_due=state.requirements_due,
        connected_by=admin,
        **urls,
    )
    billing, _ = ClientBillingSettings.objects.get_or_create(site=site)
    billing.test_account = account
    billing.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=["bare", "connect"])
    parser.add_argument("--port", type=int, default=8000, help="the live server's port")
    args = parser.parse_args()
    setup_django()
    if args.step == "bare":
        bare(args.port)
    else:
        connect()


if __name__ == "__main__":
    main()
