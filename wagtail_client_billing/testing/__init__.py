"""Test tools for this app and for the sites that use it.

``wagtail_client_billing.testing.stripe_emulator`` runs an offline, stateful stand-in for
the parts of Stripe's API the app calls, with hosted onboarding and checkout pages and
signed webhook deliveries; ``wagtail_client_billing.testing.webhooks`` signs and builds
webhook events the way Stripe does.  Neither imports Django, so they work in any test
runner and in a separate process next to a development server.
"""
