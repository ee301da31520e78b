"""The Wagtail admin's Client billing menu: the invoice snippet viewset and its group.

``ClientBillingViewSetGroup.items`` is the one list of screens under the menu; other
screens of this app (the webhook event log) join it by adding their viewset there.

The invoice listing is the "main application" view across all sites; each site's
Client Billing settings show the same invoices for that site only
(:mod:`.panels.invoices`). Both respect the ``client_billing_sites_for_user`` hook.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from wagtail.admin.panels import FieldPanel, FieldRowPanel, HelpPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.tables import Column, DateColumn, TitleColumn
from wagtail.admin.widgets.button import Button, HeaderButton
from wagtail.snippets.views.snippets import (
    EditView,
    HistoryView,
    IndexView,
    InspectView,
    SnippetViewSet,
    SnippetViewSetGroup,
    UsageView,
)

from . import line_exports
from .billing import invoices
from .billing.lines import summary
from .billing.overview import listing_totals
from .filters import InvoiceFilterSet
from .forms.invoices import InvoiceCreateForm, InvoiceEditForm
from .models import Invoice, InvoiceStatus, shown_lines, site_display_name
from .money import exponent, to_major
from .panels.figures import FiguresPanel
from .panels.lines import LinesPanel
from .permissions import invoice_permission_policy
from .scope import clients_for_user, invoices_for_user
from .search import SEARCH_FIELDS, search_invoices
from .views.admin_documents import InvoicePdfView
from .views.admin_drafts import InvoiceDraftEditView, InvoiceSendView
from .views.admin_figures import figures_view
from .views.admin_invoices import (
    InvoiceCreateView,
    InvoiceDeleteView,
    InvoiceResendView,
    InvoiceScopeMixin,
    InvoiceSendNewView,
)
from .views.admin_refunds import InvoiceRefundView
from .views.admin_subscriptions import InvoiceSubscriptionView, may_cancel
from .viewsets_clients import ClientViewSet
from .viewsets_products import ProductViewSet
from .viewsets_scoped import inspect_title_column, scoped_chooser_viewset
from .viewsets_tax import EXPORT_FIGURE_HEADINGS, EXPORT_FIGURES, TaxRateViewSet, export_figures
from .viewsets_webhooks import WebhookEventViewSet

#: The icon of the menu and of the invoice screens (registered in ``wagtail_hooks.py``).
ICON = "client-billing"
#: Where every invoice template is looked for first, so a project can override any of them.
TEMPLATE_DIR = "wagtail_client_billing/admin/invoices/"
STATIC_CSS = "wagtail_client_billing/admin/invoices.css"
STATIC_JS = "wagtail_client_billing/admin/invoices.js"


# --- columns -----------------------------------------------------------------------------------


class StatusTagColumn(Column):
    """Status as Wagtail's ``w-status`` tag in its tone from the status table, with a
    Test tag for test-mode invoices and tags for the flags beside the status."""

    cell_template_name = TEMPLATE_DIR + "status_cell.html"

    class Media:
        css = {"all": [STATIC_CSS]}
        js = [STATIC_JS]


class AmountColumn(Column):
    """The amount in its currency, formatted for the editor's locale."""

    def get_value(self, instance: Invoice) -> str:
        return instance.formatted_amount


class SubscriptionColumn(Column):
    """A recurring invoice's subscription: its state, and when it renews or ends."""

    cell_template_name = TEMPLATE_DIR + "subscription_cell.html"


class SiteColumn(Column):
    def get_value(self, instance: Invoice) -> str:
        return site_display_name(instance.site)


# --- views -------------------------------------------------------------------------------------


def copy_link_attrs() -> dict[str, str]:
    """What "Copy payment link" says after copying (read by ``invoices.js``)."""
    return {
        "data-wcb-copy-link": "",
        "data-wcb-copied": _("Payment link copied to the clipboard."),
        "data-wcb-copy-failed": _(
            "The payment link could not be copied: open the invoice and copy it from there."
        ),
    }


RESEND_PRIORITY = 30
#: The statuses an invoice may be refunded in (what it received is not all refunded).
REFUNDABLE_STATUSES = (InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_REFUNDED)
SEND_NEW_PRIORITY = 40
SEND_DRAFT_PRIORITY = 35


