"""Recompute the invoice rollup (the dashboard's and reports' figures) from the invoices."""

from django.core.management.base import BaseCommand

from ...rollup import rebuild


class Command(BaseCommand):
    help = (
        "Recompute the invoice rollup from the invoices: after loading invoices with "
        "bulk_create or raw SQL, or after changing TIME_ZONE."
    )

    def handle(self, *args, **options):
        rows = rebuild()
        self.stdout.write(f"Rebuilt the invoice rollup: {rows} buckets.")
