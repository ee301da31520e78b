"""Everything this app registers with the Wagtail admin, in one place."""

from urllib.parse import urlencode

from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.log_actions import LogFormatter

from . import status
from .models import Client, ClientBillingLogEntry, ClientBillingSettings, Invoice, StripeAccount
from .money import format_money
from .panels import build_edit_handler

# --- log actions (the invoice's History) ----------------------------------------------------


@hooks.register("register_log_actions")
def register_log_actions(actions):
    # The app's objects log to a table of their own, whose manager limits Wagtail's
    # Site history report to the sites each editor may bill for.
    for model in (Invoice, ClientBillingSettings, StripeAccount, Client):
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
        ("wagtail_client_billing.sent", _("Draft sent"), _("Draft sent to the client")),
        (
            "wagtail_client_billing.due_reminder_sent",
            _("Due date reminder sent"),
            _("Due date reminder sent"),
        ),
        (
            "wagtail_client_billing.checkout_opened",
            _("Checkout opened"),
            _("Client opened Stripe Checkout"),
        ),
        ("wagtail_client_billing.renewal_paid", _("Renewal paid"), _("Subscription renewal paid")),
        (
            "wagtail_client_billing.portal_links_revoked",
            _("Portal links revoked"),
            _("Client portal links revoked: earlier links no longer open the portal"),
        ),
        ("wagtail_client_billing.refund_failed", _("Refund failed"), _("A refund failed")),
        (
            "wagtail_client_billing.renewal_failed",
            _("Renewal failed"),
            _("Subscription renewal payment failed; the client was sent Stripe's payment page"),
        ),
        (
            "wagtail_client_billing.subscription_cancelled",
            _("Subscription cancelled"),
            _("Subscription cancelled: no further renewals"),
        ),
        (
            "wagtail_client_billing.cancellation_scheduled",
            _("Cancellation scheduled"),
            _("Subscription set to cancel at the end of the current period"),
        ),
        (
            "wagtail_client_billing.cancellation_undone",
            _("Cancellation undone"),
            _("Scheduled cancellation undone: the subscription renews again"),
        ),
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
    for action, label, message in (
        (
            "wagtail_client_billing.client_exported",
            _("Personal data exported"),
            _("Everything held about the client exported (JSON)"),
        ),
        (
            "wagtail_client_billing.client_erased",
            _("Personal data erased"),
            _("The client's personal data erased; the financial records kept"),
        ),
    ):
        actions.register_action(action, label, message)
    actions.register_action("wagtail_client_billing.client_merged")(ClientMergedFormatter)
    actions.register_action("wagtail_client_billing.amount_mismatch")(AmountMismatchFormatter)
    actions.register_action("wagtail_client_billing.dispute_opened")(DisputeOpenedFormatter)
    actions.register_action("wagtail_client_billing.dispute_closed")(DisputeClosedFormatter)
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


class ClientMergedFormatter(LogFormatter):
    """Another client merged into this one: whose invoices moved, and the Stripe customer
    ids that moved or were dropped (the same account had one for each)."""

    label = _("Clients merged")

    def format_message(self, log_entry):
        data = log_entry.data or {}
        merged = data.get("merged") or {}
        count = data.get("invoices", 0)
        message = ngettext(
            "Merged %(client)s into this client: %(count)s billing request moved",
            "Merged %(client)s into this client: %(count)s billing requests moved",
            count if isinstance(count, int) else 0,
        ) % {"client": merged.get("email") or merged.get("name") or "?", "count": count}
        dropped = data.get("customers_dropped") or []
        if dropped:
            message += "; " + gettext("Stripe customers not kept: %(ids)s") % {
                "ids": ", ".join(
                    f"{d.get('customer')} ({d.get('account')})"
                    for d in dropped
                    if isinstance(d, dict)
                )
            }
        return message


def _dispute_amount(data: dict, key: str = "amount") -> str:
    try:
        return format_money(data[key], data["currency"])
    except (KeyError, TypeError, ValueError):
        return "?"


