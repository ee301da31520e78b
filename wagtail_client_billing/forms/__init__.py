"""Forms, one module per screen: ``invoices`` (billing requests), ``connect`` (Stripe
accounts), ``settings`` (the Client Billing settings form, SMTP password)."""
