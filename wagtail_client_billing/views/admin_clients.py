"""Admin screens of the client directory: a client's page, merge, export, erase.

Each view loads its client through the one access scope (:func:`..scope.clients_for_user`:
a client with no invoice on the editor's sites is a 404) and checks its Django model
permission (``view``/``change`` for the page, ``merge_client``, ``export_client``,
``erase_client``). What an action does is :mod:`..billing.clients`'s.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.utils import quote, unquote
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.generic import TemplateView
from wagtail.admin import messages
from wagtail.admin.ui.components import MediaContainer
from wagtail.admin.views.generic import WagtailAdminTemplateMixin
from wagtail.admin.views.generic.permissions import PermissionCheckedMixin
from wagtail.admin.widgets.button import Button, HeaderButton
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.snippets.views.snippets import CreateView, DeleteView, InspectView

from ..billing import clients, overview
from ..forms.fields import ScopedChooser
from ..models import Client, Invoice
from ..scope import clients_for_user, invoices_for_user
from . import admin_portal

TEMPLATE_DIR = "wagtail_client_billing/admin/clients/"
#: Invoices per page on a client's page.
INVOICES_PER_PAGE = 25


def _viewset(model: type[Any]) -> Any:
    """The snippet viewset ``register_snippet`` gave ``model`` (see ``wagtail_hooks``)."""
    return getattr(model, "snippet_viewset")  # noqa: B009 (set on the model at registration)


def client_url(name: str, client: Client) -> str:
    return reverse(_viewset(Client).get_url_name(name), args=[quote(client.pk)])


def _policy() -> ModelPermissionPolicy:
    return ModelPermissionPolicy(Client)


class ClientScopeMixin:
    """Load the client of the URL from those the user may see, or 404 (a client the
    editor cannot see is indistinguishable from one that does not exist)."""

    pk_url_kwarg = "pk"
    request: Any
    kwargs: dict[str, Any]

    def get_object(self, queryset: Any = None) -> Client:
        loaded: Client | None = getattr(self, "_scoped_client", None)
        if loaded is not None:
            return loaded
        pk = unquote(str(self.kwargs[self.pk_url_kwarg]))
        if not pk.isdigit():
            raise Http404
        client: Client = get_object_or_404(clients_for_user(self.request.user), pk=int(pk))
        self._scoped_client = client
        return client


# --- the viewset's own views ------------------------------------------------------------------


class ClientCreateView(CreateView):
    """Add a client; its author sees it before it has any invoice."""

    def save_instance(self) -> Client:
        client: Client = self.form.save(commit=False)
        client.created_by = self.request.user
        client.save()
        self.form.save_m2m()
        return client

    def get_success_url(self) -> str:
        return client_url("inspect", self.object)


class ClientDeleteView(ClientScopeMixin, DeleteView):
    """Delete a client who has no invoice; one with invoices is merged or erased instead
    (an invoice keeps its client: ``Invoice.client`` is PROTECT)."""

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.object = self.get_object()
        if Invoice.objects.filter(client=self.object).exists():
            messages.error(
                request,
                _(
                    "%(client)s has billing requests, which keep their client: merge the "
                    "client into another one, or erase their personal data, instead."
                )
                % {"client": self.object},
            )
            return HttpResponseRedirect(client_url("inspect", self.object))
        return super().dispatch(request, *args, **kwargs)

    def get_usage_url(self) -> None:
        return None


class ClientPageView(ClientScopeMixin, InspectView):
    """A client's page: their details, totals per currency, subscriptions and invoices,
    all limited to the sites the editor may bill for.

    The same queries whatever the number of invoices: the totals are two grouped
    queries (:func:`..billing.overview.client_totals`), the invoices one page of a
    paginated query, the subscriptions one query.
    """

    template_name = TEMPLATE_DIR + "inspect.html"
    page_title = gettext_lazy("Client")
    fields = ["name"]

    def get_page_subtitle(self) -> str:
        return str(self.object)

    def invoices(self) -> QuerySet[Invoice]:
        return invoices_for_user(self.request.user, Invoice.objects.filter(client=self.object))

    @cached_property
    def header_more_buttons(self) -> list[Any]:
        client, user, policy = self.object, self.request.user, _policy()
        buttons = []
        if policy.user_has_permission(user, "change"):
            buttons.append(Button(_("Edit"), url=client_url("edit", client), icon_name="edit"))
        for action, label, icon in (
            ("merge", _("Merge with another client"), "resubmit"),
            ("export", _("Export personal data (JSON)"), "download"),
            ("erase", _("Erase personal data"), "bin"),
        ):
            if policy.user_has_permission(user, action):
                buttons.append(Button(label, url=client_url(action, client), icon_name=icon))
        if not client.erased_at and admin_portal.may_revoke(user):
            url = admin_portal.revoke_url(client)
            buttons.append(Button(_("Revoke portal links"), url=url, icon_name="lock"))
        buttons.append(Button(_("History"), url=client_url("history", client), icon_name="history"))
        return buttons

    @cached_property
    def header_buttons(self) -> list[Any]:
        add = _viewset(Invoice)
        user = self.request.user
        if self.object.erased_at or not add.permission_policy.user_has_permission(user, "add"):
            return []
        url = reverse(add.get_url_name("add")) + f"?client={self.object.pk}"
        return [HeaderButton(_("Add billing request"), url=url, icon_name="plus")]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        invoices = self.invoices()
        listed = invoices.select_related("site").order_by("-created_at", "-pk")
        page = Paginator(listed, INVOICES_PER_PAGE).get_page(self.request.GET.get("p"))
        subscriptions = (
            invoices.exclude(subscription_id="")
            .select_related("site")
            .order_by("-created_at", "-pk")[:50]
        )
        inspect = _viewset(Invoice).get_url_name("inspect")
        context.update(
            client=self.object,
            totals=overview.client_totals(invoices),
            invoices_page=page,
            subscriptions=list(subscriptions),
            invoice_url_name=inspect,
        )
        return context


# --- merge ---------------------------------------------------------------------------------


class MergeForm(forms.Form):
    other = forms.ModelChoiceField(
        label=gettext_lazy("Client to merge into this one"),
        queryset=Client.objects.none(),
        help_text=gettext_lazy(
            "Their billing requests and Stripe customers move to this client, and they are "
            "removed from the directory."
        ),
    )

    def __init__(self, *args: Any, user: Any, keep: Client, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["other"]
        others = clients_for_user(user).exclude(pk=keep.pk)
        field.queryset = others  # type: ignore[attr-defined]
        field.widget = ScopedChooser(Client, others)


class _ClientActionView(
    ClientScopeMixin, PermissionCheckedMixin, WagtailAdminTemplateMixin, TemplateView
):
    model = Client
    permission_required = ""

    @property
    def permission_policy(self) -> ModelPermissionPolicy:
        return _policy()

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.permission_policy.user_has_permission(request.user, self.permission_required):
            return HttpResponse(_("You do not have permission to do this to clients."), status=403)
        self.object = self.get_object()
        return super().dispatch(request, *args, **kwargs)

    def get_page_subtitle(self) -> str:
        return str(self.object)

    def get_breadcrumbs_items(self) -> list[dict[str, Any]]:
        viewset = _viewset(Client)
        return [
            *self.breadcrumbs_items,
            {"url": reverse(viewset.get_url_name("list")), "label": _("Clients")},
            {"url": client_url("inspect", self.object), "label": str(self.object)},
            {"url": "", "label": str(self.get_page_title())},
        ]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context.update(
            client=self.object,
            object=self.object,
            client_url=client_url("inspect", self.object),
            action_url=self.request.get_full_path(),
            media=MediaContainer([]).media,
        )
        return context


class ClientMergeView(_ClientActionView):
    permission_required = "merge"
    page_title = gettext_lazy("Merge clients")
    header_icon = "resubmit"
    template_name = TEMPLATE_DIR + "merge.html"

    def get_form(self) -> MergeForm:
        data = self.request.POST if self.request.method == "POST" else None
        return MergeForm(data, user=self.request.user, keep=self.object)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = kwargs.get("form") or self.get_form()
        context.update(form=form, media=form.media)
        return context

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        form = self.get_form()
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form))
        other: Client = form.cleaned_data["other"]
        if clients.invoices_out_of_scope(request.user, other):
            form.add_error(
                "other",
                _(
                    "That client has billing requests on sites you cannot see: ask someone "
                    "who sees every site to merge them."
                ),
            )
            return self.render_to_response(self.get_context_data(form=form))
        if "confirm" not in request.POST:
            return self.render_to_response(
                self.get_context_data(
                    form=form,
                    confirming=True,
                    other=other,
                    moving=Invoice.objects.filter(client=other).count(),
                )
            )
        try:
            result = clients.merge(self.object, other, user=request.user)
        except clients.NotAllowed as exc:
            form.add_error("other", str(exc))
            return self.render_to_response(self.get_context_data(form=form))
        messages.success(
            request,
            ngettext(
                "%(other)s merged into %(client)s: %(count)s billing request moved.",
                "%(other)s merged into %(client)s: %(count)s billing requests moved.",
                result.invoices,
            )
            % {"other": other, "client": self.object, "count": result.invoices},
        )
        return HttpResponseRedirect(client_url("inspect", self.object))


# --- personal data: export and erase -------------------------------------------------------


class ClientExportView(_ClientActionView):
    """Everything held about the client (that the editor may see) as a JSON download."""

    permission_required = "export"

    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        body = clients.export_json(self.object, user=request.user)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
        name = slugify(f"client-{self.object.pk}") or "client"
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response


class ClientEraseView(_ClientActionView):
    """Confirm, then erase the client's personal data (:func:`..billing.clients.erase`)."""

    permission_required = "erase"
    page_title = gettext_lazy("Erase personal data")
    header_icon = "bin"
    template_name = TEMPLATE_DIR + "erase.html"

    def refusal(self) -> str:
        if clients.invoices_out_of_scope(self.request.user, self.object):
            return _(
                "This client has billing requests on sites you cannot see: ask someone who "
                "sees every site to erase their data."
            )
        return clients.erasure_refusal(self.object)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            refusal=self.refusal(),
            invoice_count=Invoice.objects.filter(client=self.object).count(),
        )
        return context

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        refusal = self.refusal()
        if refusal:
            messages.error(request, refusal)
            return self.render_to_response(self.get_context_data())
        try:
            summary = clients.erase(self.object, user=request.user)
        except clients.NotAllowed as exc:
            messages.error(request, str(exc))
            return self.render_to_response(self.get_context_data())
        messages.success(
            request,
            ngettext(
                "Personal data erased; %(count)s billing request keeps its number, amount, "
                "dates and tax.",
                "Personal data erased; %(count)s billing requests keep their numbers, "
                "amounts, dates and tax.",
                summary["invoices"],
            )
            % {"count": summary["invoices"]},
        )
        return HttpResponseRedirect(client_url("inspect", self.object))
