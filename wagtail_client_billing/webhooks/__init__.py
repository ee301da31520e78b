"""Stripe webhooks: verify the signature, store the event once, apply it through the lifecycle.

One endpoint receives everything (the platform's account events and the Connect events
of every connected account, test and live). :mod:`.intake` takes each delivery:

1. :func:`~.intake.verify` checks ``Stripe-Signature`` against the secrets of every
   configured endpoint (``STRIPE_WEBHOOK_ENDPOINTS``; several per endpoint while one is
   rolled), with the timestamp at most ``WEBHOOK_TOLERANCE`` from now either way. The
   event's ``livemode`` decides the mode, and the endpoint that signed it must be one
   Stripe sends such events to: a live Connect endpoint gets connected accounts' test
   events too, a test endpoint never gets live ones. Nothing is stored before this
   passes, so an unsigned request cannot fill the table.
2. :func:`~.intake.receive` keeps the delivery: one ``INSERT`` of its body into
   :class:`~.models.WebhookDelivery`, a table with no index but its primary key, and
   hands it to the task queue in a batch (:func:`~.intake.queue_delivery`). The view
   answers 200 at once: Stripe wants a quick answer, and a burst of events (a sweep of
   renewals, a backlog after an outage) waits in the queue instead of tying up web
   workers. The request costs one verified ``INSERT`` and its share of one enqueue.
3. In a ``qcluster`` worker, :func:`~.intake.admit` stores each delivery as a
   :class:`~.models.WebhookEvent` keyed by Stripe's event id (:func:`~.intake.store`)
   and deletes it, in one transaction. The unique constraint, not a read-then-write,
   decides whether it is new, so two deliveries of one event (a redelivery, or a test
   event delivered to both the live and the test Connect endpoint) are applied once.
   Deciding it here and not in the view keeps the unique index's cost out of the
   request: the view's answer cannot say whether the event was new, and Stripe needs
   only the 200.
4. :func:`~.intake.process` (run by :func:`.tasks.apply_webhook_event` in a ``qcluster``
   worker) applies it in one transaction, holding the event's row lock so a concurrent
   run waits and then sees it done. It runs the event type's handler from
   :data:`~.registry.HANDLERS`, which returns what it did (:class:`~.base.Applied`).
   Applying never calls Stripe: every event the app handles carries what it needs. An
   event the app does not handle, or one for an invoice or account that is not this
   app's (another account, the other mode), is stored as *ignored* with the reason. An
   exception marks it *failed* with the error and its traceback, and the task retries it
   with backoff (``WEBHOOK_MAX_ATTEMPTS``); a redelivery of a failed event from Stripe
   queues it again, and an operator can *Reprocess* it from the admin's webhook event
   listing.

The handlers are grouped by Stripe domain: :mod:`.checkout` (Checkout Sessions, applied
through :mod:`.billing.checkout`), :mod:`.subscriptions` (a recurring invoice's
subscription and its renewals) and :mod:`.accounts` (connected accounts). Events arrive
in any order and more than once. Each handler is written so that any order of a
realistic sequence ends in the same state: paid is final in the lifecycle, a late
``async_payment_failed`` cannot un-pay, a ``completed (unpaid)`` arriving after its
``async_payment_failed`` does not put the invoice back into processing, renewals are
counted once per Stripe invoice, a subscription that ended stays ended, and an account
snapshot older than the one recorded is not applied.

The names below are this package's public entry points.
"""

from .base import Applied, Ignored
from .intake import (
    Delivery,
    InvalidWebhook,
    Receipt,
    admit,
    dispatch,
    parse_event,
    process,
    queue_delivery,
    queue_event,
    receive,
    store,
    verify,
)
from .registry import HANDLED_EVENT_TYPES, HANDLERS

__all__ = [
    "HANDLED_EVENT_TYPES",
    "HANDLERS",
    "Applied",
    "Delivery",
    "Ignored",
    "InvalidWebhook",
    "Receipt",
    "admit",
    "dispatch",
    "parse_event",
    "process",
    "queue_delivery",
    "queue_event",
    "receive",
    "store",
    "verify",
]
