"""The request form's live total: its figures as the request would be saved.

The Add billing request form posts itself here as the editor types (the
``wcb-figures`` Stimulus controller); the answer is the subtotal, discount, net, tax and
total rows that the email and the inspect page will show, computed by the same form and
the same :mod:`..pricing` module, so the live total cannot disagree with them.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from .. import pricing
from ..forms.lines import without_lines_allowed
from ..permissions import invoice_permission_policy


@require_POST
def figures_view(request: HttpRequest, form_class: Any) -> JsonResponse:
    """``{"rows": [[label, amount], ...]}``; no rows while the lines, currency, tax or
    discount do not make a request yet (the form shows its errors when sent)."""
    if not invoice_permission_policy().user_has_permission(request.user, "add"):
        raise PermissionDenied
    args, kwargs = without_lines_allowed((request.POST,), {"for_user": request.user})
    form = form_class(*args, **kwargs)
    form.is_valid()  # the lines', the tax's and the discount's checks, as on sending
    cleaned = getattr(form, "cleaned_data", {})
    currency: str = cleaned.get("currency") or ""
    lines = form.priced_lines(cleaned) if currency else None
    if not lines:
        return JsonResponse({"rows": []})
    invoice = form.instance
    invoice.currency = currency
    figures = pricing.compute(
        lines, currency, tax=invoice.pricing_tax(), discount=invoice.pricing_discount()
    )
    rows = [[str(label), value] for label, value in invoice.figure_rows_for(figures)]
    return JsonResponse({"rows": rows})
