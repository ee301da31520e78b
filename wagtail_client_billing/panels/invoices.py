"""The Invoices tab: this site's billing requests and "+ Add billing request". (Issue 5.)"""

from wagtail.admin.panels import Panel


class SiteInvoicesPanel(Panel):
    pass
