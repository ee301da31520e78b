"""The Stripe tab: connected live and test accounts, connect / continue / unlink.

The tab has no form fields of its own: connecting and unlinking change where a site's
money goes, so they happen on their own screens (:mod:`..views.admin_connect`), each
with its own permission check, and never through the settings form's Save button.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import Panel

from ..billing.accounts import attached_at
from ..forms.connect import country_name
from ..models import Mode, StripeAccount, user_display
from ..permissions import user_can_connect
from ..requirements import disabled_reason_label, requirement_labels
from ..scope import can_use_client_billing

if TYPE_CHECKING:
    from django.utils.functional import Promise


@dataclass
class AccountSlot:
    """What the tab shows for one mode of one site."""

    mode: str
    heading: Promise
    account: StripeAccount | None
    connected_by: str = ""
    connected_at: datetime | None = None
    past_due: list[tuple[str, str]] | None = None
    due_now: list[tuple[str, str]] | None = None
    disabled_reason: str = ""
    tone: str = ""
    country: str = ""
    connect_url: str = ""
    onboarding_url: str = ""
    refresh_status_url: str = ""
    unlink_url: str = ""


#: The tone of an account's state badge (the invoice status tags' colours): "Charges
#: enabled" must not look like "Onboarding incomplete".
STATE_TONES = {"enabled": "positive", "incomplete": "warning", "deauthorized": "neutral"}


def connect_url(name: str, site_pk: int, mode: str | None = None) -> str:
    """The path of one of the connect screens (:mod:`..views.admin_connect`) for a site."""
    kwargs: dict[str, object] = {"site_pk": site_pk}
    if mode is not None:
        kwargs["mode"] = mode
    return reverse(f"wagtail_client_billing_connect:{name}", kwargs=kwargs)


class StripeAccountsPanel(Panel):
    """Shows the site's live and test accounts and, to users allowed to, their actions."""

    class BoundPanel(Panel.BoundPanel):
        template_name = "wagtail_client_billing/admin/connect/stripe_panel.html"

        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.site = getattr(self.instance, "site", None)

        def is_shown(self) -> bool:
            # The site developer's hook hides the whole feature for this site and user.
            if self.site is None or self.request is None:
                return False
            return can_use_client_billing(self.request, self.site)

        def slots(self) -> list[AccountSlot]:
            site = self.site
            assert site is not None  # is_shown() is false without one
            can_connect = user_can_connect(self.request.user, site)
            slots = []
            for mode, heading, account in (
                (Mode.LIVE, _("Live account"), self.instance.live_account),
                (Mode.TEST, _("Test account"), self.instance.test_account),
            ):
                slot = AccountSlot(mode=mode, heading=heading, account=account)
                if account is not None:
                    when, who = attached_at(self.instance, account)
                    slot.connected_at, slot.connected_by = when, user_display(who)
                    slot.past_due = requirement_labels(account.requirements_past_due)
                    slot.due_now = requirement_labels(account.requirements_due_now)
                    if account.disabled_reason:
                        slot.disabled_reason = disabled_reason_label(account.disabled_reason)
                    slot.tone = STATE_TONES.get(account.state, "critical")
                    slot.country = country_name(account.country)
                if can_connect:
                    site_pk = site.pk
                    if account is None:
                        slot.connect_url = connect_url("connect", site_pk) + f"?mode={mode}"
                    else:
                        if not account.onboarding_complete and account.deauthorized_at is None:
                            slot.onboarding_url = connect_url("onboarding", site_pk, mode)
                        slot.refresh_status_url = connect_url("refresh_status", site_pk, mode)
                        slot.unlink_url = connect_url("unlink", site_pk, mode)
                slots.append(slot)
            return slots

        def get_context_data(self, parent_context=None):
            context = super().get_context_data(parent_context)
            context["site"] = self.site
            context["slots"] = self.slots()
            context["can_connect"] = user_can_connect(self.request.user, self.site)
            return context
