"""Helpers that build the things tests need, as plain functions (no fixture jungle)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from wagtail.models import Page, Site

from wagtail_client_billing.models import ClientBillingSettings, Invoice, StripeAccount


def make_site(hostname: str = "client.example", port: int = 80, title: str | None = None) -> Site:
    # transaction=True tests flush the tree that Wagtail's migration made; grow it back.
    root = Page.get_first_root_node() or Page.add_root(instance=Page(title="Root", slug="root"))
    page = root.add_child(instance=Page(title=title or hostname, slug=hostname.replace(".", "-")))
    return Site.objects.create(
        hostname=hostname, port=port, root_page=page, site_name=title or hostname
    )


def make_account(
    stripe_id: str = "acct_test_1",
    *,
    test_mode: bool = True,
    charges_enabled: bool = True,
    **kwargs: Any,
) -> StripeAccount:
    defaults: dict[str, Any] = {
        "country": "US",
        "privacy_policy_url": "https://agency.example/privacy",
        "terms_of_service_url": "https://agency.example/terms",
        "charges_enabled": charges_enabled,
        "payouts_enabled": charges_enabled,
        "details_submitted": charges_enabled,
    }
    defaults.update(kwargs)
    return StripeAccount.objects.create(stripe_id=stripe_id, test_mode=test_mode, **defaults)


def connect(site: Site, account: StripeAccount) -> ClientBillingSettings:
    settings, _ = ClientBillingSettings.objects.get_or_create(site=site)
    if account.test_mode:
        settings.test_account = account
    else:
        settings.live_account = account
    settings.save()
    return settings


def make_invoice(
    site: Site | None = None, account: StripeAccount | None = None, **kwargs: Any
) -> Invoice:
    site = site or make_site()
    account = account or make_account()
    defaults: dict[str, Any] = {
        "email": "client@example.com",
        "currency": "USD",
        "amount": 12500,
        "description": "Website build",
        "success_url": "https://client.example/thanks",
        "cancel_url": "https://client.example/cancelled",
        "test_mode": account.test_mode,
        "expires_at": timezone.now() + timedelta(hours=24),
    }
    defaults.update(kwargs)
    return Invoice.objects.create(site=site, account=account, **defaults)


def make_user(username: str = "editor", *, superuser: bool = False, perms: tuple[str, ...] = ()):
    """A user who can reach the Wagtail admin, with the given ``app_label.codename`` perms."""
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", "password")
    user = User.objects.create_user(username, f"{username}@example.com", "password")
    group, _ = Group.objects.get_or_create(name=f"{username}-group")
    admin_access = Permission.objects.get(
        content_type__app_label="wagtailadmin", codename="access_admin"
    )
    group.permissions.add(admin_access)
    for perm in perms:
        app_label, codename = perm.split(".")
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    user.groups.add(group)
    return user