def invoice_action_buttons(view: Any, invoice: Invoice, *, for_listing: bool) -> list[Button]:
    """The actions an editor may take on ``invoice``, each checked against permissions.

    Shared by the listing's row dropdown and the inspect view's header so both offer
    the same actions under the same conditions: the status table's flags (payable,
    withdrawn, deletable) and the editor's permissions.
    """
    viewset = Invoice.snippet_viewset

    def url(name: str) -> str:
        return reverse(viewset.get_url_name(name), args=[quote(invoice.pk)])

    definition = invoice.effective_status_definition
    buttons: list[Button] = []
    if for_listing:
        buttons.append(Button(_("View"), url=url("inspect"), icon_name="view", priority=10))
    if definition.payable:
        buttons.append(
            Button(
                _("Copy payment link"),
                url=invoice.get_pay_url(),
                icon_name="link",
                priority=20,
                attrs={
                    "data-controller": "w-clipboard",
                    "data-action": "w-clipboard#copy:prevent",
                    "data-w-clipboard-value-param": invoice.get_pay_url(),
                    **copy_link_attrs(),
                },
            )
        )
    if definition.payable and view.user_has_permission("change"):
        buttons.append(
            Button(_("Resend email"), url=url("resend"), icon_name="mail", priority=RESEND_PRIORITY)
        )
    if invoices.can_send_new(invoice) and view.user_has_permission("add"):
        buttons.append(
            Button(
                _("Send new invoice"),
                url=url("copy"),
                icon_name="resubmit",
                priority=SEND_NEW_PRIORITY,
            )
        )
    if invoice.number and not for_listing:
        buttons.append(Button(_("Download PDF"), url=url("pdf"), icon_name="download", priority=50))
    if invoice.status in REFUNDABLE_STATUSES and view.user_has_permission("refund"):
        buttons.append(Button(_("Refund"), url=url("refund"), icon_name="undo", priority=45))
    if invoice.is_draft and view.user_has_permission("change"):
        buttons.append(
            Button(_("Send"), url=url("send"), icon_name="mail", priority=SEND_DRAFT_PRIORITY)
        )
        buttons.append(
            Button(_("Edit draft"), url=url("edit_draft"), icon_name="edit", priority=50)
        )
    elif view.user_has_permission("change"):
        buttons.append(Button(_("Edit note"), url=url("edit"), icon_name="edit", priority=50))
    buttons.append(Button(_("History"), url=url("history"), icon_name="history", priority=60))
    if invoice.subscription_is_live and may_cancel(view.request.user):
        label = (
            _("Undo or change the cancellation")
            if invoice.subscription_cancel_at_period_end
            else _("Cancel subscription")
        )
        buttons.append(Button(label, url=url("subscription"), icon_name="cross", priority=65))
    if invoice.can_be_deleted and view.user_has_permission("delete"):
        buttons.append(Button(_("Delete"), url=url("delete"), icon_name="bin", priority=70))
    return buttons


class _ChunkedQuerySet:
    """Iterates a queryset in chunks so an export of any size streams in bounded memory."""

    def __init__(self, queryset: QuerySet[Invoice]) -> None:
        self.model = queryset.model
        self.queryset = queryset

    def __iter__(self) -> Any:
        return self.queryset.iterator(chunk_size=2000)


def export_time(value: datetime) -> datetime:
    """A time as the project's clock shows it, without microseconds or an offset."""
    if timezone.is_aware(value):
        value = timezone.make_naive(value)
    return value.replace(microsecond=0)


class ExpiryColumn(DateColumn):
    """When the payment link runs out, for the statuses where that means something."""

    cell_template_name = "wagtail_client_billing/admin/invoices/expiry_cell.html"


