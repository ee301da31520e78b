"""The Client Billing settings form: the SMTP password, and the Email tab's rules.

The password is write-only. The field is never filled in (not in the page, not in
the form's initial data): leaving it blank keeps the stored password, typing one
replaces it, and "Clear the stored password" removes it. What is stored is a Fernet
token (:meth:`~wagtail_client_billing.models.ClientBillingSettings.set_smtp_password`).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm

from ..billing.taxes import stripe_tax_problem
from ..conf import billing_settings
from ..emails import InvalidAddress, OutboundPolicyError, check_address, resolve_smtp_host
from ..models import TaxMode
from ..money import currency_choices
from ..scope import site_in_scope
from .fields import clean_address_list


def hide_password_from_error_reports(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """Show a typed SMTP password as stars in the report of a failed settings request.

    Connected to ``got_request_exception``, which Django sends before it writes its error
    report (the email to ``ADMINS``, the debug page) on every Wagtail release; the
    parameters the request already hides stay hidden.
    """
    match = getattr(request, "resolver_match", None)
    if match is None or (match.kwargs.get("app_name"), match.kwargs.get("model_name")) != (
        "wagtail_client_billing",
        "clientbillingsettings",
    ):
        return
    hidden = getattr(request, "sensitive_post_parameters", [])
    if hidden != "__ALL__":
        request.sensitive_post_parameters = [*hidden, "smtp_password"]


def validate_from_address(value: str) -> None:
    """Accept ``billing@acme.example`` or ``Acme Studio <billing@acme.example>``: one
    address, read as typed by the code that sends it (see :func:`emails.check_address`)."""
    try:
        check_address(value)
    except InvalidAddress:
        raise ValidationError(
            _('Enter one email address, or a name and address like "Acme <billing@acme.example>".'),
            code="invalid",
        ) from None


def validate_reply_to(value: str) -> None:
    """One plain address, read as typed by the code that sends it."""
    try:
        check_address(value)
    except InvalidAddress:
        raise ValidationError(_("Enter one email address."), code="invalid") from None


class ClientBillingSettingsForm(WagtailAdminModelForm):
    """Settings -> Client Billing, all tabs; the Email tab's fields are checked here."""

    smtp_password = forms.CharField(
        label=_("SMTP password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_smtp_password = forms.BooleanField(
        label=_("Clear the stored password"),
        required=False,
        help_text=_("Tick to remove the stored password, for a server that needs none."),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Wagtail's settings view asks only Wagtail's permissions; the form is where every
        # supported release lets the app apply its own scope before anything is shown or
        # saved, so an editor the hook keeps to other sites gets a 403 here.
        site = getattr(self.instance, "site", None)
        if (
            self.for_user is not None
            and site is not None
            and not site_in_scope(self.for_user, site)
        ):
            raise PermissionDenied
        # Never echo a secret: not as initial data, not as the widget's value.
        self.initial.pop("smtp_password", None)
        stored = bool(self.instance and self.instance.pk and self.instance.has_smtp_password)
        self.fields["smtp_password"].help_text = (
            _("A password is stored. Leave this blank to keep it, or type a new one.")
            if stored
            else _("No password is stored. Leave blank if the server needs no login.")
        )
        if "tax_mode" in self.fields:
            self.fields["tax_mode"].required = False
            self.fields["tax_mode"].help_text = _(
                "Tax rates: you define them under Client billing → Tax rates and pick one "
                "per request. Stripe Tax: Stripe calculates the tax at checkout from the "
                "client's address (set it up in the account's Stripe Dashboard first)."
            )
        if "default_currency" in self.fields:
            self.fields["default_currency"] = self.default_currency_field()
            code = (self.initial.get("default_currency") or "").upper()
            self.initial["default_currency"] = code if code in billing_settings.CURRENCIES else ""
        if "from_email" in self.fields:
            self.fields["from_email"].help_text = _(
                'For the custom SMTP server, for example "Acme Studio <billing@acme.example>". '
                "Blank, or with the default email settings: the project's sender address."
            )
        if "reply_to" in self.fields:
            self.fields["reply_to"].help_text = _(
                "Where your clients' replies go, with either kind of connection."
            )

    def clean_tax_mode(self) -> str:
        # Not posted (a form built before the Tax tab): the site keeps its way of taxing.
        value = self.cleaned_data.get("tax_mode")
        return value or self.instance.tax_mode or TaxMode.NONE

    @staticmethod
    def default_currency_field() -> forms.ChoiceField:
        """A choice of the currencies the project bills in (``CURRENCIES``), not a text
        box: a code outside them would save and then be silently replaced."""
        allowed = list(billing_settings.CURRENCIES)
        return forms.ChoiceField(
            label=_("Default currency"),
            required=False,
            choices=[
                ("", _("The project's default (%(code)s)") % {"code": allowed[0]}),
                *currency_choices(allowed),
            ],
            help_text=_("Preselected on this site's new billing requests."),
        )

    def clean_from_email(self) -> str:
        value = (self.cleaned_data.get("from_email") or "").strip()
        if value:
            validate_from_address(value)
        return value

    def clean_reply_to(self) -> str:
        value = (self.cleaned_data.get("reply_to") or "").strip()
        if value:
            validate_reply_to(value)
        return value

    def clean_paid_notices(self) -> str:
        """Off unless a choice is made (a form of an older release sends none)."""
        return self.cleaned_data.get("paid_notices") or "off"

    def clean_billing_contacts(self) -> str:
        """One or more plain addresses; stored one a line."""
        return clean_address_list(self.cleaned_data.get("billing_contacts") or "")

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("use_custom_smtp"):
            if not (cleaned.get("smtp_host") or "").strip():
                self.add_error("smtp_host", _("Enter the SMTP server's host name."))
            if not cleaned.get("smtp_port") and "smtp_port" not in self.errors:
                self.add_error("smtp_port", _("Enter the SMTP server's port, usually 587 or 465."))
        if cleaned.get("clear_smtp_password") and cleaned.get("smtp_password"):
            self.add_error(
                "smtp_password",
                _("Either type a new password or clear the stored one, not both."),
            )
        if "smtp_host" in cleaned:
            cleaned["smtp_host"] = (cleaned.get("smtp_host") or "").strip()
        if cleaned.get("use_custom_smtp") and cleaned.get("smtp_host") and cleaned.get("smtp_port"):
            self._check_outbound_policy(cleaned["smtp_host"], cleaned["smtp_port"])
        if cleaned.get("tax_mode") == TaxMode.STRIPE_TAX and "tax_mode" in self.changed_data:
            self._check_stripe_tax()
        return cleaned

    def _check_stripe_tax(self) -> None:
        """Refuse Stripe Tax while a connected account of the site cannot use it."""
        instance = self.instance
        accounts = [a for a in (instance.live_account, instance.test_account) if a is not None]
        if not accounts:
            self.add_error(
                "tax_mode",
                _("Connect a Stripe account first: Stripe Tax is set up in its dashboard."),
            )
        for account in accounts:
            problem = stripe_tax_problem(account)
            if problem:
                self.add_error("tax_mode", problem)

    def _check_outbound_policy(self, host: str, port: int) -> None:
        """Refuse now a server every email would refuse later (sending checks again)."""
        try:
            resolve_smtp_host(host, port)
        except OutboundPolicyError as exc:
            self.add_error(exc.setting, str(exc))
        except OSError:
            pass  # not resolvable from here (yet): the test email will say so

    def save(self, commit: bool = True):
        """Save the fields this form shows, and the password's token if it changed.

        Only those: the settings row also holds the site's account links, which
        connect/unlink and Stripe's deauthorization write while the form is open, and a
        whole-row save would put back the values it loaded.
        """
        instance = super().save(commit=False)
        written = self.written_fields()
        if self.cleaned_data.get("clear_smtp_password"):
            instance.set_smtp_password("")
            written.append("smtp_password_encrypted")
        elif self.cleaned_data.get("smtp_password"):
            instance.set_smtp_password(self.cleaned_data["smtp_password"])
            written.append("smtp_password_encrypted")
        if commit:
            instance.save(update_fields=None if instance._state.adding else written)
            self.save_m2m()
        return instance

    def written_fields(self) -> list[str]:
        """The model's columns among this form's fields: what a save may write."""
        columns = {field.name for field in self.instance._meta.concrete_fields}
        return [name for name in self.fields if name in columns]
