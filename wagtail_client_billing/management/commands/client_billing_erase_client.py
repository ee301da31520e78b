"""``manage.py client_billing_erase_client``: erase a client's personal data, keeping the
financial records (:func:`wagtail_client_billing.billing.clients.erase`; see
``docs/clients.md`` for what is kept and why).

Names the client by id or by billing email (any letter case); erases nothing without
``--yes``, and nothing while the client has open billing requests or a subscription
that still renews. The erasure is logged on the client, without a user.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...billing import clients
from ...models import Client


class Command(BaseCommand):
    help = (
        "Erase a client's personal data (name, addresses, notes; what they typed at "
        "Checkout) and keep the financial records. Give the client's id or billing email."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("client", help="the client's id, or their billing email address")
        parser.add_argument(
            "--yes", action="store_true", help="erase (without it, only say what would be)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        named: str = options["client"].strip()
        client = (
            Client.objects.filter(pk=int(named)).first()
            if named.isdigit()
            else clients.find_by_email(named)
        )
        if client is None or (not named.isdigit() and client.email.lower() != named.lower()):
            raise CommandError(f"No client with the id or billing email {named!r}.")
        refusal = clients.erasure_refusal(client)
        if refusal:
            raise CommandError(refusal)
        if not options["yes"]:
            self.stdout.write(
                f"Would erase the personal data of client {client.pk} and their billing "
                "requests. Run again with --yes to erase."
            )
            return
        try:
            summary = clients.erase(client)
        except clients.NotAllowed as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Erased client {client.pk}: {summary['invoices']} billing requests, "
            f"{summary['webhook_events']} webhook events and {summary['log_entries']} log "
            "entries scrubbed; the financial records are kept."
        )
