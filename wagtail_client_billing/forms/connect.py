"""Forms for connecting a Stripe account to a site: create a new one, reuse one, unlink.

The forms only validate; the view (:mod:`wagtail_client_billing.views.admin_connect`)
talks to Stripe through the gateway and writes the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from babel import Locale, UnknownLocaleError
from django import forms
from django.utils import translation
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.widgets.switch import SwitchInput

from ..conf import billing_settings
from ..models import ClientBillingSettings, StripeAccount
from ..permissions import sites_user_can_connect_for
from ..scope import accounts_for_user, split_sites
from .fields import HttpURLField

if TYPE_CHECKING:
    from wagtail.models import Site

#: Countries in which Stripe lets a platform create a connected account (ISO 3166-1
#: alpha-2), from https://stripe.com/global. Countries in preview or invite-only are
#: left out: an editor cannot finish onboarding there without Stripe's say-so.
STRIPE_CONNECT_COUNTRIES = (
    "AE", "AT", "AU", "BE", "BG", "BR", "CA", "CH", "CY", "CZ", "DE", "DK", "EE", "ES",
    "FI", "FR", "GB", "GI", "GR", "HK", "HR", "HU", "IE", "IN", "IT", "JP", "LI", "LT",
    "LU", "LV", "MT", "MX", "MY", "NL", "NO", "NZ", "PL", "PT", "RO", "SE", "SG", "SI",
    "SK", "TH", "US",
)  # fmt: skip


def _territory_names() -> dict[str, str]:
    """Country names in the active language (Babel's CLDR data); English if unknown."""
    try:
        locale = Locale.parse(translation.to_locale(translation.get_language() or "en"))
    except (UnknownLocaleError, ValueError):
        locale = Locale("en")
    return dict(locale.territories)


def country_name(code: str) -> str:
    """``"DE"`` -> ``"Germany"`` (in the active language); the code itself if unknown."""
    return _territory_names().get(code.upper(), code)


def country_choices() -> list[tuple[str, str]]:
    """Stripe's countries named in the active language, sorted by name."""
    names = _territory_names()
    choices = [(code, names.get(code, code)) for code in STRIPE_CONNECT_COUNTRIES]
    return sorted(choices, key=lambda choice: choice[1].casefold())


def _slot_taken_message(test_mode: bool) -> str:
    if test_mode:
        return gettext("This site already has a test account. Unlink it first.")
    return gettext("This site already has a live account. Unlink it first.")


class ConnectAccountForm(forms.Form):
    """Create a new Stripe connected account for a site.

    Args:
        site: the site whose Client Billing settings get the account.
        settings: that site's :class:`ClientBillingSettings` (to see which slots are free).
    """

    test_mode = forms.BooleanField(
        label=_("Test mode"),
        required=False,
        widget=SwitchInput,
        help_text=_(
            "A test account takes no real money: use it to try billing requests. "
            "A site can have one test and one live account."
        ),
    )
    country = forms.ChoiceField(
        label=_("Country"),
        help_text=_("Where the business that gets paid is based. Stripe cannot change it later."),
    )
    privacy_policy_url = HttpURLField(
        label=_("Privacy Policy URL"),
        help_text=_(
            "Stripe shows it to the people who pay. For example https://example.com/privacy"
        ),
    )
    terms_of_service_url = HttpURLField(
        label=_("Terms of Service URL"),
        help_text=_("Stripe shows it to the people who pay. For example https://example.com/terms"),
    )

    def __init__(self, *args, site: Site, settings: ClientBillingSettings, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.site = site
        self.billing_settings = settings
        country = self.fields["country"]
        assert isinstance(country, forms.ChoiceField)
        country.choices = [("", gettext("Choose a country")), *country_choices()]

    def clean_test_mode(self) -> bool:
        test_mode = bool(self.cleaned_data.get("test_mode"))
        if self.billing_settings.account_for(test_mode) is not None:
            raise forms.ValidationError(_slot_taken_message(test_mode))
        if not billing_settings.secret_key(test_mode):
            if test_mode:
                message = gettext("The platform has no Stripe test key configured.")
            else:
                message = gettext("The platform has no Stripe live key configured.")
            raise forms.ValidationError(
                message + " " + gettext("Ask the site's developer to set it.")
            )
        return test_mode


class AccountChoiceField(forms.ModelChoiceField):
    """Labels an account with its mode, country and the sites that already use it."""

    #: Who is choosing: the label names only the sites of their scope.
    user = None

    def label_from_instance(self, obj: StripeAccount) -> str:
        every = {s.site for s in obj.test_settings.all()} | {
            s.site for s in obj.live_settings.all()
        }
        shown, others = split_sites(self.user, sorted(every, key=str))
        mode = gettext("test") if obj.test_mode else gettext("live")
        return f"{obj.stripe_id} ({mode}, {obj.country}) \N{EN DASH} {used_by(shown, others)}"


def site_list(shown: list[Site], others: int) -> str:
    """``Client A, Client B and 2 other sites``: the named sites, and a count of the rest."""
    names = ", ".join(str(site) for site in shown)
    if not others:
        return names
    if not shown:
        return ngettext("%(count)d other site", "%(count)d other sites", others) % {"count": others}
    return ngettext(
        "%(sites)s and %(count)d other site", "%(sites)s and %(count)d other sites", others
    ) % {"sites": names, "count": others}


def used_by(shown: list[Site], others: int) -> str:
    if not (shown or others):
        return gettext("not used by any site")
    return gettext("used by %(sites)s") % {"sites": site_list(shown, others)}


def reusable_accounts(site: Site, settings: ClientBillingSettings, user):
    """Accounts this user may attach to ``site``: of a mode whose slot is still free,
    still authorized, and already used by a site the user may connect for (or connected
    by them and used by no other site), as :func:`..scope.accounts_for_user` has it.

    Limiting it to the user's own sites keeps an editor of one client's site from billing
    through another client's Stripe account; the form accepts only what it offers.
    """
    free_modes = [mode for mode in (True, False) if settings.account_for(mode) is None]
    if not free_modes:
        return StripeAccount.objects.none()
    queryset = StripeAccount.objects.filter(test_mode__in=free_modes, deauthorized_at__isnull=True)
    queryset = accounts_for_user(user, queryset, sites=sites_user_can_connect_for(user))
    return (
        queryset.distinct()
        .prefetch_related("test_settings__site", "live_settings__site")
        .order_by("-test_mode", "stripe_id")
    )


class ReuseAccountForm(forms.Form):
    """Attach an account that is already connected (to another site) to this one."""

    account = AccountChoiceField(
        label=_("Connected account"),
        queryset=StripeAccount.objects.none(),
        empty_label=_("Choose an account"),
        help_text=_(
            "One Stripe account can bill for several sites, for example an agency's. "
            "It takes this site's test or live place, by its own mode."
        ),
    )

    def __init__(self, *args, site: Site, settings: ClientBillingSettings, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.site = site
        self.billing_settings = settings
        self.reusable = reusable_accounts(site, settings, user)
        self.account_field.queryset = self.reusable
        self.account_field.user = user

    @property
    def account_field(self) -> AccountChoiceField:
        field = self.fields["account"]
        assert isinstance(field, AccountChoiceField)
        return field

    @property
    def has_choices(self) -> bool:
        return self.reusable.exists()

    def clean_account(self) -> StripeAccount:
        account: StripeAccount = self.cleaned_data["account"]
        if self.billing_settings.account_for(account.test_mode) is not None:
            raise forms.ValidationError(_slot_taken_message(account.test_mode))
        return account


class UnlinkAccountForm(forms.Form):
    """Confirm unlinking; a test account may also be deleted on Stripe.

    ``delete_on_stripe`` exists only when deleting is safe: a test account that no other
    site uses and that has no pending invoices. A live account is never deleted here.
    """

    def __init__(self, *args, can_delete: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if can_delete:
            self.fields["delete_on_stripe"] = forms.BooleanField(
                label=_("Also delete this test account on Stripe"),
                required=False,
                help_text=_("Its test data on Stripe goes with it. This cannot be undone."),
            )
