"""The billing request form's payment link lifetime and due date.

A mixin of :class:`.invoices.InvoiceCreateForm` (which also edits drafts): the lifetime
is typed as a number and a unit (hours or days) and stored on the invoice as
``payment_link_lifetime`` (empty: the site's lifetime); it may not exceed the site's
longest lifetime (``ClientBillingSettings.payment_link_max_lifetime``). The optional
due date must fall inside that lifetime, counted from now: a request sent later (a
draft) is checked again when it is sent (:func:`..billing.invoices.send`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.widgets import AdminDateInput

from ..billing.invoices import due_date_problem
from ..models import ClientBillingSettings

HOURS = "hours"
DAYS = "days"
UNITS = [(HOURS, _("hours")), (DAYS, _("days"))]


def describe(lifetime: timedelta) -> str:
    """``3 days`` or ``36 hours``: a lifetime in the largest whole unit."""
    hours = int(lifetime.total_seconds() // 3600)
    if hours % 24 == 0:
        days = hours // 24
        return gettext("%(count)d days") % {"count": days} if days != 1 else gettext("1 day")
    return gettext("%(count)d hours") % {"count": hours} if hours != 1 else gettext("1 hour")


#: The mixin's base: a Form, so its fields are declared fields of the model form it is
#: mixed into; typed loosely, as Wagtail's admin model form is.
_FormBase: Any = forms.Form


class DueDateFormMixin(_FormBase):
    """Adds ``lifetime_value``, ``lifetime_unit`` and the model's ``due_date``."""

    lifetime_value = forms.IntegerField(
        label=_("Payment link lifetime"),
        required=False,
        min_value=1,
        help_text=_(
            "How long the client can pay, counted from sending. Blank: the site's lifetime."
        ),
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    lifetime_unit = forms.ChoiceField(label=_("Unit"), choices=UNITS, initial=DAYS, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "due_date" in self.fields:
            self.fields["due_date"].widget = AdminDateInput()
            self.fields["due_date"].help_text = _(
                "Optional. After this day the invoice shows as overdue; the client can "
                "still pay until the link expires."
            )
        lifetime = getattr(self.instance, "payment_link_lifetime", None)
        if lifetime and not self.is_bound:
            hours = int(lifetime.total_seconds() // 3600)
            if hours % 24 == 0:
                self.initial.update(lifetime_value=hours // 24, lifetime_unit=DAYS)
            else:
                self.initial.update(lifetime_value=hours, lifetime_unit=HOURS)

    def clean_lifetime(self, site: Any) -> None:
        """Check the lifetime and due date against ``site``'s settings; call from clean()."""
        value = self.cleaned_data.get("lifetime_value")
        unit = self.cleaned_data.get("lifetime_unit") or DAYS
        settings = ClientBillingSettings.for_site(site)
        lifetime = None
        if value:
            lifetime = timedelta(days=value) if unit == DAYS else timedelta(hours=value)
            longest = settings.payment_link_max_lifetime
            if lifetime > longest:
                self.add_error(
                    "lifetime_value",
                    ValidationError(
                        gettext("The longest lifetime on this site is %(longest)s.")
                        % {"longest": describe(longest)},
                        code="max_lifetime",
                    ),
                )
                return
        self.instance.payment_link_lifetime = lifetime
        expires_at = timezone.now() + (lifetime or settings.payment_link_lifetime)
        problem = due_date_problem(self.cleaned_data.get("due_date"), expires_at)
        if problem:
            self.add_error("due_date", ValidationError(problem, code="due_date"))
