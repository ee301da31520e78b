"""The Email tab: default or custom SMTP, and "Send test email". (Issue 7.)"""

from wagtail.admin.panels import FieldPanel


def email_panels() -> list:
    return [
        FieldPanel("use_custom_smtp"),
        FieldPanel("smtp_host"),
        FieldPanel("smtp_port"),
        FieldPanel("smtp_username"),
        FieldPanel("smtp_security"),
        FieldPanel("smtp_timeout"),
        FieldPanel("from_email"),
        FieldPanel("reply_to"),
    ]
