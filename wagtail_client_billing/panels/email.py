"""The Email tab: default or custom SMTP, the write-only password, "Send test email".

The password and "clear" fields come from
:class:`~wagtail_client_billing.forms.settings.ClientBillingSettingsForm`; the test
button is a panel of its own that submits the settings form to the test-email view
(``formaction``), so it needs no nested form and carries the page's CSRF token.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel, FieldRowPanel, MultiFieldPanel, Panel


class SendTestEmailPanel(Panel):
    """A "Send test email" button and where the test will go."""

    class BoundPanel(Panel.BoundPanel):
        template_name = "wagtail_client_billing/admin/email/test_email_panel.html"

        def is_shown(self) -> bool:
            return bool(self.instance and self.instance.site_id)

        def get_context_data(self, parent_context=None):
            context = super().get_context_data(parent_context)
            user = getattr(self.request, "user", None)
            context.update(
                {
                    "test_email_url": reverse(
                        "wagtail_client_billing_email:send_test_email",
                        args=[self.instance.site_id],
                    ),
                    "editor_email": getattr(user, "email", "") or "",
                    "uses_custom_smtp": self.instance.use_custom_smtp,
                }
            )
            return context


def email_panels() -> list:
    return [
        MultiFieldPanel(
            [
                FieldPanel("use_custom_smtp"),
                FieldRowPanel([FieldPanel("smtp_host"), FieldPanel("smtp_port")]),
                FieldRowPanel([FieldPanel("smtp_security"), FieldPanel("smtp_timeout")]),
                FieldPanel("smtp_username"),
                FieldPanel("smtp_password"),
                FieldPanel("clear_smtp_password"),
            ],
            heading=_("SMTP server"),
        ),
        MultiFieldPanel(
            [FieldPanel("from_email"), FieldPanel("reply_to")],
            heading=_("Sender"),
        ),
        SendTestEmailPanel(heading=_("Test email")),
    ]
