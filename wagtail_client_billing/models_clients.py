"""Clients: the installation's directory of the people and companies the agency bills.

A client belongs to the installation (the agency running it), not to a site: the same
client may have invoices on several sites. Who may see a client is the access scope's
question (:func:`.scope.clients_for_user`): through the invoices of the sites an editor
may bill for.

Imported by :mod:`.models` (Django finds the app's models there); it imports nothing of
the app, so it cannot take part in an import cycle.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


def split_addresses(value: str) -> list[str]:
    """Addresses separated by commas, semicolons or line breaks, in order, without repeats."""
    seen: dict[str, str] = {}
    for part in (value or "").replace(";", ",").replace("\n", ",").split(","):
        address = part.strip()
        if address and address.lower() not in seen:
            seen[address.lower()] = address
    return list(seen.values())


class Client(models.Model):
    """A client of the agency: who billing requests go to.

    Attributes:
        email: the primary billing address, unique in the installation in any letter
            case; a billing request to a new address creates the client.
        extra_emails: further addresses, one a line, copied (Cc) on every email the
            client gets.
        language: the language the client reads (a code of ``LANGUAGES``); blank: the
            site's.
        created_by: the editor who added it (blank when a billing request or the data
            migration did): a client with no invoice yet stays visible to its author.
        created_by_migration: made by the migration that linked the existing invoices
            to clients; reversing it removes these clients again.
        erased_at: when its personal data was erased (:mod:`.billing.clients`); the
            financial records stay.
    """

    name = models.CharField(_("name"), max_length=255, blank=True)
    company = models.CharField(_("company"), max_length=255, blank=True)
    email = models.EmailField(_("billing email"), max_length=254)
    extra_emails = models.TextField(
        _("extra emails"),
        blank=True,
        default="",
        help_text=_("Copied on every email to this client: one address a line."),
    )
    address = models.TextField(_("address"), blank=True, default="")
    tax_number = models.CharField(_("tax number"), max_length=64, blank=True, default="")
    language = models.CharField(
        _("language"),
        max_length=35,
        blank=True,
        default="",
        help_text=_("The language of the client's emails and pages. Blank: the site's."),
    )
    notes = models.TextField(
        _("internal notes"), blank=True, default="", help_text=_("Only editors see these.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_by_migration = models.BooleanField(default=False, editable=False)
    erased_at = models.DateTimeField(_("erased"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("client")
        verbose_name_plural = _("clients")
        ordering = ["name", "company", "email", "pk"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="wcb_client_email_ci",
                violation_error_message=_("A client with this billing email already exists."),
            ),
        ]
        permissions = [
            ("merge_client", _("Can merge clients")),
            ("export_client", _("Can export a client's personal data")),
            ("erase_client", _("Can erase a client's personal data")),
        ]

    def __str__(self) -> str:
        label = self.name or self.company or self.email
        if self.name and self.company:
            label = f"{self.name} ({self.company})"
        return label

    @property
    def display_name(self) -> str:
        """The name, else the company, else the billing email: what listings show."""
        return str(self)

    @property
    def cc_emails(self) -> list[str]:
        """The extra addresses, without the primary one: whom every email copies."""
        primary = (self.email or "").lower()
        return [a for a in split_addresses(self.extra_emails) if a.lower() != primary]

    @property
    def all_emails(self) -> list[str]:
        return [self.email, *self.cc_emails]


class ClientStripeCustomer(models.Model):
    """The Stripe customer a client is on one connected account.

    Stripe customers belong to a connected account, so a client billed through several
    accounts has one per account; Checkout on that account reuses it (``customer=``).
    """

    client = models.ForeignKey(
        Client,
        verbose_name=_("client"),
        on_delete=models.CASCADE,
        related_name="stripe_customers",
    )
    account = models.ForeignKey(
        "wagtail_client_billing.StripeAccount",
        verbose_name=_("Stripe account"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    customer_id = models.CharField(_("Stripe customer"), max_length=255)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("client's Stripe customer")
        verbose_name_plural = _("clients' Stripe customers")
        constraints = [
            models.UniqueConstraint(
                fields=["client", "account"], name="wcb_client_customer_per_account"
            ),
            models.UniqueConstraint(
                fields=["account", "customer_id"], name="wcb_client_customer_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.customer_id
