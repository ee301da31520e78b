"""The Client Billing settings screen: one tab per concern.

Settings -> Client Billing shows, per site (Wagtail's site switcher), the tabs Stripe
(:mod:`.stripe`), Email (:mod:`.email`), Defaults, Tax, Documents (the seller's details
and branding), Notices and Invoices (:mod:`.invoices`).
The tab layout lives here so each tab's module owns only its own panels.
"""

from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel, MultiFieldPanel, ObjectList, TabbedInterface

from ..forms.settings import ClientBillingSettingsForm
from .email import email_panels
from .invoices import SiteInvoicesPanel
from .stripe import StripeAccountsPanel


def build_edit_handler() -> TabbedInterface:
    return TabbedInterface(
        [
            ObjectList([StripeAccountsPanel()], heading=_("Stripe")),
            ObjectList(email_panels(), heading=_("Email")),
            ObjectList(
                [
                    FieldPanel("default_currency"),
                    FieldPanel("payment_link_lifetime_hours"),
                    FieldPanel("payment_link_max_lifetime_days"),
                    MultiFieldPanel(
                        [FieldPanel("reminder_before_hours"), FieldPanel("remind_on_due_date")],
                        heading=_("Reminders"),
                    ),
                    FieldPanel("send_receipts"),
                    FieldPanel("refund_application_fee"),
                ],
                heading=_("Defaults"),
            ),
            ObjectList([FieldPanel("tax_mode")], heading=_("Tax")),
            ObjectList(
                [
                    MultiFieldPanel(
                        [
                            FieldPanel("seller_name"),
                            FieldPanel("seller_address"),
                            FieldPanel("seller_tax_id"),
                        ],
                        heading=_("Seller"),
                        help_text=_(
                            "Printed on invoices and receipts; copied into each invoice when "
                            "it is sent, so a change here never alters one already sent."
                        ),
                    ),
                    FieldPanel("logo"),
                    FieldPanel("accent_colour"),
                    FieldPanel("document_footer"),
                ],
                heading=_("Documents"),
            ),
            ObjectList(
                [FieldPanel("billing_contacts"), FieldPanel("paid_notices")],
                heading=_("Notices"),
            ),
            ObjectList([SiteInvoicesPanel()], heading=_("Invoices")),
        ],
        # A class, not a dotted path: Panel.get_form_class() does not import strings.
        base_form_class=ClientBillingSettingsForm,
    )