class InvoiceIndexView(IndexView):
    """The listing across all sites the editor may bill for.

    Deleted invoices are left out unless the status filter asks for them. A page
    makes the same queries whatever the table's size: the page's rows from the
    invoice table alone, then their sites in one more query.
    """

    add_item_label = gettext_lazy("Add billing request")

    def get_base_queryset(self) -> QuerySet[Invoice]:
        # Sites are prefetched rather than joined: with the page query on the invoice
        # table alone, the database reads the page in the order of the listing's
        # indexes. Joined to the (single, in most installs) Stripe account, SQLite's
        # planner started from the account and sorted every invoice for each page.
        return invoices_for_user(self.request.user, Invoice.objects.prefetch_related("site"))

    def search_queryset(self, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        if not self.is_searching:
            return queryset
        return search_invoices(queryset, self.search_query)

    def filter_queryset(self, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        queryset = super().filter_queryset(queryset)
        asked: list[str] = []
        if self.filters and self.filters.is_valid():
            asked = list(self.filters.form.cleaned_data.get("status") or [])
        if InvoiceStatus.DELETED not in asked:
            queryset = queryset.exclude(status=InvoiceStatus.DELETED)
        return queryset

    def _get_title_column(self, field_name: str, column_class: Any = TitleColumn, **kwargs: Any):
        return inspect_title_column(self, column_class, "display_number", _("Number"), "sequence")

    def get_list_more_buttons(self, instance: Invoice) -> list[Button]:
        return invoice_action_buttons(self, instance, for_listing=True)

    def to_row_dict(self, item: Invoice) -> dict[str, Any]:
        return {
            "number": item.number,
            "email": item.email,
            "amount": item.amount_major,
            "currency": item.currency,
            "status": item.get_status_display(),
            "mode": _("Test") if item.test_mode else _("Live"),
            "billing_type": item.get_billing_type_display(),
            "site": site_display_name(item.site),
            "description": item.description,
            "lines": summary(item),
            "created_at": item.created_at,
            "expires_at": None if item.is_draft else item.expires_at,
            "due_date": item.due_date,
            "paid_at": item.paid_at,
            "email_status": item.get_email_status_display(),
            "late_payment": item.late_payment,
            "stripe_account": item.account.stripe_id,
            "payment_intent_id": item.payment_intent_id,
            **export_figures(item),
            "subscription_status": item.subscription_state_label,
            "subscription_current_period_end": item.subscription_current_period_end,
            "next_renewal_at": item.next_renewal_at,
            "renewal_failures": item.renewal_failures,
            "dispute_status": item.dispute_status_label,
            "dispute_amount_lost": (
                to_major(item.dispute_amount_lost, item.dispute_currency or item.currency)
                if item.dispute_amount_lost
                else 0
            ),
            "amount_refunded": item.amount_refunded_major,
        }

    #: Export times in the project's time zone, to the second: Wagtail writes CSV dates as
    #: ``str(datetime)`` (microseconds and an offset) and XLSX dates in UTC.
    custom_value_preprocess = {
        **IndexView.custom_value_preprocess,
        datetime: {
            IndexView.FORMAT_CSV: lambda value: export_time(value).strftime("%Y-%m-%d %H:%M:%S"),
            IndexView.FORMAT_XLSX: export_time,
        },
    }

    def get_filename(self) -> str:
        """``invoices-2026-11-30``: the day of the export, so a second one does not
        overwrite the first in the editor's downloads."""
        return f"{self.export_filename}-{timezone.localdate():%Y-%m-%d}"

    def generate_xlsx_row(self, worksheet: Any, row_dict: dict[str, Any], date_format: Any = None):
        # The amount as a number with its currency's decimals (30.00 USD, 500 JPY), not in
        # the General format that shows 30.00 as 30.
        for field, cell in zip(
            row_dict, super().generate_xlsx_row(worksheet, row_dict, date_format), strict=True
        ):
            if field == "amount" and row_dict.get("currency"):
                places = exponent(row_dict["currency"])
                cell.number_format = "#,##0" + ("." + "0" * places if places else "")
            yield cell

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if not self.is_export:
            # Per-currency totals of the current filter (billing/overview.py).
            valid = self.filters is not None and self.filters.is_valid()
            context["currency_totals"] = listing_totals(
                self.request.user,
                self.object_list,
                dict(self.filters.form.cleaned_data) if valid else None,
                searching=bool(self.is_searching),
            )
        return context

    def as_spreadsheet(self, queryset: QuerySet[Invoice], spreadsheet_format: str) -> Any:
        if self.request.GET.get(line_exports.ROWS_PARAM) == line_exports.ROWS_LINES:
            # A row per line of the same invoices (the listing's filters and search).
            self.list_export = line_exports.LINE_EXPORT
            self.export_headings = line_exports.LINE_HEADINGS
            self.export_filename = "invoice-lines"
            self.to_row_dict = line_exports.line_row  # type: ignore[method-assign,assignment]
            return super().as_spreadsheet(line_exports.lines_of(queryset), spreadsheet_format)
        # The export also names each row's Stripe account and sums up its lines; both
        # prefetched per chunk.
        queryset = queryset.prefetch_related("account", "lines")
        return super().as_spreadsheet(_ChunkedQuerySet(queryset), spreadsheet_format)

    @cached_property
    def header_more_buttons(self) -> list[Any]:
        buttons: list[Any] = list(super().header_more_buttons)
        if self.show_export_buttons:
            for label, spreadsheet_format in (
                (_("Download lines XLSX"), "xlsx"),
                (_("Download lines CSV"), "csv"),
            ):
                params = self.request.GET.copy()
                params.update(
                    {"export": spreadsheet_format, line_exports.ROWS_PARAM: line_exports.ROWS_LINES}
                )
                url = self.request.path + "?" + params.urlencode()
                buttons.append(Button(label, url=url, icon_name="download", priority=95))
        return buttons


class InvoiceInspectView(InvoiceScopeMixin, InspectView):
    """Everything about one billing request, with its actions in the header."""

    def get_invoice_queryset(self) -> QuerySet[Invoice]:
        return (
            super()
            .get_invoice_queryset()
            .select_related("copied_from", "publish_page_when_paid", "unpublish_page_when_expired")
            .prefetch_related("lines__product")
        )

    def get_page_subtitle(self) -> str:
        return self.object.label

    @cached_property
    def _action_buttons(self) -> list[Button]:
        return invoice_action_buttons(self, self.object, for_listing=False)

    @cached_property
    def header_buttons(self) -> list[Any]:
        """The next thing an editor is likely to do: resend a pending one, or send a new one."""
        for button in self._action_buttons:
            if button.priority in (RESEND_PRIORITY, SEND_NEW_PRIORITY, SEND_DRAFT_PRIORITY):
                return [HeaderButton(button.label, url=button.url, icon_name=button.icon_name)]
        return []

    @cached_property
    def header_more_buttons(self) -> list[Any]:
        shown = {b.url for b in self.header_buttons}
        return [b for b in self._action_buttons if b.url not in shown]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        invoice = self.object
        viewset = Invoice.snippet_viewset
        context.update(
            invoice=invoice,
            pay_url=invoice.get_pay_url(),
            history_url=reverse(viewset.get_url_name("history"), args=[quote(invoice.pk)]),
            copies=list(invoice.copies.only("pk", "number", "status").order_by("pk")),
            copied_from_url=(
                reverse(viewset.get_url_name("inspect"), args=[quote(invoice.copied_from_id)])
                if invoice.copied_from_id
                else ""
            ),
            inspect_url_name=viewset.get_url_name("inspect"),
            lines=shown_lines(invoice),
            subscription_url=(
                reverse(viewset.get_url_name("subscription"), args=[quote(invoice.pk)])
                if invoice.subscription_is_live and may_cancel(self.request.user)
                else ""
            ),
            payments=list(
                invoice.payments.prefetch_related("refunds__created_by").order_by("paid_at", "pk")
            ),
            client=invoice_client(self.request.user, invoice),
            client_url=(
                reverse(f"{ClientViewSet.url_namespace}:inspect", args=[invoice.client_id])
                if invoice.client_id
                else ""
            ),
        )
        return context


class InvoiceEditView(EditView):
    """Edit the description and internal note; everything the client was sent stays fixed.

    A draft has its own edit screen with every field (:mod:`.views.admin_drafts`).
    """

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if self.object.is_draft:
            viewset = Invoice.snippet_viewset
            return redirect(
                reverse(viewset.get_url_name("edit_draft"), args=[quote(self.object.pk)])
            )
        return super().dispatch(request, *args, **kwargs)

    def get_success_message(self) -> str:
        return _("Billing request %(number)s updated.") % {"number": self.object.label}

    def get_queryset(self) -> QuerySet[Invoice]:
        # Wagtail's EditView loads the object through get_queryset (and keeps a "live"
        # copy of it), so the scope is applied here rather than in get_object.
        return invoices_for_user(self.request.user, Invoice.objects.select_related("site"))


class InvoiceHistoryView(InvoiceScopeMixin, HistoryView):
    any_permission_required = ["add", "change", "delete", "view"]


class InvoiceUsageView(InvoiceScopeMixin, UsageView):
    pass


def invoice_client(user: Any, invoice: Invoice) -> Any:
    """The invoice's client as its page names it: one the user sees (an invoice they may
    see makes its client visible to them), else None."""
    if invoice.client_id is None:
        return None
    return clients_for_user(user).filter(pk=invoice.client_id).first()


# --- panels ------------------------------------------------------------------------------------


def create_edit_handler() -> ObjectList:
    """The Add billing request form's layout."""
    return ObjectList(
        [
            FieldPanel("site"),
            FieldPanel("client"),
            FieldPanel("email"),
            FieldPanel("language"),
            FieldRowPanel([FieldPanel("currency"), FieldPanel("amount")]),
            FieldPanel("billing_type"),
            tax_discount_panel(),
            FieldPanel("description"),
            LinesPanel(),
            FieldPanel("success_url"),
            FieldPanel("cancel_url"),
            FieldPanel("test_mode"),
            MultiFieldPanel(
                [
                    FieldRowPanel([FieldPanel("lifetime_value"), FieldPanel("lifetime_unit")]),
                    FieldPanel("due_date"),
                ],
                heading=gettext_lazy("Payment link and due date"),
            ),
            MultiFieldPanel(
                [FieldPanel("publish_page_when_paid"), FieldPanel("unpublish_page_when_expired")],
                heading=gettext_lazy("Pages (optional)"),
            ),
            FieldPanel("note"),
        ],
        base_form_class=InvoiceCreateForm,
    ).bind_to_model(Invoice)


def tax_discount_panel() -> MultiFieldPanel:
    """The request form's tax and discount (``forms.tax``)."""
    return MultiFieldPanel(
        [
            FieldPanel("tax_rate"),
            FieldRowPanel([FieldPanel("discount_kind"), FieldPanel("discount_value")]),
            FieldPanel("discount_duration"),
            FiguresPanel(),
        ],
        heading=gettext_lazy("Tax and discount"),
    )


def edit_edit_handler() -> ObjectList:
    """The edit form: the client already has the request, so only notes change."""
    return ObjectList(
        [
            HelpPanel(
                content=gettext_lazy(
                    "The client already has this billing request, so its amount, currency, "
                    "email, site, mode and billing type cannot change. To correct them, "
                    "delete it and send a new one."
                )
            ),
            FieldPanel("description"),
            FieldPanel("note"),
        ],
        base_form_class=InvoiceEditForm,
    ).bind_to_model(Invoice)


# --- the viewset -------------------------------------------------------------------------------


def _invoices_for_listing(user: Any) -> QuerySet[Invoice]:
    return invoices_for_user(user, Invoice.objects.for_listing())


class InvoiceViewSet(SnippetViewSet):
    """Invoices (billing requests) as a Wagtail snippet, with this app's own views."""

    model = Invoice
    icon = ICON
    menu_label = gettext_lazy("Invoices")
    menu_name = "client-billing-invoices"
    url_prefix = "client-billing/invoices"
    url_namespace = "wagtail_client_billing_invoices"
    add_to_admin_menu = False

    index_view_class = InvoiceIndexView
    add_view_class = InvoiceCreateView
    copy_view_class = InvoiceSendNewView
    edit_view_class = InvoiceEditView
    delete_view_class = InvoiceDeleteView
    inspect_view_class = InvoiceInspectView
    history_view_class = InvoiceHistoryView
    usage_view_class = InvoiceUsageView
    resend_view_class = InvoiceResendView
    send_view_class = InvoiceSendView
    edit_draft_view_class = InvoiceDraftEditView
    refund_view_class = InvoiceRefundView
    chooser_viewset_class = scoped_chooser_viewset(
        Invoice, invoices_for_user, listed=_invoices_for_listing, policy=invoice_permission_policy
    )

    inspect_view_enabled = True
    copy_view_enabled = True
    ordering = "-created_at"
    list_per_page = 50
    filterset_class = InvoiceFilterSet
    search_fields = list(SEARCH_FIELDS)
    search_backend_name = None

    list_display = [
        "number",
        Column("email", label=gettext_lazy("Client email"), sort_key="email"),
        AmountColumn("amount", label=gettext_lazy("Amount"), sort_key="amount"),
        StatusTagColumn("status", label=gettext_lazy("Status"), sort_key="status"),
        SubscriptionColumn(
            "subscription_status",
            label=gettext_lazy("Subscription"),
            sort_key="subscription_status",
        ),
        SiteColumn("site", label=gettext_lazy("Site")),
        DateColumn("created_at", label=gettext_lazy("Created"), sort_key="created_at"),
        ExpiryColumn("expires_at", label=gettext_lazy("Expires"), sort_key="expires_at"),
        DateColumn("paid_at", label=gettext_lazy("Paid"), sort_key="paid_at"),
    ]
    list_export = [
        "number",
        "email",
        "amount",
        "currency",
        "status",
        "mode",
        "billing_type",
        "site",
        "description",
        "lines",
        "created_at",
        "expires_at",
        "due_date",
        "paid_at",
        "email_status",
        "late_payment",
        "stripe_account",
        "payment_intent_id",
        *EXPORT_FIGURES,
        "subscription_status",
        "subscription_current_period_end",
        "next_renewal_at",
        "renewal_failures",
        "dispute_status",
        "dispute_amount_lost",
        "amount_refunded",
    ]
    export_headings = {
        "number": gettext_lazy("Number"),
        "email": gettext_lazy("Client email"),
        "amount": gettext_lazy("Amount"),
        "currency": gettext_lazy("Currency"),
        "status": gettext_lazy("Status"),
        "mode": gettext_lazy("Mode"),
        "billing_type": gettext_lazy("Billing type"),
        "site": gettext_lazy("Site"),
        "description": gettext_lazy("Description"),
        "lines": gettext_lazy("Lines"),
        "created_at": gettext_lazy("Created"),
        "expires_at": gettext_lazy("Expires"),
        "due_date": gettext_lazy("Due"),
        "paid_at": gettext_lazy("Paid"),
        "email_status": gettext_lazy("Email"),
        "late_payment": gettext_lazy("Paid late"),
        "stripe_account": gettext_lazy("Stripe account"),
        "payment_intent_id": gettext_lazy("Stripe payment"),
        **EXPORT_FIGURE_HEADINGS,
        "subscription_status": gettext_lazy("Subscription"),
        "subscription_current_period_end": gettext_lazy("Current period ends"),
        "next_renewal_at": gettext_lazy("Next renewal"),
        "renewal_failures": gettext_lazy("Failed renewals"),
        "dispute_status": gettext_lazy("Dispute"),
        "dispute_amount_lost": gettext_lazy("Lost to disputes"),
        "amount_refunded": gettext_lazy("Amount refunded"),
    }
    export_filename = "invoices"

    def get_templates(self, name: str = "index", fallback: str = "") -> list[str]:
        templates: list[str] = super().get_templates(name, fallback)
        return [f"{TEMPLATE_DIR}{name}.html", *templates]

    def get_edit_handler(self) -> ObjectList:
        return edit_edit_handler()

    @cached_property
    def create_handler(self) -> ObjectList:
        return create_edit_handler()

    def get_add_view_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        handler = self.create_handler
        return super().get_add_view_kwargs(
            panel=handler,
            form_class=handler.get_form_class(),
            inspect_url_name=self.get_url_name("inspect"),
            **kwargs,
        )

    def get_copy_view_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        return self.get_add_view_kwargs(**kwargs)

    @property
    def resend_view(self) -> Any:
        return self.construct_view(
            self.resend_view_class,
            inspect_url_name=self.get_url_name("inspect"),
        )

    @property
    def send_view(self) -> Any:
        return self.construct_view(
            self.send_view_class, inspect_url_name=self.get_url_name("inspect")
        )

    @property
    def edit_draft_view(self) -> Any:
        handler = self.create_handler
        return self.construct_view(
            self.edit_draft_view_class,
            **self.get_edit_view_kwargs(
                panel=handler,
                form_class=handler.get_form_class(),
                template_name=InvoiceDraftEditView.template_name,
            ),
        )

    @property
    def subscription_view(self) -> Any:
        return InvoiceSubscriptionView.as_view()

    @property
    def refund_view(self) -> Any:
        return self.construct_view(self.refund_view_class)

    def get_urlpatterns(self) -> list[Any]:
        return [
            *super().get_urlpatterns(),
            path("resend/<int:pk>/", self.resend_view, name="resend"),
            path(
                "figures/",
                partial(figures_view, form_class=self.create_handler.get_form_class()),
                name="figures",
            ),
            path("send/<int:pk>/", self.send_view, name="send"),
            path("edit-draft/<str:pk>/", self.edit_draft_view, name="edit_draft"),
            path("subscription/<int:pk>/", self.subscription_view, name="subscription"),
            path("refund/<int:pk>/", self.refund_view, name="refund"),
            path("pdf/<int:pk>/", InvoicePdfView.as_view(), name="pdf"),
        ]


class ClientBillingViewSetGroup(SnippetViewSetGroup):
    """The Client billing menu. Add a viewset to ``items`` to put a screen under it."""

    items = [InvoiceViewSet, ClientViewSet, WebhookEventViewSet, ProductViewSet, TaxRateViewSet]
    menu_label = gettext_lazy("Client billing")
    menu_icon = ICON
    menu_name = "client-billing"
    add_to_admin_menu = True