class DisputeOpenedFormatter(LogFormatter):
    """The client disputed a payment with their card issuer."""

    label = _("Dispute opened")

    def format_message(self, log_entry):
        data = log_entry.data or {}
        return gettext("Dispute opened for %(amount)s (reason: %(reason)s)") % {
            "amount": _dispute_amount(data),
            "reason": str(data.get("reason") or "?").replace("_", " "),
        }


class DisputeClosedFormatter(LogFormatter):
    """A dispute closed: won, lost, or an inquiry closed."""

    label = _("Dispute closed")

    def format_message(self, log_entry):
        data = log_entry.data or {}
        if data.get("status") == "won":
            return gettext("Dispute won: the disputed amount stays with you")
        if data.get("status") == "lost":
            return gettext("Dispute lost: %(amount)s lost") % {
                "amount": _dispute_amount(data, "amount_lost")
            }
        return gettext("Dispute closed (%(status)s)") % {"status": data.get("status") or "?"}


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
        codename__in=[
            "connect_stripe_account",
            "cancel_subscription",
            "refund_invoice",
            "merge_client",
            "export_client",
            "erase_client",
        ],
    )


# --- end Stripe Connect -----------------------------------------------------------------------


# --- Email: the "Send test email" button's view ---------------------------------------------------


@hooks.register("register_admin_urls")
def register_portal_urls():
    from django.urls import include, path

    from .views import admin_portal

    return [
        path(
            "client-billing/clients/",
            include(
                (admin_portal.urlpatterns, "wagtail_client_billing_portal"),
                namespace="wagtail_client_billing_portal",
            ),
        )
    ]


@hooks.register("register_snippet_listing_buttons")
def client_portal_buttons(snippet, user, next_url=None):
    """ "Revoke portal links" in a client's "More" menu of the clients listing."""
    from wagtail.admin.widgets import Button

    from .views import admin_portal

    if not isinstance(snippet, Client) or not admin_portal.may_revoke(user):
        return
    url = admin_portal.revoke_url(snippet)
    if next_url:
        url += "?" + urlencode({"next": next_url})
    yield Button(_("Revoke portal links"), url, icon_name="lock", priority=60)


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


# --- Billing overview: the dashboard panel, summary item and reports ------------------------------


@hooks.register("construct_homepage_panels")
def add_billing_overview_panel(request, panels):
    from .views.admin_overview import BillingOverviewPanel, may_see_overview

    if may_see_overview(request.user):
        panels.append(BillingOverviewPanel(request))


@hooks.register("construct_homepage_summary_items")
def add_billing_summary_item(request, items):
    from .views.admin_overview import OutstandingSummaryItem

    items.append(OutstandingSummaryItem(request))


@hooks.register("register_admin_urls")
def register_report_urls():
    from django.urls import include, path

    from .views import admin_reports

    return [
        path(
            "reports/client-billing/",
            include(
                (admin_reports.urlpatterns, "wagtail_client_billing_reports"),
                namespace="wagtail_client_billing_reports",
            ),
        )
    ]


def _report_menu_items():
    from django.urls import reverse_lazy
    from wagtail.admin.menu import MenuItem

    from .views.admin_overview import may_see_overview
    from .views.admin_reports import REPORTS

    class BillingReportMenuItem(MenuItem):
        def is_shown(self, request):
            return may_see_overview(request.user)

    for slug, _view, label, order in REPORTS:
        name = slug.replace("-", "_")

        def item(label=label, name=name, slug=slug, order=order):
            return BillingReportMenuItem(
                label,
                reverse_lazy(f"wagtail_client_billing_reports:{name}"),
                name=f"client-billing-{slug}",
                icon_name="client-billing",
                order=order,
            )

        hooks.register("register_reports_menu_item", item)


_report_menu_items()


# --- end Billing overview ---------------------------------------------------------------------


# --- Page choosers of the billing request form (the invoice's site only) ----------------------


@hooks.register("register_admin_viewset")
def register_page_choosers():
    from .viewsets_pages import live_page_chooser, page_chooser

    return [page_chooser, live_page_chooser]
