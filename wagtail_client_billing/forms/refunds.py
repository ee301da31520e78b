"""The refund form: which payment, how much (in the invoice's currency), why, and a note."""

from __future__ import annotations

import re
import uuid
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import Payment, RefundReason
from ..money import format_money, to_major
from .fields import parse_money


def parse_refund_amount(raw: str, currency: str) -> int:
    """``"12.50", "USD"`` -> ``1250``, or a ``ValidationError`` the editor can act on
    (:func:`.fields.parse_money`; whether the payment has that much left is the form's)."""
    return parse_money(
        raw,
        currency,
        free=False,
        invalid=gettext("Enter the amount as a number such as 25 or 25.50 (no currency sign)."),
    )


class PaymentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Payment) -> str:
        return gettext("%(kind)s of %(date)s: %(amount)s (%(left)s left to refund)") % {
            "kind": obj.get_kind_display(),
            "date": obj.paid_at.date().isoformat(),
            "amount": obj.formatted_amount,
            "left": format_money(obj.refundable_amount, obj.currency),
        }


class RefundForm(forms.Form):
    """What to refund. ``request_key`` identifies this confirmation: submitting it twice
    (a double click, a retry after a timeout) makes one refund."""

    payment = PaymentChoiceField(queryset=Payment.objects.none(), label=_("Payment"))
    amount = forms.CharField(
        label=_("Amount to refund"),
        max_length=20,
        help_text=_("In the invoice's currency, for example 25 or 25.50."),
    )
    reason = forms.ChoiceField(
        label=_("Reason"), choices=RefundReason.choices, initial=RefundReason.REQUESTED_BY_CUSTOMER
    )
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Only editors see this; it is kept in the invoice's history."),
    )
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, payments: list[Payment], currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        field = self.fields["payment"]
        field.queryset = Payment.objects.filter(pk__in=[p.pk for p in payments])  # type: ignore[attr-defined]
        if payments:
            self.initial.setdefault("payment", payments[-1].pk)
            self.initial.setdefault(
                "amount", str(to_major(payments[-1].refundable_amount, currency))
            )
        self.initial.setdefault("request_key", uuid.uuid4().hex)
        self.fields["amount"].label = gettext("Amount to refund (%(currency)s)") % {
            "currency": currency
        }

    def clean_amount(self) -> int:
        return parse_refund_amount(self.cleaned_data.get("amount", ""), self.currency)

    def clean_request_key(self) -> str:
        key = self.cleaned_data.get("request_key", "")
        if not re.fullmatch(r"[0-9a-f]{32}", key):
            raise ValidationError(gettext("The form has expired; open it again."))
        return key

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        payment, amount = cleaned.get("payment"), cleaned.get("amount")
        if payment is not None and isinstance(amount, int) and amount > payment.refundable_amount:
            self.add_error(
                "amount",
                gettext("You can refund at most %(left)s of this payment.")
                % {"left": format_money(payment.refundable_amount, payment.currency)},
            )
        return cleaned
