"""The Client Billing settings form. (The SMTP password field: issue 7.)"""

from wagtail.admin.forms import WagtailAdminModelForm


class ClientBillingSettingsForm(WagtailAdminModelForm):
    pass
