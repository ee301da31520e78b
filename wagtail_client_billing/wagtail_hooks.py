"""Everything this app registers with the Wagtail admin, in one place."""

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.log_actions import LogFormatter

from . import status
from .models import ClientBillingLogEntry, ClientBillingSettings, Invoice, StripeAccount
from .money import format_money
from .panels import build_edit_handler

# --- log actions (the invoice's History) ----------------------------------------------------


@hooks.register("register_log_actions")
def register_log_actions(actions):
    # The app's objects log to a table of their own, whose manager limits Wagtail's
    # Site history report to the sites each editor may bill for.
    for model in (Invoice, ClientBillingSettings, StripeAccount):
        actions.register_model(model, ClientBillingLogEntry)
    created = _("Billing request created")
    actions.register_action("wagtail_client_billing.created", created, created)
    # A change of status: the log action of each status in the status table.
    for row in status.STATUSES.values():
        actions.register_action(row.log_action, row.log_label, row.log_message)
    for action, label, message in (
        ("wagtail_client_billing.email_sent", _("Email sent"), _("Invoice email sent")),
        ("wagtail_client_billing.email_failed", _("Email failed"), _("Invoice email failed")),
        ("wagtail_client_billing.reminder_sent", _("Reminder sent"), _("Expiry reminder sent")),
        (
            "wagtail_client_billing.checkout_opened",
            _("Checkout opened"),
            _("Client opened Stripe Checkout"),
        ),
        ("wagtail_client_billing.renewal_paid", _("Renewal paid"), _("Subscription renewal paid")),
        ("wagtail_client_billing.refund_failed", _("Refund failed"), _("A refund failed")),
        (
            "wagtail_client_billing.account_connected",
            _("Stripe account connected"),
            _("Stripe account connected"),
        ),
        (
            "wagtail_client_billing.account_unlinked",
            _("Stripe account unlinked"),
            _("Stripe account unlinked"),
        ),
        (
            "wagtail_client_billing.page_published",
            _("Page published on payment"),
            _("Page published on payment"),
        ),
        (
            "wagtail_client_billing.page_unpublished",
            _("Page unpublished on expiry"),
            _("Page unpublished on expiry"),
        ),
        (
            "wagtail_client_billing.page_action_refused",
            _("Page action refused"),
            _("Page not changed: the invoice's author may not publish it"),
        ),
    ):
        actions.register_action(action, label, message)
    actions.register_action("wagtail_client_billing.amount_mismatch")(AmountMismatchFormatter)
    actions.register_action("wagtail_client_billing.refunded")(RefundFormatter)


class AmountMismatchFormatter(LogFormatter):
    """An invoice paid through a Checkout Session for another amount or currency."""

    label = _("Paid amount differs")

    def format_message(self, log_entry):
        data = log_entry.data or {}
        try:
            paid = format_money(data["amount_subtotal"], data["currency"])
            asked = format_money(data["invoice_amount"], data["invoice_currency"])
        except (KeyError, TypeError, ValueError):
            return gettext("Paid through Checkout for another amount than the invoice's")
        return gettext(
            "Paid through Checkout for %(paid)s before tax and discounts; the invoice "
            "is for %(asked)s. Check the payment in Stripe."
        ) % {"paid": paid, "asked": asked}


class RefundFormatter(LogFormatter):
    """A refund of a payment (made here or in Stripe): its amount and reason."""

    label = _("Refunded")

    def format_message(self, log_entry):
        data = log_entry.data or {}
        try:
            amount = format_money(data["amount"], data["currency"])
        except (KeyError, TypeError, ValueError):
            return gettext("Refund made")
        return gettext("%(amount)s refunded") % {"amount": amount}


# --- the Client Billing settings screen (tabs in panels/) ------------------------------------

ClientBillingSettings.edit_handler = build_edit_handler()


# --- Stripe Connect: connect / onboarding / unlink screens ----------------------------------------


@hooks.register("register_admin_urls")
def register_connect_urls():
    from django.urls import include, path

    from .views import admin_connect

    return [
        path(
            "client-billing/connect/",
            include(
                (admin_connect.urlpatterns, "wagtail_client_billing_connect"),
                namespace="wagtail_client_billing_connect",
            ),
        )
    ]


@hooks.register("register_permissions")
def register_connect_permission():
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(
        content_type__app_label="wagtail_client_billing",
        codename__in=["connect_stripe_account", "refund_invoice"],
    )


# --- end Stripe Connect -----------------------------------------------------------------------


# --- Email: the "Send test email" button's view ---------------------------------------------------


@hooks.register("register_admin_urls")
def register_email_urls():
    from django.urls import include, path

    from .views import admin_email

    return [
        path(
            "client-billing/email/",
            include(
                (admin_email.urlpatterns, "wagtail_client_billing_email"),
                namespace="wagtail_client_billing_email",
            ),
        )
    ]


# --- end Email --------------------------------------------------------------------------------


# --- Invoices: the Client billing menu, the invoice snippet, bulk delete --------------------------


def _register_invoices():
    from wagtail.snippets.models import register_snippet

    from .viewsets import ClientBillingViewSetGroup

    register_snippet(ClientBillingViewSetGroup)


_register_invoices()


@hooks.register("register_icons")
def register_invoice_icons(icons):
    return [*icons, "wagtail_client_billing/icons/client-billing.svg"]


def _invoice_bulk_delete():
    from .views.admin_invoices import InvoiceDeleteBulkAction

    return InvoiceDeleteBulkAction


# order=1: registered after wagtail.snippets' own bulk delete, which this replaces for
# invoices (Wagtail's would remove the rows; ours soft-deletes pending/expired ones).
hooks.register("register_bulk_action", _invoice_bulk_delete(), order=1)


# --- end Invoices -----------------------------------------------------------------------------
