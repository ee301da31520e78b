from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WagtailClientBillingAppConfig(AppConfig):
    name = "wagtail_client_billing"
    label = "wagtail_client_billing"
    verbose_name = _("Client billing")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the app's system checks and permission policies and connect its
        signal receivers.

        Here rather than where they are defined, so that importing a module registers
        nothing (Wagtail hooks are in ``wagtail_hooks.py``).
        """
        from django.core.checks import register
        from django.core.signals import got_request_exception, setting_changed

        from . import checks, conf, gateway, rollup
        from .compat import register_permission_policy
        from .forms.settings import hide_password_from_error_reports
        from .models import WebhookEvent
        from .permissions import webhook_event_permission_policy

        for check, tags in checks.CHECKS:
            register(check, *tags)
        setting_changed.connect(
            conf.reload_on_setting_changed, dispatch_uid="wagtail_client_billing.conf"
        )
        setting_changed.connect(
            gateway.reset_clients_on_setting_changed, dispatch_uid="wagtail_client_billing.gateway"
        )
        got_request_exception.connect(
            hide_password_from_error_reports, dispatch_uid="wagtail_client_billing.smtp_password"
        )
        register_permission_policy(WebhookEvent, webhook_event_permission_policy())
        rollup.connect()
