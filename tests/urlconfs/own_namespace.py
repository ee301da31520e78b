"""The app's URLs under another prefix and an instance namespace of the site's own."""

from django.urls import include, path
from wagtail import urls as wagtail_urls

urlpatterns = [
    path("payments/", include("wagtail_client_billing.urls", namespace="payments")),
    path("", include(wagtail_urls)),
]
