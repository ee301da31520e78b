from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WagtailClientBillingAppConfig(AppConfig):
    name = "wagtail_client_billing"
    label = "wagtail_client_billing"
    verbose_name = _("Client billing")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import got_request_exception

        from . import checks  # noqa: F401  (registers the system checks)
        from .forms.settings import hide_password_from_error_reports

        got_request_exception.connect(
            hide_password_from_error_reports, dispatch_uid="wagtail_client_billing.smtp_password"
        )
