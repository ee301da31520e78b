"""The client directory as a snippet under Client billing: listing, add, edit, delete,
history, the client's page, merge, export and erase, and Wagtail's chooser.

Every screen and the chooser load clients through :func:`.scope.clients_for_user`, so an
editor whom the ``client_billing_sites_for_user`` hook keeps to some sites sees only the
clients billed on them (and those they added, until they have an invoice elsewhere).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.http import Http404
from django.urls import path
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.panels import FieldPanel, FieldRowPanel, ObjectList
from wagtail.admin.ui.tables import Column, DateColumn, TitleColumn
from wagtail.snippets.views.snippets import (
    EditView,
    HistoryView,
    IndexView,
    SnippetViewSet,
    UsageView,
)

from .billing.overview import with_client_figures
from .emails import InvalidAddress, check_address
from .filters import ClientFilterSet
from .forms.fields import clean_address_list
from .models import Client
from .scope import clients_for_user
from .views.admin_clients import (
    ClientCreateView,
    ClientDeleteView,
    ClientEraseView,
    ClientExportView,
    ClientMergeView,
    ClientPageView,
    ClientScopeMixin,
)
from .viewsets_scoped import inspect_title_column, scoped_chooser_viewset

ICON = "group"


class ClientForm(WagtailAdminModelForm):
    """A client: one plain primary address (unique in any letter case), extra ones to
    copy, and a language among the project's."""

    language = forms.ChoiceField(label=_("Language"), required=False, choices=())

    class Meta:
        model = Client
        fields = [
            "name",
            "company",
            "email",
            "extra_emails",
            "address",
            "tax_number",
            "language",
            "notes",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [
            ("", gettext("The site's language")),
            *((code, gettext(name)) for code, name in settings.LANGUAGES),
        ]
        self.fields["language"].help_text = Client._meta.get_field("language").help_text

    def clean_email(self) -> str:
        email: str = (self.cleaned_data.get("email") or "").strip()
        try:
            name, _plain = check_address(email)
        except InvalidAddress:
            raise ValidationError(gettext("Enter one email address."), code="invalid") from None
        if name or "<" in email:
            raise ValidationError(gettext("Enter a plain email address."), code="invalid")
        taken = Client.objects.alias(key=Lower("email")).filter(key=email.lower())
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError(
                gettext("A client with this billing email already exists."), code="unique"
            )
        return email

    def clean_extra_emails(self) -> str:
        return clean_address_list(self.cleaned_data.get("extra_emails") or "")


class ClientIndexView(IndexView):
    def get_base_queryset(self) -> QuerySet[Client]:
        user = self.request.user
        return with_client_figures(clients_for_user(user, super().get_base_queryset()), user)

    def _get_title_column(self, field_name: str, column_class: Any = TitleColumn, **kwargs: Any):
        # The name opens the client's page (their invoices and totals).
        return inspect_title_column(self, column_class, "display_name", _("Name"), "name")

    def get_list_more_buttons(self, instance: Client) -> list[Any]:
        buttons: list[Any] = super().get_list_more_buttons(instance)
        return [b for b in buttons if getattr(b, "url", None) != self.get_inspect_url(instance)]


class ClientEditView(EditView):
    """Wagtail's edit view, on the clients the editor may see (another's is a 404)."""

    def get_queryset(self) -> QuerySet[Client]:
        return clients_for_user(self.request.user)

    def get_object(self, queryset: Any = None) -> Client:
        if not unquote(str(self.kwargs.get(self.pk_url_kwarg, ""))).isdigit():
            raise Http404
        client: Client = super().get_object(queryset)
        return client


class ClientHistoryView(ClientScopeMixin, HistoryView):
    pass


class ClientUsageView(ClientScopeMixin, UsageView):
    pass


def _choosable(user: Any) -> QuerySet[Client]:
    """What the client chooser offers: the clients ``user`` may see, none erased."""
    return clients_for_user(user).filter(erased_at__isnull=True)


#: Wagtail's chooser, limited like every client screen. No "create" in it: a new client
#: comes from the request form's email field or the Clients screen, which record who
#: added it.
ClientChooserViewSet = scoped_chooser_viewset(Client, _choosable)


class EmailColumn(Column):
    def get_value(self, instance: Client) -> str:
        return instance.email


class OutstandingColumn(Column):
    """How many of the client's requests await payment; blank for none, so the clients
    who owe something stand out."""

    def get_value(self, instance: Client) -> str:
        count = getattr(instance, "outstanding_count", 0)
        return str(count) if count else ""


class ClientViewSet(SnippetViewSet):
    """The installation's clients: who billing requests go to, with their history."""

    model = Client
    icon = ICON
    menu_label = _("Clients")
    menu_name = "client-billing-clients"
    url_prefix = "client-billing/clients"
    url_namespace = "wagtail_client_billing_clients"
    add_to_admin_menu = False
    index_view_class = ClientIndexView
    add_view_class = ClientCreateView
    edit_view_class = ClientEditView
    delete_view_class = ClientDeleteView
    history_view_class = ClientHistoryView
    usage_view_class = ClientUsageView
    inspect_view_class = ClientPageView
    inspect_view_enabled = True
    chooser_viewset_class = ClientChooserViewSet
    copy_view_enabled = False
    list_display = [
        "name",
        "company",
        EmailColumn("email", label=_("Billing email"), sort_key="email"),
        OutstandingColumn(
            "outstanding_count", label=_("Awaiting payment"), sort_key="outstanding_count"
        ),
        DateColumn("last_billed_at", label=_("Last billed"), sort_key="last_billed_at"),
        DateColumn("created_at", label=_("Added"), sort_key="created_at"),
    ]
    filterset_class = ClientFilterSet
    search_fields = ["name", "company", "email", "extra_emails"]
    search_backend_name = None
    ordering = ["name", "company", "email"]
    edit_handler = ObjectList(
        [
            FieldRowPanel([FieldPanel("name"), FieldPanel("company")]),
            FieldPanel("email"),
            FieldPanel("extra_emails"),
            FieldPanel("address"),
            FieldRowPanel([FieldPanel("tax_number"), FieldPanel("language")]),
            FieldPanel("notes"),
        ],
        base_form_class=ClientForm,
    )

    @property
    def merge_view(self) -> Any:
        return ClientMergeView.as_view()

    @property
    def export_view(self) -> Any:
        return ClientExportView.as_view()

    @property
    def erase_view(self) -> Any:
        return ClientEraseView.as_view()

    def get_urlpatterns(self) -> list[Any]:
        return [
            *super().get_urlpatterns(),
            path("merge/<str:pk>/", self.merge_view, name="merge"),
            path("export/<str:pk>/", self.export_view, name="export"),
            path("erase/<str:pk>/", self.erase_view, name="erase"),
        ]
