"""Bill clients through Stripe Connect from the Wagtail admin."""

__version__ = "0.1.0"
