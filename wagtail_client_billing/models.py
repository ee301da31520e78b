"""The app's data: connected Stripe accounts, per-site settings, invoices, webhook events.

Money is stored as integer minor units with an ISO 4217 code (see :mod:`.money`).
An invoice's ``status`` is changed only by :mod:`.lifecycle`; nothing else writes it.
"""

from __future__ import annotations

import copy
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.db.models import CharField, JSONField, Q, Value
from django.db.models.functions import Cast, Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from modelcluster.fields import ParentalKey
from modelcluster.models import ClusterableModel
from wagtail.contrib.settings.models import BaseSiteSetting, register_setting
from wagtail.images import get_image_model_string
from wagtail.models import BaseLogEntry, BaseLogEntryManager, Site

from . import hooks, pricing
from . import status as status_table
from .compat import PAGE_MODEL
from .conf import billing_settings
from .models_clients import Client, ClientStripeCustomer, split_addresses  # noqa: F401
from .money import (
    FormattedAmount,
    FormattedRefundedAmount,
    format_money,
    format_percent,
    to_major,
)
from .status import InvoiceStatus  # declared with the status table; importable from here too

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def new_token() -> str:
    """An unguessable public token for an invoice's payment link (256 bits)."""
    return secrets.token_urlsafe(32)


def site_display_name(site: Site) -> str:
    """How the app names a site to editors and clients: its name, else its host name."""
    return site_label(site.site_name, site.hostname)


def site_label(site_name: str, hostname: str) -> str:
    """:func:`site_display_name` from the two columns, for a query that reads only them."""
    return site_name or hostname


def site_language(site: Site) -> str | None:
    """The language a site's clients read: its root page's locale, when the project has
    that language (or its base language) in ``LANGUAGES``.

    ``None`` when it has not, or the site has no root page or locale (an unusual
    install): the caller keeps its own language, the request's on a client's page and
    ``LANGUAGE_CODE`` in an email.
    """
    try:
        code = site.root_page.locale.language_code
    except Exception:  # no root page or locale
        return None
    available = {language.lower() for language, _name in settings.LANGUAGES}
    if code and (code.lower() in available or code.split("-")[0].lower() in available):
        return code
    return None


class Mode(models.TextChoices):
    TEST = "test", _("Test")
    LIVE = "live", _("Live")


class StripeAccount(models.Model):
    """A Stripe Connect account that one or more sites bill through.

    The record outlives its link to a site: unlinking keeps it, so invoices made
    with it keep their account and their Stripe dashboard links.

    Its state (flags, requirements, ``synced_at``) is written only by
    :func:`wagtail_client_billing.billing.accounts.record_state`.

    Attributes:
        stripe_id: ``acct_...``, unique per mode on Stripe, unique here.
        test_mode: whether it was created with the platform's test key.
        requirements_due: Stripe's ``requirements.currently_due`` at the last sync: what
            must be given to keep the account enabled. Past-due fields are in it too.
        requirements_past_due: Stripe's ``requirements.past_due`` at the last sync: what
            was not given by Stripe's deadline; the account is disabled until it is.
        synced_at: when the recorded state was Stripe's; an older snapshot is not applied.
        deauthorized_at: set when the account disconnected the platform (or the test
            account was deleted on Stripe).
        deauthorized_event_id: the ``account.application.deauthorized`` event that
            recorded it, so a redelivered event is not applied and logged twice.
        portal_configuration_id: ``bpc_...``, the customer portal configuration the app
            made on the account (lazily, the first time a client opens the portal), and
            made again when Stripe no longer has it; see ``billing.portal``.
    """

    stripe_id = models.CharField(_("Stripe account id"), max_length=64, unique=True)
    test_mode = models.BooleanField(_("test mode"), default=True)
    country = models.CharField(_("country"), max_length=2)
    privacy_policy_url = models.URLField(_("Privacy Policy URL"), max_length=2000)
    terms_of_service_url = models.URLField(_("Terms of Service URL"), max_length=2000)
    charges_enabled = models.BooleanField(_("charges enabled"), default=False)
    payouts_enabled = models.BooleanField(_("payouts enabled"), default=False)
    details_submitted = models.BooleanField(_("details submitted"), default=False)
    requirements_due = models.JSONField(_("requirements due"), default=list, blank=True)
    # Database defaults too, so rows inserted by code that predates these columns (a
    # rolling deploy) still fit.
    requirements_past_due = models.JSONField(
        _("requirements past due"), default=list, db_default=Value([], JSONField()), blank=True
    )
    disabled_reason = models.CharField(_("disabled reason"), max_length=255, blank=True)
    connected_at = models.DateTimeField(_("connected at"), default=timezone.now)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("connected by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    deauthorized_at = models.DateTimeField(_("deauthorized at"), null=True, blank=True)
    deauthorized_event_id = models.CharField(
        _("deauthorization event"), max_length=255, blank=True, default="", db_default=""
    )
    synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)
    portal_configuration_id = models.CharField(
        _("customer portal configuration"),
        max_length=255,
        blank=True,
        default="",
        db_default="",
        editable=False,
    )

    class Meta:
        verbose_name = _("Stripe account")
        verbose_name_plural = _("Stripe accounts")
        ordering = ["-connected_at"]

    def __str__(self) -> str:
        mode = _("test") if self.test_mode else _("live")
        return f"{self.stripe_id} ({mode}, {self.country})"

    @property
    def mode(self) -> str:
        return Mode.TEST if self.test_mode else Mode.LIVE

    @property
    def onboarding_complete(self) -> bool:
        return (
            self.details_submitted and not self.requirements_due and not self.requirements_past_due
        )

    @property
    def requirements_due_now(self) -> list[str]:
        """What is currently due and not yet past due (Stripe lists past-due fields in
        ``currently_due`` as well; the editor sees each once, under the graver heading)."""
        past_due = set(self.requirements_past_due)
        return [name for name in self.requirements_due if name not in past_due]

    @property
    def can_charge(self) -> bool:
        """Whether invoices can be sent with it now."""
        return self.charges_enabled and self.deauthorized_at is None

    @property
    def state(self) -> str:
        """``enabled``, ``incomplete`` (onboarding not finished) or ``restricted``."""
        if self.deauthorized_at:
            return "deauthorized"
        if self.charges_enabled:
            return "enabled"
        if not self.details_submitted:
            return "incomplete"
        return "restricted"

    def dashboard_url(self) -> str:
        prefix = "test/" if self.test_mode else ""
        return f"https://dashboard.stripe.com/{self.stripe_id}/{prefix}dashboard"


class SMTPSecurity(models.TextChoices):
    NONE = "none", _("None")
    STARTTLS = "starttls", _("STARTTLS")
    SSL = "ssl", _("SSL/TLS")


def _fernet() -> MultiFernet:
    keys = [billing_settings.SMTP_ENCRYPTION_KEY, *billing_settings.SMTP_PREVIOUS_ENCRYPTION_KEYS]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_secret(value: str) -> str:
    """Encrypt with the current ``SMTP_ENCRYPTION_KEY`` (Fernet, authenticated)."""
    return _fernet().encrypt(value.encode()).decode()


def decrypt_secret(token: str) -> str:
    """Decrypt with the current or a previous key; ``""`` for an empty token.

    Raises ``cryptography.fernet.InvalidToken`` when no configured key fits.
    """
    if not token:
        return ""
    return _fernet().decrypt(token.encode()).decode()


class TaxMode(models.TextChoices):
    """How a site's requests are taxed."""

    NONE = "none", _("No tax")
    RATES = "rates", _("Tax rates I define")
    STRIPE_TAX = "stripe_tax", _("Stripe Tax (calculated at checkout)")


class DiscountKind(models.TextChoices):
    """What a request offers off its subtotal."""

    NONE = "", _("No discount")
    AMOUNT = "amount", _("An amount off")
    PERCENT = "percent", _("A percentage off")
    PROMOTION_CODE = "promotion_code", _("Let the client enter a promotion code")


class DiscountDuration(models.TextChoices):
    """For recurring billing: which payments the discount applies to (a coupon's
    ``duration``)."""

    ONCE = "once", _("The first payment only")
    FOREVER = "forever", _("Every payment")


