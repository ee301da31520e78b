"""Views: ``public`` (client pages, JSON status), ``webhooks`` (Stripe), ``admin_*`` (Wagtail admin)."""
