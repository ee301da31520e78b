"""Internals of the Stripe emulator; the public entry point is ``..stripe_emulator``.

``params`` (wire format and validation against the SDK's types), ``core`` (state and
behaviour), ``delivery`` (signed webhooks with retries), ``server`` (HTTP routing),
``pages`` (hosted onboarding and Checkout pages), ``money`` (currency decimals and
limits), ``errors``.
"""
