"""The Stripe tab: connected live and test accounts, connect / continue / unlink. (Issue 4.)"""

from wagtail.admin.panels import Panel


class StripeAccountsPanel(Panel):
    pass
