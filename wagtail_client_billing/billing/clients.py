"""The client directory's domain: find or add a client by address, merge two, reuse a
client's Stripe customer per connected account, export what is held about a client, and
erase their personal data while keeping the financial records.

Views, the billing request form, Checkout and the ``client_billing_erase_client``
command call these functions; who may see a client is :func:`..scope.clients_for_user`'s
question, asked by the callers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext as _
from wagtail.log_actions import log

from ..models import (
    LIVE_SUBSCRIPTION_STATES,
    Client,
    ClientBillingLogEntry,
    ClientStripeCustomer,
    Invoice,
    InvoiceStatus,
    Refund,
    WebhookEvent,
)
from ..scope import invoices_for_user

MERGED_ACTION = "wagtail_client_billing.client_merged"
EXPORTED_ACTION = "wagtail_client_billing.client_exported"
ERASED_ACTION = "wagtail_client_billing.client_erased"

#: What an erased client's and invoices' personal text fields become.
ERASED_NAME = "[erased]"
#: The domain of an erased client's placeholder address (``.invalid`` never delivers).
ERASED_DOMAIN = "erased.invalid"


class NotAllowed(Exception):
    """What was asked cannot be done to this client; ``str()`` tells the editor why."""


# --- find or add ---------------------------------------------------------------------------


def find_by_email(email: str) -> Client | None:
    """The client whose billing address is ``email`` in any letter case; else the client
    of the latest invoice sent to that address (a merged client's old address finds the
    client it was merged into); else None. Installation-wide: the caller scopes."""
    address = (email or "").strip().lower()
    if not address:
        return None
    client = Client.objects.alias(key=Lower("email")).filter(key=address).first()
    if client is not None:
        return client
    latest = (
        Invoice.objects.alias(key=Lower("email"))
        .filter(key=address, client__isnull=False)
        .select_related("client")
        .order_by("-created_at", "-pk")
        .first()
    )
    return latest.client if latest else None


def client_for_email(email: str, *, user: Any = None) -> Client:
    """The client of ``email`` (:func:`find_by_email`), or a new one with that address.

    Safe against two requests adding the same address at once: the unique index on the
    lower-cased address lets one insert win and the other read it.
    """
    email = email.strip()
    found = find_by_email(email)
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Client.objects.create(
                email=email, created_by=user if getattr(user, "pk", None) else None
            )
    except IntegrityError:
        found = find_by_email(email)
        if found is None:
            raise
        return found


def link(invoice: Invoice, *, user: Any = None) -> None:
    """Give a new billing request its client: the one chosen, else the client of its
    address (added when there is none). An address left blank takes the client's."""
    chosen = invoice.client if invoice.client_id is not None else None
    if chosen is not None:
        if not invoice.email:
            invoice.email = chosen.email
        return
    if invoice.email:
        invoice.client = client_for_email(invoice.email, user=user)


def language(client: Client | None) -> str | None:
    """The language a client reads, or None (the site's): what a billing request's
    default language reads from its client."""
    return (client.language or None) if client is not None else None


# --- Stripe customers, per connected account ------------------------------------------------


def customer_for(invoice: Invoice) -> str:
    """The Stripe customer of the invoice's client on the invoice's connected account
    ("" when there is none yet): Checkout reuses it (``customer=``)."""
    if invoice.client_id is None or invoice.account_id is None:
        return ""
    customer_id: str | None = (
        ClientStripeCustomer.objects.filter(
            client_id=invoice.client_id, account_id=invoice.account_id
        )
        .values_list("customer_id", flat=True)
        .first()
    )
    return customer_id or ""


def remember_customer(invoice: Invoice, customer_id: str) -> None:
    """Record the Stripe customer Checkout made (or used) for the invoice's client on
    its account. The first one recorded stays; another one is left alone (merging two
    clients is where two meet, and the merge logs the one it drops)."""
    if not customer_id or invoice.client_id is None or invoice.account_id is None:
        return
    exists = ClientStripeCustomer.objects.filter(
        models.Q(client_id=invoice.client_id) | models.Q(customer_id=customer_id),
        account_id=invoice.account_id,
    ).exists()
    if exists:
        return
    try:
        with transaction.atomic():
            ClientStripeCustomer.objects.create(
                client_id=invoice.client_id, account_id=invoice.account_id, customer_id=customer_id
            )
    except IntegrityError:  # recorded by a concurrent webhook or return: the first stays
        pass


# --- merge ---------------------------------------------------------------------------------

#: The client fields a merge fills on the kept client when it has them blank.
FILLED_ON_MERGE = ("name", "company", "address", "tax_number", "language")


@dataclass
class MergeResult:
    invoices: int = 0
    customers_moved: list[dict[str, str]] = field(default_factory=list)
    customers_dropped: list[dict[str, str]] = field(default_factory=list)


def invoices_out_of_scope(user: Any, client: Client) -> bool:
    """Whether ``client`` has an invoice on a site ``user`` may not bill for."""
    mine = invoices_for_user(user, Invoice.objects.filter(client=client)).values("pk")
    return Invoice.objects.filter(client=client).exclude(pk__in=mine).exists()


