"""The Wagtail admin's Client billing menu: the invoice snippet viewset and its group.

``ClientBillingViewSetGroup.items`` is the one list of screens under the menu; other
screens of this app (the webhook event log) join it by adding their viewset there.

The invoice listing is the "main application" view across all sites; each site's
Client Billing settings show the same invoices for that site only
(:mod:`.panels.invoices`). Both respect the ``client_billing_sites_for_user`` hook.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from wagtail.admin.panels import FieldPanel, FieldRowPanel, HelpPanel, MultiFieldPanel, ObjectList
from wagtail.admin.ui.tables import Column, DateColumn, TitleColumn
from wagtail.admin.widgets.button import Button, HeaderButton
from wagtail.snippets.views import chooser as chooser_views
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
from .filters import InvoiceFilterSet
from .forms.invoices import InvoiceCreateForm, InvoiceEditForm
from .models import Invoice, InvoiceStatus, shown_lines, site_display_name
from .panels.figures import FiguresPanel
from .panels.lines import LinesPanel
from .permissions import invoice_permission_policy
from .scope import invoices_for_user
from .search import SEARCH_FIELDS, search_invoices
from .views.admin_figures import figures_view
from .views.admin_invoices import (
    InvoiceCreateView,
    InvoiceDeleteView,
    InvoiceResendView,
    InvoiceScopeMixin,
    InvoiceSendNewView,
)
from .viewsets_products import ProductViewSet
from .viewsets_tax import EXPORT_FIGURE_HEADINGS, EXPORT_FIGURES, TaxRateViewSet, export_figures
from .viewsets_webhooks import WebhookEventViewSet

#: The icon of the menu and of the invoice screens (registered in ``wagtail_hooks.py``).
ICON = "client-billing"
#: Where every invoice template is looked for first, so a project can override any of them.
TEMPLATE_DIR = "wagtail_client_billing/admin/invoices/"
STATIC_CSS = "wagtail_client_billing/admin/invoices.css"


# --- columns -----------------------------------------------------------------------------------


class StatusTagColumn(Column):
    """Status as Wagtail's ``w-status`` tag in its tone from the status table, with a
    Test tag for test-mode invoices and tags for the flags beside the status."""

    cell_template_name = TEMPLATE_DIR + "status_cell.html"

    class Media:
        css = {"all": [STATIC_CSS]}


class AmountColumn(Column):
    """The amount in its currency, formatted for the editor's locale."""

    def get_value(self, instance: Invoice) -> str:
        return instance.formatted_amount


class SiteColumn(Column):
    def get_value(self, instance: Invoice) -> str:
        return site_display_name(instance.site)


# --- views -------------------------------------------------------------------------------------

RESEND_PRIORITY = 30
SEND_NEW_PRIORITY = 40


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
    if view.user_has_permission("change"):
        buttons.append(Button(_("Edit note"), url=url("edit"), icon_name="edit", priority=50))
    buttons.append(Button(_("History"), url=url("history"), icon_name="history", priority=60))
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


class RelativeDateColumn(DateColumn):
    """A date that may lie in the future ("in 23 hours"), unlike Wagtail's DateColumn."""

    cell_template_name = "wagtail_client_billing/admin/invoices/relative_date_cell.html"


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
        column_class = self._get_title_column_class(column_class)
        return column_class(
            "number",
            label=_("Number"),
            sort_key="sequence",
            get_url=self.get_inspect_url,
            get_title_id=lambda instance: f"snippet_{quote(instance.pk)}_title",
        )

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
            "expires_at": item.expires_at,
            "paid_at": item.paid_at,
            "email_status": item.get_email_status_display(),
            "late_payment": item.late_payment,
            "stripe_account": item.account.stripe_id,
            "payment_intent_id": item.payment_intent_id,
            **export_figures(item),
        }

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
        return str(self.object)

    @cached_property
    def _action_buttons(self) -> list[Button]:
        return invoice_action_buttons(self, self.object, for_listing=False)

    @cached_property
    def header_buttons(self) -> list[Any]:
        """The next thing an editor is likely to do: resend a pending one, or send a new one."""
        for button in self._action_buttons:
            if button.priority in (RESEND_PRIORITY, SEND_NEW_PRIORITY):
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
        )
        return context


class InvoiceEditView(EditView):
    """Edit the description and internal note; everything the client was sent stays fixed."""

    def get_queryset(self) -> QuerySet[Invoice]:
        # Wagtail's EditView loads the object through get_queryset (and keeps a "live"
        # copy of it), so the scope is applied here rather than in get_object.
        return invoices_for_user(self.request.user, Invoice.objects.select_related("site"))