@register_setting(icon="client-billing")  # the icon is registered in wagtail_hooks.py
class ClientBillingSettings(BaseSiteSetting):
    """A site's Client Billing configuration (Settings -> Client Billing).

    Attributes:
        live_account / test_account: the connected accounts this site bills through.
        smtp_password_encrypted: Fernet token; use :meth:`set_smtp_password`.

    The settings form saves only the fields it shows: the account links are written by
    connect/unlink and by Stripe's deauthorization, the invoice numbers by
    :class:`InvoiceCounter`, and a form opened before either must not write them back.
    """

    live_account = models.ForeignKey(
        StripeAccount,
        verbose_name=_("live account"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="live_settings",
    )
    test_account = models.ForeignKey(
        StripeAccount,
        verbose_name=_("test account"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="test_settings",
    )

    use_custom_smtp = models.BooleanField(
        _("use a custom SMTP server"),
        default=False,
        help_text=_("Off: invoices go out through the site's default email settings."),
    )
    smtp_host = models.CharField(_("SMTP host"), max_length=255, blank=True)
    smtp_port = models.PositiveIntegerField(
        _("SMTP port"), default=587, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    smtp_username = models.CharField(_("SMTP username"), max_length=255, blank=True)
    smtp_password_encrypted = models.TextField(blank=True, editable=False)
    smtp_security = models.CharField(
        _("security"), max_length=10, choices=SMTPSecurity.choices, default=SMTPSecurity.STARTTLS
    )
    smtp_timeout = models.PositiveIntegerField(
        _("timeout (seconds)"),
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(120)],
    )
    from_email = models.CharField(
        _("From"),
        max_length=255,
        blank=True,
        help_text=_('For example "Acme Studio <billing@acme.example>". Blank: DEFAULT_FROM_EMAIL.'),
    )
    reply_to = models.EmailField(_("Reply-To"), blank=True)
    paid_notices = models.CharField(
        _("paid notices"),
        max_length=10,
        choices=[
            ("off", _("Off")),
            ("each", _("For each payment")),
            ("daily", _("A daily digest")),
        ],
        default="off",
        blank=True,
        help_text=_(
            "Tell the billing contacts when a client pays (the first payment and every "
            "renewal): at once, once a day, or not at all."
        ),
    )
    billing_contacts = models.TextField(
        _("billing contacts"),
        blank=True,
        default="",
        help_text=_(
            "Who at your agency hears of disputes, failed renewals and payments: one or more "
            "email addresses, one a line or separated by commas. Blank: the author of each "
            "invoice."
        ),
    )

    default_currency = models.CharField(_("default currency"), max_length=3, blank=True)
    payment_link_lifetime_hours = models.PositiveIntegerField(
        _("payment link lifetime (hours)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 90)],
        help_text=_("How long a client can pay an emailed link. Blank: the project's default."),
    )
    payment_link_max_lifetime_days = models.PositiveIntegerField(
        _("longest payment link lifetime (days)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
        help_text=_(
            "The longest lifetime an editor may give one request's payment link. "
            "Blank: the project's default."
        ),
    )
    reminder_before_hours = models.PositiveIntegerField(
        _("remind clients before (hours)"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(24 * 90)],
        help_text=_(
            "One reminder email this many hours before an unpaid invoice is due (or, "
            "without a due date, before its link expires). 0: no such reminder. "
            "Blank: the project's default."
        ),
    )
    remind_on_due_date = models.BooleanField(
        _("remind clients on the due date"),
        default=True,
        help_text=_("One reminder email on the due date of an unpaid invoice that has one."),
    )

    tax_mode = models.CharField(
        _("tax"),
        max_length=12,
        choices=TaxMode.choices,
        default=TaxMode.NONE,
        db_default=TaxMode.NONE,
        help_text=_(
            "Tax rates: you define them (Snippets → Tax rates) and pick one per request. "
            "Stripe Tax: Stripe calculates tax at checkout from the client's address."
        ),
    )

    refund_application_fee = models.BooleanField(
        _("refund the platform's fee with a refund"),
        default=False,
        db_default=False,
        help_text=_(
            "On: a refund also returns the platform's application fee, in proportion to the "
            "amount refunded. Off: the connected account bears the whole refund."
        ),
    )
    send_receipts = models.BooleanField(
        _("email receipts to clients"),
        default=True,
        db_default=True,
        help_text=_(
            "A receipt from this site for each payment (each renewal too) and each refund. "
            "Turn off if the connected account's Stripe receipts are on."
        ),
    )

    # The seller on the client's documents, pages and emails (see docs/documents.md):
    # copied into each invoice when it is sent (``InvoiceDocument.seller``), so a change
    # here never alters an invoice already sent.
    seller_name = models.CharField(
        _("legal name"),
        max_length=200,
        blank=True,
        default="",
        db_default="",
        help_text=_("The agency's legal name on invoices and receipts. Blank: the site's name."),
    )
    seller_address = models.TextField(
        _("address"),
        blank=True,
        default="",
        db_default="",
        help_text=_("As printed, one line each."),
    )
    seller_tax_id = models.CharField(
        _("tax or VAT number"), max_length=64, blank=True, default="", db_default=""
    )
    logo = models.ForeignKey(
        get_image_model_string(),
        verbose_name=_("logo"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Shown on the client's pages, emails and PDFs (a PNG rendition in PDFs)."),
    )
    accent_colour = models.CharField(
        _("accent colour"),
        max_length=7,
        blank=True,
        default="",
        db_default="",
        validators=[
            RegexValidator(
                r"^#[0-9a-fA-F]{6}$", _("Enter a colour like #1d6fa5 (# and six hex digits).")
            )
        ],
        help_text=_("Headings and buttons on the client's pages, emails and PDFs, e.g. #1d6fa5."),
    )
    document_footer = models.TextField(
        _("footer text"),
        blank=True,
        default="",
        db_default="",
        help_text=_("Printed at the foot of client pages, emails and PDFs: bank details, terms."),
    )

    class Meta:
        verbose_name = _("Client Billing")
        verbose_name_plural = _("Client Billing")

    def __str__(self) -> str:
        return str(_("Client Billing settings for %(site)s") % {"site": self.site})

    # --- accounts -------------------------------------------------------------------------

    def account_for(self, test_mode: bool) -> StripeAccount | None:
        return self.test_account if test_mode else self.live_account

    # --- SMTP password, encrypted at rest --------------------------------------------------

    def set_smtp_password(self, raw: str) -> None:
        self.smtp_password_encrypted = encrypt_secret(raw) if raw else ""

    def get_smtp_password(self) -> str:
        return decrypt_secret(self.smtp_password_encrypted)

    @property
    def has_smtp_password(self) -> bool:
        return bool(self.smtp_password_encrypted)

    # --- billing contacts ---------------------------------------------------------------------

    @property
    def billing_contact_list(self) -> list[str]:
        """The addresses of :attr:`billing_contacts`, in order, without repeats."""
        return split_addresses(self.billing_contacts)

    # --- defaults ---------------------------------------------------------------------------

    @property
    def payment_link_lifetime(self) -> timedelta:
        if self.payment_link_lifetime_hours:
            return timedelta(hours=self.payment_link_lifetime_hours)
        lifetime: timedelta = billing_settings.PAYMENT_LINK_LIFETIME
        return lifetime

    @property
    def payment_link_max_lifetime(self) -> timedelta:
        """The longest lifetime an editor may give one request; never below the default."""
        if self.payment_link_max_lifetime_days:
            longest = timedelta(days=self.payment_link_max_lifetime_days)
        else:
            longest = billing_settings.PAYMENT_LINK_MAX_LIFETIME
        return max(longest, self.payment_link_lifetime)

    @property
    def reminder_before(self) -> timedelta | None:
        """How long before the due date (or expiry) the reminder goes; ``None``: none."""
        if self.reminder_before_hours is not None:
            return timedelta(hours=self.reminder_before_hours) or None
        before: timedelta | None = billing_settings.REMINDER_BEFORE
        return before or None

    @property
    def currency(self) -> str:
        allowed = billing_settings.CURRENCIES
        if self.default_currency and self.default_currency.upper() in allowed:
            return self.default_currency.upper()
        return allowed[0]


def settings_url(site: Site, tab: str = "") -> str:
    """The admin URL of ``site``'s Client Billing settings, opened on ``tab`` (``stripe``,
    ``email``, ``invoices``: Wagtail names a tab's anchor after its heading)."""
    meta = ClientBillingSettings._meta
    url = reverse("wagtailsettings:edit", args=(meta.app_label, meta.model_name, site.pk))
    return f"{url}#tab-{tab}" if tab else url


class InvoiceCounter(models.Model):
    """A site's invoice numbers: the last sequence handed out, one row per site.

    A row of its own, apart from :class:`ClientBillingSettings`, so that saving the
    settings (which an editor may have loaded before an invoice was created) can never
    write an older count back.

    Attributes:
        last_sequence: the last number :meth:`next_for_site` handed out; 0 before any.
    """

    site = models.OneToOneField(
        Site,
        verbose_name=_("site"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="client_billing_invoice_counter",
    )
    last_sequence = models.PositiveIntegerField(_("last invoice sequence"), default=0)

    class Meta:
        verbose_name = _("invoice counter")
        verbose_name_plural = _("invoice counters")

    def __str__(self) -> str:
        return f"{self.site_id}: {self.last_sequence}"

    @classmethod
    def next_for_site(cls, site_id: int) -> int:
        """Count one more invoice for the site and return its sequence, under concurrency.

        ``SELECT ... FOR UPDATE`` holds the counter row until the caller's transaction
        ends, so concurrent creators queue on it and never read the same value; two first
        invoices of a site race on the primary key, and the loser reads the winner's row.
        Call it inside the transaction that saves the invoice: the unique constraint on
        the invoice's ``(site, sequence)`` is the backstop.
        """
        with transaction.atomic():
            counter, _created = cls.objects.select_for_update().get_or_create(site_id=site_id)
            counter.last_sequence += 1
            counter.save(update_fields=["last_sequence"])
            return counter.last_sequence


class BillingType(models.TextChoices):
    ONE_TIME = "one_time", _("One-time")
    WEEKLY = "weekly", _("Recurring weekly")
    MONTHLY = "monthly", _("Recurring monthly")
    YEARLY = "yearly", _("Recurring yearly")


#: Stripe's ``recurring.interval`` for each recurring billing type.
RECURRING_INTERVALS = {
    BillingType.WEEKLY: "week",
    BillingType.MONTHLY: "month",
    BillingType.YEARLY: "year",
}


class EmailStatus(models.TextChoices):
    NOT_SENT = "not_sent", _("Not sent")
    QUEUED = "queued", _("Queued")
    SENT = "sent", _("Sent")
    RETRYING = "retrying", _("Retrying")
    FAILED = "failed", _("Failed")


class InvoiceQuerySet(models.QuerySet["Invoice"]):
    def visible(self) -> InvoiceQuerySet:
        """Everything but deleted invoices: what listings show by default."""
        return self.exclude(status=InvoiceStatus.DELETED)

    def due_for_expiry(self, now=None) -> InvoiceQuerySet:
        return self.filter(status=InvoiceStatus.PENDING, expires_at__lte=now or timezone.now())

    def overdue(self, now=None) -> InvoiceQuerySet:
        """Pending invoices past their due date whose link has not expired yet."""
        now = now or timezone.now()
        return self.filter(
            status=InvoiceStatus.PENDING,
            due_date__lt=timezone.localdate(now),
            expires_at__gt=now,
        )

    def for_listing(self) -> InvoiceQuerySet:
        return self.select_related("site", "account", "created_by")


class Invoice(FormattedRefundedAmount, ClusterableModel):
    """A billing request sent to a client, payable through a link until it expires.

    Attributes:
        token: the unguessable part of the payment link; the only id a client sees.
        number: per-site ``INV-000042``, assigned once, when it is sent (a draft has none).
        amount: in minor units of ``currency`` (``12500`` USD is $125.00).
        status: written only by :mod:`wagtail_client_billing.lifecycle`.
        late_payment: money arrived after it had expired or was deleted.
        amount_mismatch: the Checkout Session that paid it was for another currency or
            subtotal than the invoice (a hook changed the price); it is paid all the same.
        checkout_currency: the paying Checkout Session's currency; empty until one paid.
        checkout_amount_subtotal, checkout_amount_discount, checkout_amount_tax,
        checkout_amount_shipping, checkout_amount_total: that session's figures in minor
            units of ``checkout_currency``, as Stripe reported them (``None``: not given).
        checkout_attempt: bumped for each new Checkout Session, part of its idempotency key.
    """

    # Unique through Meta.constraints: a unique field would get a second, LIKE-only index
    # on PostgreSQL, which every status change updates and no query uses.
    token = models.CharField(max_length=64, default=new_token, editable=False)
    site = models.ForeignKey(
        Site,
        verbose_name=_("site"),
        on_delete=models.PROTECT,
        related_name="client_billing_invoices",
        db_index=False,  # the (site, ...) indexes of Meta.indexes start with it
    )
    account = models.ForeignKey(
        StripeAccount,
        verbose_name=_("Stripe account"),
        on_delete=models.PROTECT,
        related_name="invoices",
    )
    test_mode = models.BooleanField(_("test mode"), default=False)
    #: Empty for a draft: the number is taken when it is sent, so sent ones have no gaps.
    sequence = models.PositiveIntegerField(null=True, blank=True, editable=False)
    number = models.CharField(_("number"), max_length=32, blank=True, editable=False)

    email = models.EmailField(_("client email"), max_length=254)
    #: The client in the directory; ``email`` stays the address this request went to.
    #: PROTECT: a client with invoices is never deleted (merged or erased instead), so
    #: no financial record loses its client.
    client = models.ForeignKey(
        Client,
        verbose_name=_("client"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="invoices",
        db_index=False,  # wcb_invoice_client_created in Meta.indexes
    )
    currency = models.CharField(_("currency"), max_length=3)
    amount = models.PositiveBigIntegerField(_("amount (minor units)"))
    description = models.CharField(_("description"), max_length=500, blank=True)
    note = models.TextField(_("internal note"), blank=True, help_text=_("Only editors see this."))
    billing_type = models.CharField(
        _("billing type"), max_length=10, choices=BillingType.choices, default=BillingType.ONE_TIME
    )
    success_url = models.URLField(_("success URL"), max_length=2000)
    cancel_url = models.URLField(_("cancel URL"), max_length=2000)
    #: A code of ``settings.LANGUAGES`` (the form offers them); blank: the default rule of
    #: :func:`..languages.default_language`, resolved whenever the client is addressed.
    language = models.CharField(
        _("language"),
        max_length=15,
        blank=True,
        default="",
        db_default="",
        help_text=_("The language of the emails, pages, PDF and payment page the client sees."),
    )

    status = models.CharField(
        _("status"),
        max_length=32,
        choices=status_table.choices(),
        default=InvoiceStatus.PENDING,
        editable=False,
    )
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    status_source = models.CharField(max_length=20, blank=True, editable=False)
    late_payment = models.BooleanField(_("paid late"), default=False, editable=False)
    payment_failure = models.CharField(
        _("last payment failure"), max_length=500, blank=True, editable=False
    )
    # Database defaults too, so rows inserted by code that predates these columns (a
    # rolling deploy, a bulk INSERT naming its columns) still fit.
    amount_mismatch = models.BooleanField(
        _("paid amount differs"), default=False, db_default=False, editable=False
    )
    checkout_currency = models.CharField(
        _("currency paid"), max_length=3, blank=True, default="", db_default="", editable=False
    )
    checkout_amount_subtotal = models.PositiveBigIntegerField(
        _("subtotal paid (minor units)"), null=True, blank=True, editable=False
    )
    checkout_amount_discount = models.PositiveBigIntegerField(
        _("discount (minor units)"), null=True, blank=True, editable=False
    )
    checkout_amount_tax = models.PositiveBigIntegerField(
        _("tax (minor units)"), null=True, blank=True, editable=False
    )
    checkout_amount_shipping = models.PositiveBigIntegerField(
        _("shipping (minor units)"), null=True, blank=True, editable=False
    )
    checkout_amount_total = models.PositiveBigIntegerField(
        _("total paid (minor units)"), null=True, blank=True, editable=False
    )

    # Tax and discount (see :mod:`.pricing`): the rate's figures are copied in when the
    # request is made, so a later change of the rate never changes a sent invoice.
    tax_rate = models.ForeignKey(
        "TaxRate",
        verbose_name=_("tax rate"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="invoices",
        db_index=False,  # a partial index in Meta.indexes: most invoices have no rate
    )
    tax_name = models.CharField(_("tax"), max_length=50, blank=True, default="", db_default="")
    tax_percentage = models.DecimalField(
        _("tax percentage"), max_digits=7, decimal_places=4, null=True, blank=True
    )
    tax_inclusive = models.BooleanField(
        _("tax included in prices"), default=False, db_default=False
    )
    automatic_tax = models.BooleanField(
        _("Stripe Tax"),
        default=False,
        db_default=False,
        help_text=_("Stripe calculates the tax at checkout from the client's address."),
    )
    discount_kind = models.CharField(
        _("discount"),
        max_length=16,
        choices=DiscountKind.choices,
        blank=True,
        default="",
        db_default="",
    )
    discount_amount = models.PositiveBigIntegerField(
        _("discount amount (minor units)"), null=True, blank=True
    )
    discount_percent = models.DecimalField(
        _("discount percentage"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    discount_duration = models.CharField(
        _("discount applies to"),
        max_length=8,
        choices=DiscountDuration.choices,
        default=DiscountDuration.ONCE,
        db_default=DiscountDuration.ONCE,
    )
    #: The coupon made on the connected account for this request's discount.
    stripe_coupon_id = models.CharField(
        max_length=255, blank=True, default="", db_default="", editable=False
    )

    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    expires_at = models.DateTimeField(_("expires"))
    #: The payment link's lifetime the editor chose for this request, counted from
    #: sending; ``None``: the site's (``ClientBillingSettings.payment_link_lifetime``).
    payment_link_lifetime = models.DurationField(
        _("payment link lifetime"), null=True, blank=True, editable=False
    )
    #: When the client should have paid: overdue after this day, payable until it expires.
    due_date = models.DateField(_("due date"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True, editable=False)
    expired_at = models.DateTimeField(_("expired at"), null=True, blank=True, editable=False)
    deleted_at = models.DateTimeField(_("deleted at"), null=True, blank=True, editable=False)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("deleted by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        db_index=False,  # a partial index in Meta.indexes
    )
    copied_from = models.ForeignKey(
        "self",
        verbose_name=_("copied from"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="copies",
        editable=False,
        db_index=False,  # a partial index in Meta.indexes
    )

    email_status = models.CharField(
        _("email"),
        max_length=10,
        choices=EmailStatus.choices,
        default=EmailStatus.NOT_SENT,
        editable=False,
    )
    email_attempts = models.PositiveIntegerField(default=0, editable=False)
    email_last_error = models.TextField(_("last email error"), blank=True, editable=False)
    email_sent_at = models.DateTimeField(_("email sent"), null=True, blank=True, editable=False)
    #: When a worker claimed the current send attempt; a claim older than the task
    #: timeout belongs to a worker that died, and the re-delivered task takes it over.
    email_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: When the current send attempt was queued, or when its retry is due. A waiting
    #: email whose queue time and claim are both older than the task timeout lost its
    #: task, and the resume sweep queues it again.
    email_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: When a run of the reminder task claimed the reminder; one older than the task
    #: timeout belongs to a worker that died, and the next run takes it over.
    reminder_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    reminder_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: The reminder on the due date, claimed and marked sent like the one before it.
    due_reminder_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    due_reminder_sent_at = models.DateTimeField(null=True, blank=True, editable=False)

    checkout_session_id = models.CharField(max_length=255, blank=True, editable=False)
    checkout_session_url = models.URLField(max_length=2000, blank=True, editable=False)
    checkout_session_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    checkout_attempt = models.PositiveIntegerField(default=0, editable=False)
    #: When the next attempt was first asked for: its session's expiry is reckoned from
    #: this, so asking again after a request whose answer was lost sends the same
    #: parameters with the same idempotency key. Cleared once the attempt is settled.
    checkout_attempt_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    payment_intent_id = models.CharField(max_length=255, blank=True, editable=False)
    subscription_id = models.CharField(max_length=255, blank=True, editable=False)
    subscription_status = models.CharField(max_length=32, blank=True, editable=False)
    customer_id = models.CharField(max_length=255, blank=True, editable=False)
    renewals_paid = models.PositiveIntegerField(default=0, editable=False)
    #: What was refunded of its payments, in minor units of ``currency`` (pending and
    #: succeeded refunds); written by :mod:`.billing.refunds`.
    amount_refunded = models.PositiveBigIntegerField(
        _("amount refunded (minor units)"), default=0, db_default=0, editable=False
    )
    last_renewal_paid_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: Stripe's ``created`` of the ``customer.subscription.*`` event whose state
    #: ``subscription_status`` holds; an older event is not applied over it.
    subscription_state_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: The Checkout Session whose delayed payment (a bank debit) an
    #: ``async_payment_succeeded``/``failed`` event settled; its late ``completed
    #: (unpaid)`` then leaves the invoice alone.
    delayed_payment_resolved_session = models.CharField(
        max_length=255, blank=True, default="", db_default="", editable=False
    )
    #: The dispute state beside the status (written by ``webhooks.disputes`` from the
    #: invoice's :class:`InvoiceDispute` rows): the open dispute, else a lost one, else
    #: blank. ``dispute_status`` is Stripe's (``needs_response``, ``lost``...).
    dispute_id = models.CharField(
        _("dispute"), max_length=255, blank=True, db_default="", default="", editable=False
    )
    dispute_status = models.CharField(
        _("dispute status"), max_length=32, blank=True, db_default="", default="", editable=False
    )
    dispute_reason = models.CharField(
        _("dispute reason"), max_length=64, blank=True, db_default="", default="", editable=False
    )
    dispute_amount = models.PositiveBigIntegerField(
        _("disputed amount"), null=True, blank=True, editable=False
    )
    dispute_currency = models.CharField(
        max_length=3, blank=True, db_default="", default="", editable=False
    )
    dispute_evidence_due_by = models.DateTimeField(
        _("dispute evidence due by"), null=True, blank=True, editable=False
    )
    dispute_amount_lost = models.PositiveBigIntegerField(
        _("amount lost to disputes"), db_default=0, default=0, editable=False
    )
    #: The subscription's schedule, from its ``customer.subscription.*`` events and the
    #: editor's cancellations: the current period's end, and a cancellation to come.
    subscription_current_period_end = models.DateTimeField(
        _("current period ends"), null=True, blank=True, editable=False
    )
    subscription_cancel_at_period_end = models.BooleanField(
        _("cancels at period end"), db_default=False, default=False, editable=False
    )
    subscription_canceled_at = models.DateTimeField(
        _("subscription cancelled"), null=True, blank=True, editable=False
    )
    #: Failed renewal attempts (``invoice.payment_failed``), one per Stripe invoice and
    #: attempt (:class:`RenewalFailure`).
    renewal_failures = models.PositiveIntegerField(db_default=0, default=0, editable=False)
    last_renewal_failed_at = models.DateTimeField(null=True, blank=True, editable=False)

    publish_page_when_paid = models.ForeignKey(
        PAGE_MODEL,
        verbose_name=_("publish this page when paid"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # a partial index in Meta.indexes
    )
    unpublish_page_when_expired = models.ForeignKey(
        PAGE_MODEL,
        verbose_name=_("unpublish this page when expired"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # a partial index in Meta.indexes
    )
    metadata = models.JSONField(default=dict, blank=True)

    objects = InvoiceQuerySet.as_manager()

    #: What "Send new invoice" carries over from an expired or deleted request to the
    #: new one (:meth:`copy_for_new_request`): what the editor asked for.
    COPIED_FIELDS = (
        "site",
        "test_mode",
        "email",
        "client",
        "currency",
        "amount",
        "description",
        "note",
        "billing_type",
        "success_url",
        "cancel_url",
        "publish_page_when_paid",
        "unpublish_page_when_expired",
        "metadata",
        "discount_kind",
        "discount_amount",
        "discount_percent",
        "discount_duration",
        "payment_link_lifetime",
        "language",
    )
    #: What the new request gets afresh: its own identity, number, account (the site's
    #: account for the mode as it is now, chosen by the form), expiry, status and
    #: everything that happened to the old one. ``copied_from`` points to the old one.
    #: Every field is in one of the two lists; a test fails until a new one is.
    NOT_COPIED_FIELDS = (
        "id",
        "token",
        "account",
        "sequence",
        "number",
        "status",
        "status_changed_at",
        "status_source",
        "late_payment",
        "payment_failure",
        "amount_mismatch",
        "checkout_currency",
        "checkout_amount_subtotal",
        "checkout_amount_discount",
        "checkout_amount_tax",
        "checkout_amount_shipping",
        "checkout_amount_total",
        "created_at",
        "created_by",
        "expires_at",
        "paid_at",
        "expired_at",
        "deleted_at",
        "deleted_by",
        "copied_from",
        "email_status",
        "email_attempts",
        "email_last_error",
        "email_sent_at",
        "email_claimed_at",
        "email_queued_at",
        "reminder_claimed_at",
        "reminder_sent_at",
        "due_reminder_claimed_at",
        "due_reminder_sent_at",
        "due_date",
        "checkout_session_id",
        "checkout_session_url",
        "checkout_session_expires_at",
        "checkout_attempt",
        "checkout_attempt_started_at",
        "payment_intent_id",
        "subscription_id",
        "subscription_status",
        "customer_id",
        "renewals_paid",
        "last_renewal_paid_at",
        "amount_refunded",
        "subscription_state_at",
        "delayed_payment_resolved_session",
        # The tax is the site's as it is when the new request is made (the form picks).
        "tax_rate",
        "tax_name",
        "tax_percentage",
        "tax_inclusive",
        "automatic_tax",
        "stripe_coupon_id",
        "dispute_id",
        "dispute_status",
        "dispute_reason",
        "dispute_amount",
        "dispute_currency",
        "dispute_evidence_due_by",
        "dispute_amount_lost",
        "subscription_current_period_end",
        "subscription_cancel_at_period_end",
        "subscription_canceled_at",
        "renewal_failures",
        "last_renewal_failed_at",
    )

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["site", "sequence"], name="wcb_invoice_site_sequence"),
            models.UniqueConstraint(fields=["token"], name="wcb_invoice_token_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="wcb_invoice_amount_positive"),
        ]
        indexes = [
            # The expiry sweep and the dashboard's "expiring soon": pending invoices by due
            # time, nothing else in the index. ``status`` leads so that a query's
            # ``status = 'pending'`` is an equality here as much as on
            # wcb_invoice_status_created, and the range on ``expires_at`` makes this one
            # the better: SQLite's planner picks it with or without statistics.
            models.Index(
                fields=["status", "expires_at"],
                name="wcb_invoice_pending_expiry",
                condition=Q(status="pending"),
            ),
            # Listings: newest first, per site, per status.
            models.Index(fields=["-created_at", "-id"], name="wcb_invoice_created"),
            models.Index(fields=["site", "-created_at"], name="wcb_invoice_site_created"),
            models.Index(fields=["status", "-created_at"], name="wcb_invoice_status_created"),
            # The listing filtered by site and status, and its page count.
            models.Index(fields=["site", "status", "-created_at"], name="wcb_invoice_site_status"),
            # The listing's search for a whole email address (any letter case) or invoice
            # number: an exact match through these, at any table size.
            models.Index(Lower("email"), name="wcb_invoice_email_ci"),
            # A client's page: their invoices, newest first; also what PROTECT looks up.
            models.Index(fields=["client", "-created_at"], name="wcb_invoice_client_created"),
            models.Index(fields=["number"], name="wcb_invoice_number"),
            # The webhook's look-up by Checkout Session: only the invoices that have one,
            # so a status change of one without (most of an expiry sweep) adds no entry.
            models.Index(
                fields=["checkout_session_id"],
                name="wcb_invoice_session",
                condition=~Q(checkout_session_id=""),
            ),
            # The sweep of withdrawn invoices whose Checkout Session may still be open: a
            # handful of rows whatever the table's size (an expired session is forgotten).
            models.Index(
                fields=["status_changed_at"],
                name="wcb_invoice_withdrawn_session",
                condition=Q(status__in=["expired", "deleted"]) & ~Q(checkout_session_url=""),
            ),
            # The dashboard's failed emails: a handful of rows whatever the table's size.
            models.Index(
                fields=["site"], name="wcb_invoice_email_failed", condition=Q(email_status="failed")
            ),
            # The dashboard's disputes to answer and past-due subscriptions: the invoices
            # with a dispute, or a subscription, at all. One comparison each, which the
            # queries repeat (``billing.overview``): SQLite uses a partial index only when
            # a query's own terms imply its condition, and an ``IN`` list that Django
            # binds as parameters never does.
            models.Index(
                fields=["site"], name="wcb_invoice_disputed", condition=~Q(dispute_status="")
            ),
            models.Index(
                fields=["site"],
                name="wcb_invoice_subscription",
                condition=~Q(subscription_status=""),
            ),
            # What deleting a user, an invoice or a page looks up (SET_NULL): only the rows
            # that have one, so a status change of an invoice without one (every row of
            # an expiry sweep, in practice) adds no entry to them.
            models.Index(
                fields=["deleted_by"],
                name="wcb_invoice_deleted_by",
                condition=Q(deleted_by__isnull=False),
            ),
            models.Index(
                fields=["copied_from"],
                name="wcb_invoice_copied_from",
                condition=Q(copied_from__isnull=False),
            ),
            models.Index(
                fields=["publish_page_when_paid"],
                name="wcb_invoice_publish_page",
                condition=Q(publish_page_when_paid__isnull=False),
            ),
            models.Index(
                fields=["unpublish_page_when_expired"],
                name="wcb_invoice_unpublish_page",
                condition=Q(unpublish_page_when_expired__isnull=False),
            ),
            # What deleting a tax rate looks up (PROTECT), likewise.
            models.Index(
                fields=["tax_rate"],
                name="wcb_invoice_tax_rate",
                condition=Q(tax_rate__isnull=False),
            ),
        ]
        permissions = [
            ("connect_stripe_account", _("Can connect and unlink Stripe accounts")),
            ("cancel_subscription", _("Can cancel subscriptions")),
            ("refund_invoice", _("Can refund paid invoices")),
        ]

    def __str__(self) -> str:
        if self.number:
            return self.number
        return str(_("Draft") if self.pk else _("New invoice"))

    def save(self, *args, **kwargs) -> None:
        if self._state.adding and not self.sequence and self.status != InvoiceStatus.DRAFT:
            with transaction.atomic():
                self.assign_number()
                super().save(*args, **kwargs)
            return
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        """The number with its site, ``INV-000001 (Client A)``: numbers are per site, so
        the number alone is ambiguous wherever invoices of several sites are shown."""
        if self.site_id is None:
            return str(self)
        return f"{self} ({site_display_name(self.site)})"

    # --- money ------------------------------------------------------------------------------

    @property
    def amount_major(self):
        return to_major(self.amount, self.currency)

    @property
    def amount_refunded_major(self):
        return to_major(self.amount_refunded, self.currency)

    @property
    def checkout_figures(self) -> list[tuple[str, str]]:
        """What Stripe's Checkout charged, as ``(label, formatted amount)`` rows.

        Empty until a Checkout Session paid the invoice; a figure Stripe did not give
        is left out.
        """
        if not self.checkout_currency:
            return []
        rows = (
            (_("Subtotal"), self.checkout_amount_subtotal),
            (_("Discount"), self.checkout_amount_discount),
            (_("Tax"), self.checkout_amount_tax),
            (_("Shipping"), self.checkout_amount_shipping),
            (_("Total paid"), self.checkout_amount_total),
        )
        return [
            (str(label), format_money(value, self.checkout_currency))
            for label, value in rows
            if value is not None
        ]

    # --- tax and discount -------------------------------------------------------------------

    def priced_lines(self) -> list[tuple[int, int]]:
        """The request's lines as ``(unit_amount, quantity)`` pairs, for :mod:`.pricing`."""
        return [(int(line.unit_amount), int(line.quantity)) for line in invoice_lines(self)]

    def pricing_tax(self) -> pricing.Tax | None:
        if self.tax_percentage is None or self.automatic_tax:
            return None
        return pricing.Tax(percentage=self.tax_percentage, inclusive=self.tax_inclusive)

    def pricing_discount(self) -> pricing.Discount | None:
        if self.discount_kind == DiscountKind.AMOUNT and self.discount_amount:
            return pricing.Discount(amount_off=int(self.discount_amount))
        if self.discount_kind == DiscountKind.PERCENT and self.discount_percent:
            return pricing.Discount(percent_off=self.discount_percent)
        return None

    @property
    def figures(self) -> pricing.Figures:
        """Subtotal, discount, net, tax and gross as the client pays them (one module
        computes them: :mod:`.pricing`)."""
        return pricing.compute(
            self.priced_lines(),
            self.currency,
            tax=self.pricing_tax(),
            discount=self.pricing_discount(),
        )

    @property
    def figure_rows(self) -> list[tuple[str, str]]:
        """The figures as ``(label, formatted amount)`` rows for the email and admin.

        A request with neither tax nor discount has one row, its amount. Under Stripe
        Tax the tax is not known before checkout, and the last row says so.
        """
        return self.figure_rows_for(self.figures)

    def figure_rows_for(self, figures: pricing.Figures) -> list[tuple[str, str]]:
        """:attr:`figure_rows` of ``figures`` (the request form's, before it is saved)."""
        money = self.currency
        rows: list[tuple[str, str]] = []
        if not (figures.discount or self.pricing_tax() or self.automatic_tax):
            # Translators: client-facing.
            return [(str(_("Total")), format_money(figures.gross, money))]
        # Translators: client-facing.
        rows.append((str(_("Subtotal")), format_money(figures.subtotal, money)))
        if figures.discount:
            rows.append(
                (str(self.discount_label), "\N{MINUS SIGN}" + format_money(figures.discount, money))
            )
        if self.pricing_tax() is not None:
            # Translators: client-facing.
            rows.append((str(_("Net")), format_money(figures.net, money)))
            rows.append((self.tax_label, format_money(figures.tax, money)))
            rows.append((str(_("Total")), format_money(figures.gross, money)))
        elif self.automatic_tax:
            # Translators: client-facing.
            rows.append((str(_("Total before tax")), format_money(figures.gross, money)))
            # Translators: client-facing.
            rows.append(
                (
                    str(_("Tax")),
                    # Translators: client-facing.
                    str(_("calculated at checkout")),
                )
            )
        else:
            rows.append((str(_("Total")), format_money(figures.gross, money)))
        return rows

    @property
    def billed_figures(self) -> dict[str, int | None]:
        """Discount, net, tax and total in minor units of ``currency``, for the export.

        Computed by :mod:`.pricing`; under Stripe Tax, Stripe's own figures once a
        Checkout Session paid (before that the tax and total are not known: ``None``).
        """
        figures = self.figures
        if not self.automatic_tax:
            return {
                "discount": figures.discount,
                "net": figures.net,
                "tax": figures.tax,
                "total": figures.gross,
            }
        if self.checkout_currency and self.checkout_amount_total is not None:
            tax = self.checkout_amount_tax or 0
            return {
                "discount": self.checkout_amount_discount or 0,
                "net": self.checkout_amount_total - tax,
                "tax": tax,
                "total": self.checkout_amount_total,
            }
        return {"discount": figures.discount, "net": figures.gross, "tax": None, "total": None}

    @property
    def tax_label(self) -> str:
        if self.tax_percentage is None:
            # Translators: client-facing.
            return str(_("Tax"))
        percent = format_percent(self.tax_percentage)
        if self.tax_inclusive:
            return str(
                # Translators: client-facing.
                _("%(name)s %(percent)s (included)") % {"name": self.tax_name, "percent": percent}
            )
        # Translators: client-facing.
        return str(_("%(name)s %(percent)s") % {"name": self.tax_name, "percent": percent})

    @property
    def discount_label(self) -> str:
        if self.discount_kind == DiscountKind.PERCENT and self.discount_percent is not None:
            return str(
                # Translators: client-facing.
                _("Discount %(percent)s") % {"percent": format_percent(self.discount_percent)}
            )
        # Translators: client-facing.
        return str(_("Discount"))

    # --- state ------------------------------------------------------------------------------

    @property
    def is_recurring(self) -> bool:
        return self.billing_type != BillingType.ONE_TIME

    @property
    def recurring_interval(self) -> str | None:
        return RECURRING_INTERVALS.get(BillingType(self.billing_type))

    @property
    def is_past_expiry(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def display_number(self) -> str:
        """The invoice number, or "Draft" for a draft, which has none yet."""
        return self.number or str(_("Draft"))

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT

    @property
    def is_overdue(self) -> bool:
        """Past its due date and still payable: a tag and a filter, not a status."""
        return (
            self.due_date is not None and self.due_date < timezone.localdate() and self.is_payable
        )

    @property
    def effective_status(self) -> str:
        """The status a client should see: pending past its expiry is expired already."""
        if self.status == InvoiceStatus.PENDING and self.is_past_expiry:
            return InvoiceStatus.EXPIRED
        return self.status

    @property
    def status_definition(self) -> status_table.Status:
        """The row of :mod:`.status`'s table for the stored status."""
        return status_table.get(self.status)

    @property
    def effective_status_definition(self) -> status_table.Status:
        """The row for :attr:`effective_status`: what the client and the actions go by."""
        return status_table.get(self.effective_status)

    @property
    def is_payable(self) -> bool:
        return self.effective_status_definition.payable

    @property
    def can_be_deleted(self) -> bool:
        """Whether an editor may delete it now (the rule is the status table's)."""
        return self.status_definition.deletable

    @property
    def deletion_refusal(self) -> str:
        """Why an editor may not delete it, in words for them (empty when they may)."""
        return "" if self.can_be_deleted else str(self.status_definition.refusal)

    # --- copies -----------------------------------------------------------------------------

    def copy_for_new_request(self) -> Invoice:
        """A new, unsaved billing request with this one's :attr:`COPIED_FIELDS`.

        The rest are the new request's defaults; ``copied_from`` keeps the trail. Related
        objects already loaded on this invoice are shared, not fetched again; JSON values
        are copied, so editing the new request's metadata leaves this one's alone.
        """
        new = Invoice(copied_from=self)
        for name in self.COPIED_FIELDS:
            field = self._meta.get_field(name)
            if field.is_relation and field.is_cached(self):
                setattr(new, name, getattr(self, name))
            else:
                attname = field.attname
                setattr(new, attname, copy.deepcopy(getattr(self, attname)))
        return new

    # --- numbering --------------------------------------------------------------------------

    @staticmethod
    def format_number(sequence: int) -> str:
        return f"INV-{sequence:06d}"

    def assign_number(self) -> None:
        """Take the site's next number from its :class:`InvoiceCounter`."""
        self.sequence = InvoiceCounter.next_for_site(self.site_id)
        self.number = self.format_number(self.sequence)

    # --- links ------------------------------------------------------------------------------

    def public_url(self, name: str = "pay") -> str:
        """The absolute URL of one of the invoice's public pages (``pay``, ``return``,
        ``cancel``, ``invoice_status`` of :mod:`.urls`), built from the Site's root URL.

        Never from a request's Host header: the links go into emails and to Stripe, and a
        forged Host would send the client, and their token, somewhere else.
        """
        path = reverse(f"wagtail_client_billing:{name}", kwargs={"token": self.token})
        return self.site.root_url.rstrip("/") + path

    def get_pay_url(self) -> str:
        """The payment link the client is emailed."""
        return self.public_url("pay")

    def stripe_dashboard_url(self) -> str:
        if not self.checkout_session_id:
            return ""
        prefix = "test/" if self.test_mode else ""
        target = self.payment_intent_id and f"payments/{self.payment_intent_id}"
        if self.subscription_id:
            target = f"subscriptions/{self.subscription_id}"
        return (
            f"https://dashboard.stripe.com/{self.account.stripe_id}/{prefix}{target or 'payments'}"
        )

    # --- the subscription's own state ----------------------------------------------------------

    @property
    def subscription_state_label(self) -> str:
        """The subscription's state in words ("Active", "Past due"...), "" when none."""
        if not self.subscription_status:
            return ""
        try:
            return str(SubscriptionState(self.subscription_status).label)
        except ValueError:
            return self.subscription_status.replace("_", " ")

    @property
    def subscription_is_live(self) -> bool:
        """Stripe still bills it (it has not ended)."""
        return bool(self.subscription_id) and self.subscription_status in LIVE_SUBSCRIPTION_STATES

    @property
    def next_renewal_at(self):
        """When Stripe next bills the subscription: the current period's end, unless it
        ends then or has ended."""
        if self.subscription_is_live and not self.subscription_cancel_at_period_end:
            return self.subscription_current_period_end
        return None

    # --- the dispute state beside the status -------------------------------------------------

    @property
    def dispute_is_open(self) -> bool:
        return bool(self.dispute_status) and self.dispute_status not in CLOSED_DISPUTE_STATUSES

    @property
    def dispute_status_label(self) -> str:
        if not self.dispute_status:
            return ""
        try:
            return str(DisputeStatus(self.dispute_status).label)
        except ValueError:
            return self.dispute_status

    @property
    def formatted_dispute_amount(self) -> str:
        currency = self.dispute_currency or self.currency
        return format_money(self.dispute_amount or 0, currency)

    @property
    def formatted_dispute_amount_lost(self) -> str:
        return format_money(self.dispute_amount_lost, self.dispute_currency or self.currency)

    def admin_url(self) -> str:
        """The absolute URL of this invoice's page in the admin, for notices to editors:
        ``WAGTAILADMIN_BASE_URL``, else the site's root URL."""
        viewset = getattr(type(self), "snippet_viewset", None)
        if viewset is None:
            return ""
        path = reverse(viewset.get_url_name("inspect"), args=[self.pk])
        base = getattr(settings, "WAGTAILADMIN_BASE_URL", "") or self.site.root_url
        return base.rstrip("/") + path

    def dispute_dashboard_url(self) -> str:
        """The dispute in the connected account's Stripe Dashboard (test or live)."""
        if not self.dispute_id:
            return ""
        prefix = "test/" if self.test_mode else ""
        return f"https://dashboard.stripe.com/{self.account.stripe_id}/{prefix}disputes/{self.dispute_id}"


class WebhookOutcome(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Ignored")
    FAILED = "failed", _("Failed")


class WebhookEvent(models.Model):
    """A Stripe event as received, stored once per event id.

    Attributes:
        event_id: Stripe's ``evt_...``; unique, so a redelivery is recognised.
        account: the connected account (``acct_...``) the event is about, if any.
        outcome: what applying it did; ``failed`` events can be reprocessed.
        error: why it was ignored, or the error that made it fail.
        traceback: where applying a failed event raised (Python's traceback, without
            local variables or the settings' secrets); emptied when it succeeds.
    """

    # Unique through Meta.constraints (what every delivery's ON CONFLICT uses), not
    # unique=True, which adds a LIKE-only index on PostgreSQL that each insert pays for.
    event_id = models.CharField(_("event id"), max_length=255)
    type = models.CharField(_("type"), max_length=100)
    account = models.CharField(_("account"), max_length=64, blank=True)
    livemode = models.BooleanField(_("live mode"), default=False)
    payload = models.JSONField(_("payload"))
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=10, choices=WebhookOutcome.choices, default=WebhookOutcome.RECEIVED
    )
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True, default="")
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_events",
        db_index=False,  # a partial index in Meta.indexes: a new event has no invoice yet
    )

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["event_id"], name="wcb_event_event_id_unique"),
        ]
        indexes = [
            models.Index(fields=["outcome", "-received_at"], name="wcb_event_outcome"),
            models.Index(
                fields=["invoice"], name="wcb_event_invoice", condition=Q(invoice__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class WebhookDelivery(models.Model):
    """A verified delivery from Stripe, waiting for a worker to store it as a
    :class:`WebhookEvent` and apply it (:func:`.webhooks.intake.admit`).

    The webhook view's one write: the body as Stripe sent it and when it came, in a
    table with no index but its primary key, so a delivery costs about what a bare
    insert does. Redeliveries are rows of their own here; the event's unique id decides
    in :class:`WebhookEvent`, where a worker moves each row (and deletes it) within
    ``WEBHOOK_QUEUE_DELAY`` or, after a lost task, the resume sweep. The table is empty
    but for those moments.
    """

    body = models.TextField(_("body"))
    received_at = models.DateTimeField(_("received"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        default_permissions = ()

    def __str__(self) -> str:
        return f"delivery {self.pk}"


class SubscriptionRenewal(FormattedAmount, models.Model):
    """One paid renewal of a recurring invoice's subscription: a row per Stripe invoice.

    The unique ``stripe_invoice_id`` is what makes a renewal count once, however often
    its ``invoice.paid`` is delivered or reprocessed.

    Attributes:
        amount: what Stripe's invoice collected, in minor units of ``currency``.
        billing_reason: Stripe's, e.g. ``subscription_cycle``.
        paid_at: when Stripe says it was paid.
    """

    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        on_delete=models.PROTECT,
        related_name="renewals",
    )
    stripe_invoice_id = models.CharField(_("Stripe invoice"), max_length=255, unique=True)
    amount = models.BigIntegerField(_("amount"), default=0)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    billing_reason = models.CharField(_("billing reason"), max_length=64, blank=True)
    paid_at = models.DateTimeField(_("paid at"))
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("subscription renewal")
        verbose_name_plural = _("subscription renewals")
        ordering = ["-paid_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.stripe_invoice_id} ({self.invoice_id})"


def user_display(user: AbstractBaseUser | None) -> str:
    if user is None:
        return ""
    full = getattr(user, "get_full_name", lambda: "")()
    return full or user.get_username()


# --- the app's audit log --------------------------------------------------------------------


class ClientBillingLogEntryManager(BaseLogEntryManager):
    """Wagtail's log entry manager for the app's objects, limited to each user's sites.

    Wagtail's Site history report (and its export) shows every registered log model's
    ``viewable_by_user(user)``; for its generic ``ModelLogEntry`` that is every entry of a
    model the user has any permission on, whatever the site. Logging the app's objects to
    this model instead (``register_log_actions`` in ``wagtail_hooks.py``) lets the access
    scope decide which entries an editor the ``client_billing_sites_for_user`` hook limits
    may read.
    """

    def log_action(self, instance: models.Model, action: str, **kwargs: object) -> BaseLogEntry:
        kwargs.update(object_id=str(instance.pk))
        entry: BaseLogEntry = super().log_action(instance, action, **kwargs)
        return entry

    def for_instance(self, instance: models.Model) -> models.QuerySet[ClientBillingLogEntry]:
        return self.filter(
            content_type=ContentType.objects.get_for_model(instance, for_concrete_model=False),
            object_id=str(instance.pk),
        )

    def viewable_by_user(self, user: Any) -> models.QuerySet[ClientBillingLogEntry]:
        """Entries of the invoices, settings and clients of the sites ``user`` may bill for; entries
        of Stripe accounts (which may serve several clients' sites) only to users who see
        every site. Each model's entries only to users with a permission on it, as Wagtail
        does for its own log models.
        """
        # Not super().viewable_by_user(): Wagtail caches the permitted content types on
        # the user from whichever log model asks first, which leaves this table's out.
        visible = Q(pk__in=[])
        for model in (Invoice, ClientBillingSettings, StripeAccount, Client):
            content_type = ContentType.objects.get_for_model(model)
            if _has_any_permission(user, content_type):
                visible |= Q(content_type=content_type) & self._on_users_sites(model, user)
        return self.filter(visible)

    @staticmethod
    def _on_users_sites(model: type[models.Model], user: Any) -> Q:
        if model is StripeAccount or not hooks.narrows_sites():
            return Q() if hooks.sees_every_site(user) else Q(pk__in=[])
        if model is Client:
            # A client's entries: those of clients billed on the user's sites (the access
            # scope's rule for clients, :func:`..scope.clients_for_user`, in its short form).
            billed = Invoice.objects.filter(
                site__in=hooks.sites_for_user(user).values("pk"), client__isnull=False
            )
            return Q(
                object_id__in=billed.annotate(key=Cast("client_id", CharField())).values("key")
            )
        on_sites = model._default_manager.filter(site__in=hooks.sites_for_user(user).values("pk"))
        return Q(object_id__in=on_sites.annotate(key=Cast("pk", CharField())).values("key"))


def _has_any_permission(user: Any, content_type: ContentType) -> bool:
    if not (user.is_active and user.is_authenticated):
        return False
    if user.is_superuser:
        return True
    codenames = Permission.objects.filter(content_type=content_type).values_list(
        "codename", flat=True
    )
    return any(user.has_perm(f"{content_type.app_label}.{codename}") for codename in codenames)


class ClientBillingLogEntry(BaseLogEntry):
    """The audit log of invoices, Client Billing settings and Stripe accounts.

    The same columns as Wagtail's ``ModelLogEntry``; a table of its own so that reports
    can be limited to the sites a user may bill for (:class:`ClientBillingLogEntryManager`).
    """

    object_id = models.CharField(max_length=255)

    objects = ClientBillingLogEntryManager()

    class Meta:
        # Meta is spelled out rather than inherited: Wagtail's differs between releases
        # (7.1 added an index), and the migration must be the same on all of them.
        ordering = ["-timestamp", "-id"]
        verbose_name = _("client billing log entry")
        verbose_name_plural = _("client billing log entries")
        indexes = [
            models.Index(fields=["content_type", "object_id"], name="wcb_log_object"),
            models.Index(fields=["uuid", "action", "-timestamp"], name="wcb_log_uuid_action"),
        ]

    def __str__(self) -> str:
        return f"ClientBillingLogEntry {self.pk}: {self.action!r} on {self.object_id}"


class TaxRateQuerySet(models.QuerySet["TaxRate"]):
    def active(self) -> TaxRateQuerySet:
        return self.filter(active=True)


class TaxRate(models.Model):
    """A tax rate an editor defines for a site, applied to every line of a request.

    Stripe's tax rates cannot change their percentage or whether they are inclusive, so
    neither can these: changing a rate (``billing.taxes.revise``) makes a new row with
    the new figures and archives this one (``active`` false, ``replaced_by`` the new
    one). Requests keep their own copy of the figures either way.

    Attributes:
        display_name: the tax's name as the client reads it ("VAT", "Sales tax").
        percentage: from 0 to 100, at most four decimal places (Stripe's rule).
        inclusive: the prices already include the tax (common for VAT) or it is added.
        country / state: where it applies (ISO 3166-1 alpha-2, and the ISO 3166-2
            subdivision without the country prefix), both optional.
        stripe_ids: the Stripe tax rate made for each connected account it was used on,
            by the account's id; filled when a Checkout Session first needs it.
        stripe_archive_due_at: once the rate is archived here, when its Stripe tax rates
            are next to be archived (the task's first try, then each retry); ``None``
            once Stripe archived them, or the tries ran out. A sweep finds a lost task.
        stripe_archive_attempts / stripe_archive_error: the tries made, and the last
            one's error.
    """

    site = models.ForeignKey(
        Site, verbose_name=_("site"), on_delete=models.CASCADE, related_name="+"
    )
    display_name = models.CharField(
        _("name"), max_length=50, help_text=_('As the client reads it, such as "VAT".')
    )
    percentage = models.DecimalField(
        _("percentage"),
        max_digits=7,
        decimal_places=4,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )
    inclusive = models.BooleanField(
        _("included in prices"),
        default=False,
        help_text=_("On: the amounts you enter already include this tax. Off: it is added."),
    )
    country = models.CharField(
        _("country"),
        max_length=2,
        blank=True,
        help_text=_("Two-letter country code, such as DE or US. Optional."),
    )
    state = models.CharField(
        _("region"),
        max_length=10,
        blank=True,
        help_text=_("The state or region's code without the country, such as CA. Optional."),
    )
    active = models.BooleanField(_("active"), default=True, editable=False)
    replaced_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    stripe_ids = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    stripe_archive_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    stripe_archive_attempts = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    stripe_archive_error = models.CharField(
        max_length=500, blank=True, default="", db_default="", editable=False
    )

    objects = TaxRateQuerySet.as_manager()

    class Meta:
        verbose_name = _("tax rate")
        verbose_name_plural = _("tax rates")
        ordering = ["display_name", "percentage", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percentage__gte=0) & Q(percentage__lte=100),
                name="wcb_taxrate_percentage_range",
            ),
        ]

    #: The fields Stripe fixes at creation, or that the client reads: changing one
    #: makes a new rate.
    VERSIONED_FIELDS = ("display_name", "percentage", "inclusive", "country", "state")

    def __str__(self) -> str:
        label = f"{self.display_name} {format_percent(self.percentage)}"
        if self.inclusive:
            label = str(_("%(rate)s, included") % {"rate": label})
        if self.country:
            label += f" ({self.country}{'-' + self.state if self.state else ''})"
        return label


# --- line items and the per-site catalogue ----------------------------------------------------


class Product(models.Model):
    """A saved item of a site's catalogue, managed by editors as a snippet.

    Choosing one on a billing request copies its description and unit amount into the
    line: a later edit here never changes an invoice already sent.

    Attributes:
        unit_amount: the price of one, in minor units of ``currency``.
        active: an inactive product is kept (lines may point to it) but not offered.
    """

    site = models.ForeignKey(
        Site,
        verbose_name=_("site"),
        on_delete=models.CASCADE,
        related_name="client_billing_products",
    )
    name = models.CharField(_("name"), max_length=255)
    description = models.CharField(
        _("description"),
        max_length=500,
        blank=True,
        help_text=_("What the client reads on the line. Blank: the name."),
    )
    unit_amount = models.PositiveBigIntegerField(_("unit amount (minor units)"))
    currency = models.CharField(_("currency"), max_length=3)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("catalogue product")
        verbose_name_plural = _("catalogue products")
        ordering = ["site", "name", "pk"]
        indexes = [models.Index(fields=["site", "active", "name"], name="wcb_product_site")]

    def __str__(self) -> str:
        return f"{self.name} ({self.formatted_unit_amount})"

    @property
    def line_description(self) -> str:
        """What a line chosen from this product says."""
        return self.description or self.name

    @property
    def formatted_unit_amount(self) -> str:
        return format_money(self.unit_amount, self.currency) if self.currency else ""


class InvoiceLine(models.Model):
    """One line of a billing request: description, whole quantity and unit amount.

    The lines are a copy made when the request is saved (from the form, or from a
    catalogue :class:`Product`): ``product`` only records where a line came from.
    ``Invoice.amount`` is the sum of :attr:`line_total` over an invoice's lines, kept by
    :mod:`wagtail_client_billing.billing.lines`, so totals are integer sums and never
    drift by rounding.

    Attributes:
        position: the line's place on the invoice, from 0.
        unit_amount: the price of one, in minor units of the invoice's currency.
    """

    #: Wagtail's InlinePanel numbers the lines in this field, in the order shown.
    sort_order_field = "position"

    invoice = ParentalKey(
        Invoice, verbose_name=_("invoice"), on_delete=models.CASCADE, related_name="lines"
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    description = models.CharField(_("description"), max_length=500, blank=True)
    quantity = models.PositiveIntegerField(
        _("quantity"), default=1, validators=[MinValueValidator(1)]
    )
    unit_amount = models.PositiveBigIntegerField(_("unit amount (minor units)"))
    product = models.ForeignKey(
        Product,
        verbose_name=_("catalogue product"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="lines",
    )

    class Meta:
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        ordering = ["invoice", "position", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="wcb_line_quantity_min"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.description or '—'}"

    @property
    def line_total(self) -> int:
        """Quantity times unit amount, in minor units."""
        return int(self.quantity) * int(self.unit_amount)

    @property
    def formatted_unit_amount(self) -> str:
        return format_money(self.unit_amount, self.invoice.currency)

    @property
    def formatted_line_total(self) -> str:
        return format_money(self.line_total, self.invoice.currency)


def invoice_lines(invoice: Invoice) -> list[InvoiceLine]:
    """The lines of ``invoice`` in order: its own, or, for one saved without any (by site
    code that predates line items), one unsaved line of its amount and description.

    Unsaved lines set on an unsaved invoice (the request form's) are returned as they are.
    """
    lines = sorted(invoice.lines.all(), key=lambda line: (line.position, line.pk or 0))
    if lines:
        return lines
    return [
        InvoiceLine(
            invoice=invoice,
            position=0,
            description=invoice.description,
            quantity=1,
            unit_amount=invoice.amount or 0,
        )
    ]


def lines_total(lines: list[InvoiceLine]) -> int:
    """The sum of the lines' totals, in minor units: integer arithmetic, no rounding."""
    return sum(line.line_total for line in lines)


def is_single_amount(invoice: Invoice, lines: list[InvoiceLine] | None = None) -> bool:
    """Whether ``invoice`` is one line of its own amount and description (a request made
    the quick way), which emails and pages show as before line items existed."""
    lines = invoice_lines(invoice) if lines is None else lines
    if len(lines) != 1:
        return False
    [line] = lines
    return (
        line.quantity == 1
        and line.unit_amount == invoice.amount
        and line.description == invoice.description
        and line.product_id is None
    )


def shown_lines(invoice: Invoice) -> list[InvoiceLine]:
    """The lines to list to the client and the editor: none for a single amount."""
    lines = invoice_lines(invoice)
    return [] if is_single_amount(invoice, lines) else lines


class InvoiceRollup(models.Model):
    """Invoice counts and sums per site, currency, mode, status and month: what the
    dashboard panel, the billing reports and the listing's totals read, so they cost the
    same at a hundred invoices and at a million.

    Kept current by :mod:`.rollup` (called by :mod:`.lifecycle` for every status change,
    by the sweep's set-based path, and on invoice creation and deletion); rebuilt from
    the invoices by ``manage.py client_billing_rebuild_rollup``. Each bucket is written
    twice: once for its site and once for every site together (``site_id`` 0), which
    is what a user who may bill for every site reads. The month is the first day of the
    month in the project's time zone (``TIME_ZONE``): of ``paid_at`` for paid
    invoices, of ``created_at`` for every other status and for the ``_created`` rows,
    which count every invoice ever created (for the expiry rate).
    ``docs/rollup.md`` has the details.
    """

    #: The ``site_id`` of the buckets that add up every site.
    ALL_SITES = 0

    site_id = models.IntegerField()
    currency = models.CharField(max_length=3)
    test_mode = models.BooleanField()
    status = models.CharField(max_length=32)
    month = models.DateField()
    count = models.BigIntegerField(default=0)
    amount = models.BigIntegerField(default=0)
    #: Seconds from creation to payment, added up (paid buckets only): time to pay.
    pay_seconds = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["site_id", "currency", "test_mode", "status", "month"],
                name="wcb_rollup_bucket",
            )
        ]
        indexes = [models.Index(fields=["site_id", "status", "month"], name="wcb_rollup_status")]

    def __str__(self) -> str:
        return f"{self.site_id} {self.currency} {self.status} {self.month}: {self.count}"


class DisputeStatus(models.TextChoices):
    """Stripe's dispute statuses (``dispute.status``)."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response", _("Inquiry: needs response")
    WARNING_UNDER_REVIEW = "warning_under_review", _("Inquiry: under review")
    WARNING_CLOSED = "warning_closed", _("Inquiry closed")
    NEEDS_RESPONSE = "needs_response", _("Needs response")
    UNDER_REVIEW = "under_review", _("Under review")
    WON = "won", _("Won")
    LOST = "lost", _("Lost")
    PREVENTED = "prevented", _("Prevented")


#: Statuses after which a dispute never changes again (``charge.dispute.closed``).
CLOSED_DISPUTE_STATUSES = frozenset(
    {DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.WARNING_CLOSED, DisputeStatus.PREVENTED}
)


class InvoiceDispute(FormattedAmount, models.Model):
    """One Stripe dispute of a payment of an invoice: a row per dispute id.

    The unique ``stripe_dispute_id`` makes a dispute's opening count once; ``state_at``
    (the newest applied event's ``created``) and the closed statuses keep an older or
    duplicated event from undoing a newer state. The invoice's ``dispute_*`` fields are
    derived from these rows.

    Attributes:
        amount / currency: the disputed amount, in minor units of ``currency``.
        evidence_due_by: Stripe's ``evidence_details.due_by``.
        amount_lost: the amount lost when the dispute closed as lost, else 0.
        notice_sent_at: when the billing contacts were told (found again by a sweep).
    """

    invoice = models.ForeignKey(
        Invoice, verbose_name=_("invoice"), on_delete=models.PROTECT, related_name="disputes"
    )
    stripe_dispute_id = models.CharField(_("Stripe dispute"), max_length=255, unique=True)
    charge_id = models.CharField(max_length=255, blank=True)
    payment_intent_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=32, blank=True)
    reason = models.CharField(_("reason"), max_length=64, blank=True)
    amount = models.PositiveBigIntegerField(_("amount"), default=0)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    evidence_due_by = models.DateTimeField(_("evidence due by"), null=True, blank=True)
    amount_lost = models.PositiveBigIntegerField(_("amount lost"), default=0)
    state_at = models.DateTimeField()
    opened_at = models.DateTimeField(_("opened"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    notice_sent_at = models.DateTimeField(null=True, blank=True)
    notice_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        ordering = ["-opened_at", "-pk"]
        indexes = [
            models.Index(
                fields=["opened_at"],
                name="wcb_dispute_notice_due",
                condition=Q(notice_sent_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.stripe_dispute_id} ({self.invoice_id})"

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_DISPUTE_STATUSES


class SubscriptionState(models.TextChoices):
    """Stripe's subscription statuses an editor sees (``subscription.status``)."""

    ACTIVE = "active", _("Active")
    TRIALING = "trialing", _("Trialing")
    PAST_DUE = "past_due", _("Past due")
    UNPAID = "unpaid", _("Unpaid")
    CANCELED = "canceled", _("Cancelled")
    INCOMPLETE = "incomplete", _("Incomplete")
    INCOMPLETE_EXPIRED = "incomplete_expired", _("Incomplete, expired")
    PAUSED = "paused", _("Paused")


#: States in which Stripe still bills the subscription, and an editor may cancel it.
LIVE_SUBSCRIPTION_STATES = frozenset(
    {
        SubscriptionState.ACTIVE,
        SubscriptionState.TRIALING,
        SubscriptionState.PAST_DUE,
        SubscriptionState.UNPAID,
        SubscriptionState.PAUSED,
    }
)


class RenewalFailure(models.Model):
    """One failed attempt to collect a renewal: a row per Stripe invoice and attempt.

    The unique pair makes an attempt count, log and email once, however often its
    ``invoice.payment_failed`` is delivered.

    Attributes:
        hosted_invoice_url: Stripe's page where the client pays and updates the card.
        next_attempt_at: when Stripe retries (``next_payment_attempt``), if it will.
        client_notified_at / contacts_notified_at: when the emails went.
    """

    invoice = models.ForeignKey(
        Invoice,
        verbose_name=_("invoice"),
        on_delete=models.PROTECT,
        related_name="renewal_failures_set",
    )
    stripe_invoice_id = models.CharField(_("Stripe invoice"), max_length=255)
    attempt_count = models.PositiveIntegerField(_("attempt"), default=1)
    amount = models.PositiveBigIntegerField(_("amount"), default=0)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    hosted_invoice_url = models.URLField(max_length=2000, blank=True)
    failed_at = models.DateTimeField(_("failed at"), default=timezone.now)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    client_notified_at = models.DateTimeField(null=True, blank=True)
    contacts_notified_at = models.DateTimeField(null=True, blank=True)
    notice_attempts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("failed renewal")
        verbose_name_plural = _("failed renewals")
        ordering = ["-failed_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_invoice_id", "attempt_count"], name="wcb_renewal_failure_attempt"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stripe_invoice_id} #{self.attempt_count} ({self.invoice_id})"


class PaidNotice(models.Model):
    """A payment the billing contacts are to hear of: one row per payment (``key``).

    Made when the money arrives if the site's ``paid_notices`` is on, in the mode it was
    then. ``digest`` names the one daily digest that claimed the row (``UPDATE ... WHERE
    digest = ''``), so each payment is in exactly one digest; ``sent_at`` says it went.

    Attributes:
        key: ``invoice:<pk>`` for the first payment, ``renewal:<Stripe invoice>`` after.
    """

    invoice = models.ForeignKey(
        Invoice, verbose_name=_("invoice"), on_delete=models.PROTECT, related_name="paid_notices"
    )
    key = models.CharField(max_length=300, unique=True)
    mode = models.CharField(max_length=10)
    amount = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    paid_at = models.DateTimeField()
    digest = models.CharField(max_length=64, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("paid notice")
        verbose_name_plural = _("paid notices")
        indexes = [
            models.Index(
                fields=["mode", "paid_at"],
                name="wcb_paid_notice_unsent",
                condition=Q(sent_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return self.key


# --- payments (one row per payment an invoice received); documents (a sent invoice's seller
# snapshot and stored PDF) ---------------------------------------------------------------------

from .models_documents import InvoiceDocument  # noqa: E402, F401
from .models_payments import (  # noqa: E402, F401
    ACTIVE_REFUND_STATUSES,
    Payment,
    PaymentKind,
    Refund,
    RefundReason,
    RefundStatus,
    StripeInvoicePayment,
)
from .models_portal import ClientPortalLinks  # noqa: E402, F401