def merge(keep: Client, other: Client, *, user: Any) -> MergeResult:
    """Move ``other``'s invoices and Stripe customers to ``keep`` and remove ``other``.

    Blank fields of ``keep`` take ``other``'s values, their notes and extra addresses
    are joined; where both have a Stripe customer on the same connected account,
    ``keep``'s stays and ``other``'s is recorded in the log entry (with everything
    ``other`` held), which is written on ``keep``.
    """
    if keep.pk == other.pk:
        raise NotAllowed(_("Choose another client to merge with."))
    with transaction.atomic():
        locked = {
            c.pk: c
            for c in Client.objects.select_for_update()
            .filter(pk__in=[keep.pk, other.pk])
            .order_by("pk")
        }
        if len(locked) != 2:
            raise NotAllowed(_("One of the two clients no longer exists."))
        keep, other = locked[keep.pk], locked[other.pk]
        result = MergeResult()
        result.invoices = Invoice.objects.filter(client=other).update(client=keep)
        kept_accounts = set(
            ClientStripeCustomer.objects.filter(client=keep).values_list("account_id", flat=True)
        )
        for customer in ClientStripeCustomer.objects.filter(client=other).select_related("account"):
            entry = {"account": customer.account.stripe_id, "customer": customer.customer_id}
            if customer.account_id in kept_accounts:
                result.customers_dropped.append(entry)
                customer.delete()
            else:
                ClientStripeCustomer.objects.filter(pk=customer.pk).update(client=keep)
                result.customers_moved.append(entry)
        for name in FILLED_ON_MERGE:
            if not getattr(keep, name) and getattr(other, name):
                setattr(keep, name, getattr(other, name))
        keep.notes = "\n\n".join(n for n in (keep.notes, other.notes) if n)
        extras = [*keep.cc_emails, *(a for a in other.cc_emails if a.lower() != keep.email.lower())]
        keep.extra_emails = "\n".join(dict.fromkeys(extras))
        keep.save()
        merged = export_fields(other)
        ClientBillingLogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Client), object_id=str(other.pk)
        ).update(object_id=str(keep.pk))  # its history goes with it
        other.delete()
        log(
            instance=keep,
            action=MERGED_ACTION,
            user=user,
            data={
                "merged": merged,
                "invoices": result.invoices,
                "customers_moved": result.customers_moved,
                "customers_dropped": result.customers_dropped,
            },
        )
    return result


# --- export --------------------------------------------------------------------------------


def _value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row(obj: models.Model, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for f in obj._meta.concrete_fields:
        if f.name in exclude:
            continue
        row[f.attname if f.is_relation else f.name] = _value(getattr(obj, f.attname))
    return row


#: Not exported: the payment link's secret (a capability, not data about the client).
INVOICE_NOT_EXPORTED = ("token", "checkout_session_url")


def export_fields(client: Client) -> dict[str, Any]:
    return _row(client, exclude=("created_by",))


def _log_rows(model: type[models.Model], ids: list[str]) -> list[dict[str, Any]]:
    entries = ClientBillingLogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(model), object_id__in=ids
    ).order_by("timestamp", "pk")
    return [
        {
            "object_id": e.object_id,
            "action": e.action,
            "label": e.label,
            "timestamp": _value(e.timestamp),
            "data": e.data,
        }
        for e in entries
    ]


def export(client: Client, *, user: Any) -> dict[str, Any]:
    """Everything held about ``client`` that ``user`` may see, as JSON-ready data: the
    client, their addresses and Stripe customers, their invoices (of the sites the user
    may bill for) with lines, payments, refunds, disputes, renewals, failed renewals,
    the webhook events about them, and the log entries of the client and the invoices.
    The export is logged."""
    invoices = list(
        invoices_for_user(user, Invoice.objects.filter(client=client))
        .order_by("created_at", "pk")
        .prefetch_related(
            "lines", "payments", "refunds", "disputes", "renewals", "renewal_failures_set"
        )
        .select_related("document")
    )
    ids = [invoice.pk for invoice in invoices]
    events: dict[int, list[dict[str, Any]]] = {}
    for event in WebhookEvent.objects.filter(invoice_id__in=ids).order_by("received_at", "pk"):
        events.setdefault(event.invoice_id or 0, []).append(
            _row(event, exclude=("traceback", "error"))
        )
    data = {
        "exported_at": _value(timezone.now()),
        "client": {
            **export_fields(client),
            "emails": client.all_emails,
            "stripe_customers": [
                {
                    "account": c.account.stripe_id,
                    "customer": c.customer_id,
                    "created_at": _value(c.created_at),
                }
                for c in client.stripe_customers.select_related("account").order_by("pk")
            ],
        },
        "invoices": [
            {
                **_row(invoice, exclude=INVOICE_NOT_EXPORTED),
                "lines": [_row(r) for r in invoice.lines.all()],
                "payments": [_row(r) for r in invoice.payments.all()],
                "refunds": [_row(r) for r in invoice.refunds.all()],
                "disputes": [_row(r) for r in invoice.disputes.all()],
                "renewals": [_row(r) for r in invoice.renewals.all()],
                "renewal_failures": [_row(r) for r in invoice.renewal_failures_set.all()],
                "webhook_events": events.get(invoice.pk, []),
                "document": _document(invoice),
            }
            for invoice in invoices
        ],
        "log": {
            "client": _log_rows(Client, [str(client.pk)]),
            "invoices": _log_rows(Invoice, [str(pk) for pk in ids]),
        },
    }
    log(instance=client, action=EXPORTED_ACTION, user=user, data={"invoices": len(ids)})
    return data


