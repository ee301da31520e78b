"""Public URLs. A site includes them once::

path("billing/", include("wagtail_client_billing.urls")),
"""

from django.urls import path

from .views import portal, public, webhooks

app_name = "wagtail_client_billing"

urlpatterns = [
    path("pay/<str:token>/", public.pay, name="pay"),
    path("return/<str:token>/", public.checkout_return, name="return"),
    path("cancel/<str:token>/", public.checkout_cancel, name="cancel"),
    path("invoices/<str:token>.json", public.invoice_status, name="invoice_status"),
    path("invoices/<str:token>.pdf", public.invoice_pdf, name="invoice_pdf"),
    path("stripe/webhook/", webhooks.stripe_webhook, name="stripe_webhook"),
    # The client portal; its cookie is scoped to "portal/", so every page of it is below.
    path("portal/", portal.home, name="portal"),
    path("portal/open/<str:token>/", portal.open_link, name="portal_open"),
    path("portal/new-link/", portal.request_link, name="portal_request_link"),
    path("portal/sign-out/", portal.sign_out, name="portal_sign_out"),
    path("portal/invoices/<int:pk>/pay/", portal.pay, name="portal_pay"),
    path("portal/invoices/<int:pk>/invoice.pdf", portal.invoice_pdf, name="portal_invoice_pdf"),
    path(
        "portal/invoices/<int:pk>/payments/<int:item>/receipt.pdf",
        portal.receipt_pdf,
        {"kind": "payment"},
        name="portal_payment_receipt_pdf",
    ),
    path(
        "portal/invoices/<int:pk>/refunds/<int:item>/receipt.pdf",
        portal.receipt_pdf,
        {"kind": "refund"},
        name="portal_refund_receipt_pdf",
    ),
    path(
        "portal/invoices/<int:pk>/subscription/",
        portal.manage_subscription,
        name="portal_manage_subscription",
    ),
]
