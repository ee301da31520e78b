"""Internals of the Stripe emulator; the public entry point is ``..stripe_emulator``.

``params`` (wire format and validation against the SDK's types), ``rules`` (Stripe's
documented limits), ``store`` (the state every resource shares: object stores, clock,
ids, events), one module per Stripe resource (``accounts``, ``checkout``,
``subscriptions``, ``webhook_endpoints``), ``core`` (the state class composed of them,
and one API request: idempotency, faults, URL routing), ``delivery`` (signed webhooks
with retries), ``server`` (HTTP routing), ``pages`` (hosted onboarding and Checkout
pages), ``keys`` (API keys and restricted-key permissions), ``platform`` (the
platform's own account), ``money`` (currency decimals and limits), ``errors``.
"""