class InvoiceHistoryView(InvoiceScopeMixin, HistoryView):
    any_permission_required = ["add", "change", "delete", "view"]


class InvoiceUsageView(InvoiceScopeMixin, UsageView):
    pass


# --- panels ------------------------------------------------------------------------------------


def create_edit_handler() -> ObjectList:
    """The Add billing request form's layout."""
    return ObjectList(
        [
            FieldPanel("site"),
            FieldPanel("email"),
            FieldRowPanel([FieldPanel("currency"), FieldPanel("amount")]),
            FieldPanel("billing_type"),
            tax_discount_panel(),
            FieldPanel("description"),
            LinesPanel(),
            FieldPanel("success_url"),
            FieldPanel("cancel_url"),
            FieldPanel("test_mode"),
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


class _ScopedToBillableInvoices:
    """Wagtail's snippet chooser, limited like every other invoice screen.

    Out of the box the chooser checks no invoice permission and lists every invoice of
    every site; a page or snippet with a ForeignKey to Invoice would let an editor read
    numbers and emails of sites they may not bill for.
    """

    request: Any

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        allowed = invoice_permission_policy().user_has_any_permission(
            request.user, {"add", "change", "delete", "view"}
        )
        if not allowed:
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def get_object_list(self) -> QuerySet[Invoice]:
        return invoices_for_user(self.request.user, Invoice.objects.for_listing())

    def get_object(self, pk: Any) -> Invoice:
        return invoices_for_user(self.request.user).get(pk=pk)

    def get_objects(self, pks: Any) -> QuerySet[Invoice]:
        return invoices_for_user(self.request.user).filter(pk__in=pks)

    def can_create(self) -> bool:
        # Wagtail offers creation to anyone with the add permission, even without a
        # creation form; billing requests are made on their own form only.
        return False


class InvoiceChooseView(_ScopedToBillableInvoices, chooser_views.ChooseView):
    pass


class InvoiceChooseResultsView(_ScopedToBillableInvoices, chooser_views.ChooseResultsView):
    pass


class InvoiceChosenView(_ScopedToBillableInvoices, chooser_views.SnippetChosenView):
    pass


class InvoiceChosenMultipleView(_ScopedToBillableInvoices, chooser_views.SnippetChosenMultipleView):
    pass


class InvoiceChooserViewSet(chooser_views.SnippetChooserViewSet):
    choose_view_class = InvoiceChooseView
    choose_results_view_class = InvoiceChooseResultsView
    chosen_view_class = InvoiceChosenView
    chosen_multiple_view_class = InvoiceChosenMultipleView
    create_action_label = None

    def get_urlpatterns(self) -> list[Any]:
        # No "create" URL: a billing request needs the site, account and hook checks of
        # its own form, which a chooser modal has none of.
        return [
            pattern
            for pattern in super().get_urlpatterns()
            if getattr(pattern, "name", None) != "create"
        ]


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
    chooser_viewset_class = InvoiceChooserViewSet

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
        SiteColumn("site", label=gettext_lazy("Site")),
        DateColumn("created_at", label=gettext_lazy("Created"), sort_key="created_at"),
        RelativeDateColumn("expires_at", label=gettext_lazy("Expires"), sort_key="expires_at"),
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
        "paid_at",
        "email_status",
        "late_payment",
        "stripe_account",
        "payment_intent_id",
        *EXPORT_FIGURES,
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
        "paid_at": gettext_lazy("Paid"),
        "email_status": gettext_lazy("Email"),
        "late_payment": gettext_lazy("Paid late"),
        "stripe_account": gettext_lazy("Stripe account"),
        "payment_intent_id": gettext_lazy("Stripe payment"),
        **EXPORT_FIGURE_HEADINGS,
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

    def get_urlpatterns(self) -> list[Any]:
        return [
            *super().get_urlpatterns(),
            path("resend/<int:pk>/", self.resend_view, name="resend"),
            path(
                "figures/",
                partial(figures_view, form_class=self.create_handler.get_form_class()),
                name="figures",
            ),
        ]


class ClientBillingViewSetGroup(SnippetViewSetGroup):
    """The Client billing menu. Add a viewset to ``items`` to put a screen under it."""

    items = [InvoiceViewSet, WebhookEventViewSet, ProductViewSet, TaxRateViewSet]
    menu_label = gettext_lazy("Client billing")
    menu_icon = ICON
    menu_name = "client-billing"
    add_to_admin_menu = True