def _document(invoice: Invoice) -> dict[str, Any] | None:
    """The invoice's issued document: the seller as copied when it was sent, and the
    stored PDF's name and language (the file itself is downloaded from the invoice)."""
    document = getattr(invoice, "document", None)
    if document is None:
        return None
    return {
        "seller": document.seller,
        "pdf": document.pdf.name if document.pdf else "",
        "pdf_language": document.pdf_language,
        "pdf_created_at": _value(document.pdf_created_at),
    }


def export_json(client: Client, *, user: Any) -> str:
    return json.dumps(export(client, user=user), cls=DjangoJSONEncoder, indent=2)


# --- erasure -------------------------------------------------------------------------------

#: Keys of stored Stripe payloads that hold what the client typed at Checkout.
PERSONAL_PAYLOAD_KEYS = frozenset(
    {
        "customer_email",
        "customer_details",
        "customer_name",
        "customer_address",
        "customer_phone",
        "customer_shipping",
        "billing_details",
        "shipping",
        "shipping_details",
        "receipt_email",
        "email",
        "name",
        "phone",
        "address",
    }
)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (None if k in PERSONAL_PAYLOAD_KEYS and v not in (None, "", [], {}) else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def erased_email(client: Client) -> str:
    return f"client-{client.pk}@{ERASED_DOMAIN}"


#: An invoice in one of these statuses may still email the client or take money.
OPEN_STATUSES = (InvoiceStatus.DRAFT, InvoiceStatus.PENDING, InvoiceStatus.PROCESSING)


def erasure_refusal(client: Client) -> str:
    """Why ``client`` cannot be erased now, or "": an open request would still be sent or
    paid to an address that no longer exists, and a live subscription still renews."""
    if client.erased_at:
        return _("This client's personal data has been erased already.")
    invoices = Invoice.objects.filter(client=client)
    if invoices.filter(status__in=OPEN_STATUSES).exists():
        return _(
            "The client has drafts or billing requests that are pending or being paid: "
            "delete them (or wait for the payment) before erasing."
        )
    live = invoices.exclude(subscription_id="").filter(
        subscription_status__in=LIVE_SUBSCRIPTION_STATES
    )
    if live.exists():
        return _("The client has a subscription that still renews: cancel it before erasing.")
    return ""


def erase(client: Client, *, user: Any = None) -> dict[str, int]:
    """Remove ``client``'s personal data and keep the financial records.

    The client's name, addresses, tax number, language and notes, each invoice's
    address and internal note, refund notes, the addresses in the log entries' data and
    what the client typed at Checkout in the stored webhook payloads are replaced by
    placeholders or emptied. Numbers, amounts, currencies, dates, tax, descriptions and
    lines, statuses and Stripe ids stay (see ``docs/clients.md``). Logged on the client.
    """
    with transaction.atomic():
        client = Client.objects.select_for_update().get(pk=client.pk)
        refusal = erasure_refusal(client)
        if refusal:
            raise NotAllowed(refusal)
        placeholder = erased_email(client)
        invoice_ids = list(Invoice.objects.filter(client=client).values_list("pk", flat=True))
        Invoice.objects.filter(pk__in=invoice_ids).update(
            email=placeholder, note="", email_last_error=""
        )
        Refund.objects.filter(invoice_id__in=invoice_ids).update(note="")
        events = 0
        for event in WebhookEvent.objects.filter(invoice_id__in=invoice_ids).only("pk", "payload"):
            scrubbed = _scrub(event.payload)
            if scrubbed != event.payload:
                WebhookEvent.objects.filter(pk=event.pk).update(payload=scrubbed)
                events += 1
        entries = 0
        for model, ids in ((Invoice, invoice_ids), (Client, [client.pk])):
            qs = ClientBillingLogEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(model),
                object_id__in=[str(pk) for pk in ids],
            )
            for entry in qs.only("pk", "data", "label"):
                data = _scrub(entry.data) if isinstance(entry.data, dict) else entry.data
                label = ERASED_NAME if model is Client else entry.label
                if data != entry.data or label != entry.label:
                    ClientBillingLogEntry.objects.filter(pk=entry.pk).update(data=data, label=label)
                    entries += 1
        client.name = ERASED_NAME
        client.company = ""
        client.email = placeholder
        client.extra_emails = ""
        client.address = ""
        client.tax_number = ""
        client.language = ""
        client.notes = ""
        client.erased_at = timezone.now()
        client.save()
        summary = {"invoices": len(invoice_ids), "webhook_events": events, "log_entries": entries}
        log(instance=client, action=ERASED_ACTION, user=user, data=summary)
    return summary
