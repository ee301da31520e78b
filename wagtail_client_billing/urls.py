"""Public URLs. A site includes them once::

path("billing/", include("wagtail_client_billing.urls")),
"""

from django.urls import path

from .views import public, webhooks

app_name = "wagtail_client_billing"

urlpatterns = [
    path("pay/<str:token>/", public.pay, name="pay"),
    path("return/<str:token>/", public.checkout_return, name="return"),
    path("cancel/<str:token>/", public.checkout_cancel, name="cancel"),
    path("invoices/<str:token>.json", public.invoice_status, name="invoice_status"),
    path("invoices/<str:token>.pdf", public.invoice_pdf, name="invoice_pdf"),
    path("stripe/webhook/", webhooks.stripe_webhook, name="stripe_webhook"),
]
