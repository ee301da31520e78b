"""The client's pages: payment link, Checkout return and cancel, JSON status.

(Being built: see issue 6.)"""

from django.http import Http404


def pay(request, token):
    raise Http404


checkout_return = checkout_cancel = invoice_status = pay
