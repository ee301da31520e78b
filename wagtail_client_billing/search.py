"""The invoice listing's search: what a term finds, through an index where it can."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from .models import Invoice

#: A whole invoice number as :meth:`.Invoice.format_number` writes it (any letter case).
INVOICE_NUMBER = re.compile(r"INV-\d{6,}", re.IGNORECASE)
#: What the listing's search looks in when the term is neither an email nor a number.
SEARCH_FIELDS = ("email", "number", "description")


def _is_email(term: str) -> bool:
    try:
        validate_email(term)
    except ValidationError:
        return False
    return True


def search_invoices(queryset: QuerySet[Invoice], term: str) -> QuerySet[Invoice]:
    """``queryset`` narrowed to the invoices the listing's search ``term`` finds.

    A whole email address finds that client's invoices (in any letter case) and a whole
    invoice number finds that number on every site: exact matches, served by B-tree
    indexes, so the search costs the same whatever the table's size. Any other term is a
    case-insensitive substring of the email, number or description: PostgreSQL serves it
    from the trigram indexes (migration 0002), other databases read the table.
    """
    term = term.strip()
    if not term:
        return queryset
    if _is_email(term):
        return queryset.alias(email_ci=Lower("email")).filter(email_ci=term.lower())
    if INVOICE_NUMBER.fullmatch(term):
        return queryset.filter(number=term.upper())
    query = Q()
    for field in SEARCH_FIELDS:
        query |= Q(**{f"{field}__icontains": term})
    return queryset.filter(query)
