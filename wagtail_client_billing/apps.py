from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WagtailClientBillingAppConfig(AppConfig):
    name = "wagtail_client_billing"
    label = "wagtail_client_billing"
    verbose_name = _("Client billing")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
