"""Admin screens for connecting Stripe accounts to a site's Client Billing settings.

Connect (create a connected account, or reuse one) -> Stripe's hosted onboarding ->
back to the settings page; then Continue onboarding, Refresh status and Unlink.

Every view loads the site and checks, through :class:`SiteAccountMixin`, that the user
may connect accounts there (:func:`..permissions.can_connect_for_site`). What happens
to the account and the site is :mod:`..billing.accounts`' work; a
:class:`~..gateway.GatewayError` becomes a plain message for the editor and never
leaves a half-made record behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.generic import TemplateView, View
from wagtail.admin import messages
from wagtail.admin.views.generic.base import WagtailAdminTemplateMixin
from wagtail.models import Site

from .. import gateway
from ..billing import accounts
from ..forms.connect import ConnectAccountForm, ReuseAccountForm, UnlinkAccountForm, site_list
from ..models import ClientBillingSettings, Mode, StripeAccount, settings_url
from ..panels.stripe import connect_url
from ..permissions import can_connect_for_site
from ..scope import split_sites

logger = logging.getLogger(__name__)

#: Session key of the nonce that makes a connect form's idempotency key (per site).
NONCE_SESSION_KEY = "wagtail_client_billing.connect_nonce.%s"


def account_state_message(account: StripeAccount) -> str:
    """One sentence saying what the editor can do with the account now."""
    if account.charges_enabled:
        return gettext("Stripe account %(id)s: charges enabled.") % {"id": account.stripe_id}
    if not account.details_submitted:
        return gettext(
            "Stripe account %(id)s: onboarding isn't complete yet. "
            "Use Continue onboarding to finish it."
        ) % {"id": account.stripe_id}
    past_due, due_now = account.requirements_past_due, account.requirements_due_now
    if past_due:
        return gettext(
            "Stripe account %(id)s is restricted. Past due: %(past_due)s. Due now: %(due)s."
        ) % {
            "id": account.stripe_id,
            "past_due": ", ".join(past_due),
            "due": ", ".join(due_now) or "-",
        }
    return gettext("Stripe account %(id)s is restricted: Stripe still needs %(needs)s.") % {
        "id": account.stripe_id,
        "needs": ", ".join(due_now) or "-",
    }


class SiteAccountMixin:
    """Loads ``site`` (and ``test_mode`` from the URL's mode) and checks permission.

    Attributes:
        site: the site from the URL.
        billing_settings: its :class:`ClientBillingSettings`.
        test_mode: ``True``/``False`` for URLs with a mode, else ``None``.
    """

    request: HttpRequest
    site: Site
    billing_settings: ClientBillingSettings
    test_mode: bool | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.site = get_object_or_404(Site, pk=kwargs["site_pk"])
        if not can_connect_for_site(request, self.site):
            raise PermissionDenied
        mode = kwargs.get("mode")
        if mode is not None:
            if mode not in Mode.values:
                raise Http404
            self.test_mode = mode == Mode.TEST
        self.billing_settings = ClientBillingSettings.for_site(self.site)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    @property
    def account(self) -> StripeAccount | None:
        assert self.test_mode is not None
        return self.billing_settings.account_for(self.test_mode)

    def url(self, name: str, *, mode: str | None = None, absolute: bool = False) -> str:
        path = connect_url(name, self.site.pk, mode)
        return self.request.build_absolute_uri(path) if absolute else path

    def back_to_settings(self) -> HttpResponse:
        return redirect(settings_url(self.site, "stripe"))

    def onboarding_redirect(self, account: StripeAccount) -> HttpResponse:
        """Send the editor to a fresh Stripe Account Link, or back with the reason why not.

        Account Links are single use and short-lived, so one is made for every visit;
        Stripe sends an expired one back to ``refresh_url``, which is this same step.
        """
        try:
            url = accounts.onboarding_link(
                account,
                refresh_url=self.url("onboarding", mode=account.mode, absolute=True),
                return_url=self.url("return", mode=account.mode, absolute=True),
            )
        except gateway.GatewayError as error:
            messages.error(
                self.request,
                gettext(
                    "Stripe's onboarding page could not be opened: %(error)s "
                    "The account is saved; use Continue onboarding to try again."
                )
                % {"error": error},
            )
            return self.back_to_settings()
        return redirect(url)


class AdminPageMixin(WagtailAdminTemplateMixin):
    """Breadcrumbs back to the site's Client Billing settings."""

    site: Site
    header_icon = "link"

    def get_page_subtitle(self) -> str:
        return str(self.site)

    def get_breadcrumbs_items(self) -> list[dict[str, Any]]:
        return [
            *self.breadcrumbs_items,
            {"url": settings_url(self.site, "stripe"), "label": gettext("Client Billing")},
            {"url": "", "label": self.get_page_title()},
        ]


class ConnectView(SiteAccountMixin, AdminPageMixin, TemplateView):
    """Create a new connected account for the site, or attach one it can reuse.

    The idempotency key of ``create_account`` is made from the site, the mode, the
    parameters and a nonce kept in the session from the moment the form was shown: a
    double-clicked Connect sends the same key twice and Stripe answers both with the one
    account. After a timeout or a dropped connection the nonce is kept, so pressing
    Connect again replays the request: if Stripe had made the account after all, it
    answers with that one instead of making a second. After success, a refusal or any
    other answer Stripe keeps under the key (a 5xx, which it would replay to every retry:
    :attr:`.gateway.GatewayError.idempotency_key_spent`) it is dropped, so the next Connect (after an unlink, or with corrected details) is
    a new request; reopening the form always starts a new one.
    """

    template_name = "wagtail_client_billing/admin/connect/connect.html"
    page_title = _("Connect a Stripe account")

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        mode = request.GET.get("mode")
        taken: dict[str, bool] = {
            Mode.LIVE: self.billing_settings.live_account is not None,
            Mode.TEST: self.billing_settings.test_account is not None,
        }
        if mode in taken and taken[mode] or all(taken.values()):
            # Refused up front, not after the editor filled in the whole form.
            messages.error(
                request,
                _slot_taken(mode == Mode.TEST)
                if mode in taken
                else gettext("This site already has a live and a test account. Unlink one first."),
            )
            return self.back_to_settings()
        self.nonce(rotate=True)
        if mode not in taken:
            mode = Mode.LIVE if taken[Mode.TEST] else Mode.TEST
        initial = {"test_mode": mode != Mode.LIVE}
        previous = self.billing_settings.live_account or self.billing_settings.test_account
        if previous is not None:
            initial["country"] = previous.country
            initial["privacy_policy_url"] = previous.privacy_policy_url
            initial["terms_of_service_url"] = previous.terms_of_service_url
        return self.render_to_response(
            self.get_context_data(
                form=ConnectAccountForm(
                    initial=initial, site=self.site, settings=self.billing_settings
                ),
                reuse_form=self.reuse_form(),
            )
        )

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.POST.get("action") == "reuse":
            return self.post_reuse()
        form = ConnectAccountForm(request.POST, site=self.site, settings=self.billing_settings)
        if form.is_valid():
            response = self.create(form)
            if response is not None:
                return response
        return self.render_to_response(
            self.get_context_data(form=form, reuse_form=self.reuse_form())
        )

    def reuse_form(self, data: Any = None) -> ReuseAccountForm:
        return ReuseAccountForm(
            data,
            prefix="reuse",
            site=self.site,
            settings=self.billing_settings,
            user=self.request.user,
        )

    # --- create -------------------------------------------------------------------------

    def nonce(self, *, rotate: bool = False) -> str:
        key = NONCE_SESSION_KEY % self.site.pk
        session = self.request.session
        if rotate or not session.get(key):
            session[key] = secrets.token_urlsafe(16)
        return session[key]

    def forget_nonce(self) -> None:
        self.request.session.pop(NONCE_SESSION_KEY % self.site.pk, None)

    def idempotency_key(self, data: dict[str, Any]) -> str:
        params = json.dumps(data, sort_keys=True, default=str).encode()
        digest = hashlib.sha256(params).hexdigest()[:16]
        mode = Mode.TEST if data["test_mode"] else Mode.LIVE
        return f"wcb-connect-{self.site.pk}-{mode}-{self.nonce()}-{digest}"

    def create(self, form: ConnectAccountForm) -> HttpResponse | None:
        """Create the account on Stripe, store it, attach it, send the editor to onboarding.

        Returns ``None`` (re-render the form) when Stripe refused.
        """
        data = form.cleaned_data
        test_mode = data["test_mode"]
        try:
            connected = accounts.create_and_attach(
                self.site,
                test_mode=test_mode,
                country=data["country"],
                privacy_policy_url=data["privacy_policy_url"],
                terms_of_service_url=data["terms_of_service_url"],
                idempotency_key=self.idempotency_key(data),
                user=self.request.user,
            )
        except gateway.GatewayError as error:
            if not error.retryable or error.idempotency_key_spent:
                self.forget_nonce()
            form.add_error(_field_for_error(error, form), str(error))
            return None
        self.forget_nonce()
        if not connected.attached:
            form.add_error(None, _slot_taken(test_mode))
            return None
        account = connected.account
        messages.success(
            self.request,
            gettext("Stripe account %(id)s created. Finish onboarding on Stripe.")
            % {"id": account.stripe_id},
        )
        return self.onboarding_redirect(account)

    # --- reuse --------------------------------------------------------------------------

    def post_reuse(self) -> HttpResponse:
        reuse_form = self.reuse_form(self.request.POST)
        if reuse_form.is_valid():
            account = reuse_form.cleaned_data["account"]
            if accounts.attach(self.site, account, user=self.request.user, reused=True):
                messages.success(
                    self.request,
                    gettext("%(site)s now bills through Stripe account %(id)s.")
                    % {"site": self.site, "id": account.stripe_id},
                )
                return self.back_to_settings()
            reuse_form.add_error("account", _slot_taken(account.test_mode))
        form = ConnectAccountForm(site=self.site, settings=self.billing_settings)
        return self.render_to_response(self.get_context_data(form=form, reuse_form=reuse_form))

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(site=self.site, cancel_url=settings_url(self.site, "stripe"))
        return context


def _slot_taken(test_mode: bool) -> str:
    if test_mode:
        return gettext("This site already has a test account. Unlink it first.")
    return gettext("This site already has a live account. Unlink it first.")


def _field_for_error(error: gateway.GatewayError, form: ConnectAccountForm) -> str | None:
    """The form field a Stripe error is about, when Stripe named one we show."""
    param = getattr(error, "param", None) or ""
    for field in ("country", "privacy_policy_url", "terms_of_service_url"):
        if param.endswith(field) or (field == "country" and "country" in param):
            return field if field in form.fields else None
    return None


class OnboardingView(SiteAccountMixin, View):
    """Continue onboarding, and Stripe's ``refresh_url``: a fresh Account Link each time.

    A GET, because Stripe redirects browsers here; it changes nothing in the database.
    """

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        account = self.account
        if account is None:
            messages.warning(request, gettext("This site has no account of that mode any more."))
            return self.back_to_settings()
        return self.onboarding_redirect(account)


class ReturnView(SiteAccountMixin, View):
    """Stripe's ``return_url``: read the account's state from Stripe and show it.

    Coming back says nothing about whether onboarding was finished, so the account is
    retrieved every time.
    """

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return refresh_and_report(self)


class RefreshStatusView(SiteAccountMixin, View):
    """Refresh status: the same as coming back from Stripe, on demand (POST, CSRF)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return refresh_and_report(self)


def refresh_and_report(view: SiteAccountMixin) -> HttpResponse:
    request = view.request
    account = view.account
    if account is None:
        messages.warning(request, gettext("This site has no account of that mode any more."))
        return view.back_to_settings()
    try:
        accounts.refresh(account)
    except gateway.PermissionDenied as error:
        messages.error(
            request,
            gettext(
                "Stripe account %(id)s no longer lets this platform act for it: %(error)s "
                "Unlink it and connect another one."
            )
            % {"id": account.stripe_id, "error": error},
        )
        return view.back_to_settings()
    except gateway.GatewayError as error:
        messages.error(
            request,
            gettext("Could not read the account's status from Stripe: %(error)s")
            % {"error": error},
        )
        return view.back_to_settings()
    if account.charges_enabled:
        messages.success(request, account_state_message(account))
    else:
        messages.warning(request, account_state_message(account))
    return view.back_to_settings()


class UnlinkView(SiteAccountMixin, AdminPageMixin, TemplateView):
    """Confirm, then detach the account from the site.

    The :class:`StripeAccount` record stays: invoices made with it keep pointing at it,
    so the site's pending invoices of that mode can still be paid until they expire.
    A test account that nothing else needs may also be deleted on Stripe; a live one
    never is -- its money and history belong to the account holder.
    """

    template_name = "wagtail_client_billing/admin/connect/unlink.html"
    page_title = _("Unlink Stripe account")

    def get_account_or_redirect(self) -> StripeAccount | None:
        account = self.account
        if account is None:
            messages.warning(self.request, gettext("This site has no account of that mode."))
        return account

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        account = self.get_account_or_redirect()
        if account is None:
            return self.back_to_settings()
        form = UnlinkAccountForm(can_delete=accounts.may_delete_on_stripe(self.site, account))
        return self.render_to_response(self.get_context_data(account=account, form=form))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        account = self.get_account_or_redirect()
        if account is None:
            return self.back_to_settings()
        can_delete = accounts.may_delete_on_stripe(self.site, account)
        form = UnlinkAccountForm(request.POST, can_delete=can_delete)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(account=account, form=form))
        delete = can_delete and form.cleaned_data.get("delete_on_stripe", False)

        accounts.unlink(self.site, account, user=request.user)
        messages.success(
            request,
            gettext("Stripe account %(id)s is no longer connected to %(site)s.")
            % {"id": account.stripe_id, "site": self.site},
        )
        if delete:
            self.delete_on_stripe(account)
        return self.back_to_settings()

    def delete_on_stripe(self, account: StripeAccount) -> None:
        try:
            accounts.delete_test_account(account)
        except gateway.GatewayError as error:
            messages.error(
                self.request,
                gettext("Stripe could not delete the test account: %(error)s") % {"error": error},
            )
            return
        messages.success(
            self.request,
            gettext("Test account %(id)s was deleted on Stripe.") % {"id": account.stripe_id},
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        account = kwargs["account"]
        other_sites = accounts.other_sites(self.site, account)
        context.update(
            site=self.site,
            cancel_url=settings_url(self.site, "stripe"),
            other_sites=other_sites,
            other_sites_named=site_list(*split_sites(self.request.user, other_sites)),
            pending_invoices=accounts.open_invoices(self.site, account),
            action_url=self.url("unlink", mode=account.mode),
        )
        return context


#: Mounted by ``wagtail_hooks.py`` under ``admin/client-billing/connect/`` with the
#: namespace ``wagtail_client_billing_connect``.
urlpatterns = [
    path("<int:site_pk>/", ConnectView.as_view(), name="connect"),
    path("<int:site_pk>/<str:mode>/onboarding/", OnboardingView.as_view(), name="onboarding"),
    path("<int:site_pk>/<str:mode>/return/", ReturnView.as_view(), name="return"),
    path(
        "<int:site_pk>/<str:mode>/refresh-status/",
        RefreshStatusView.as_view(),
        name="refresh_status",
    ),
    path("<int:site_pk>/<str:mode>/unlink/", UnlinkView.as_view(), name="unlink"),
]
