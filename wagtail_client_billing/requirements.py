"""Stripe's account requirement codes (``business_profile.mcc``, ``tos_acceptance.ip``) and
disabled reasons as text an editor reads.

Stripe names what it still needs by the API field that would carry it
(``requirements.currently_due``, ``requirements.past_due``); an editor who fills these
in on Stripe's onboarding page knows them as "Business category" or "Bank account". Codes
this table does not know are spelled out from the code itself (``individual.dob.day``:
"Individual: date of birth, day"), so a new code Stripe adds still reads as words.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

#: A whole code, or the first part of one, and what it asks for.
LABELS = {
    "business_profile.mcc": _("Business category (merchant category code)"),
    "business_profile.url": _("Business website"),
    "business_profile.product_description": _("Description of the products or services"),
    "business_profile.support_phone": _("Customer support phone number"),
    "business_profile.name": _("Business name shown to customers"),
    "business_type": _("Type of business"),
    "external_account": _("Bank account or debit card for payouts"),
    "tos_acceptance.date": _("Acceptance of Stripe's terms of service"),
    "tos_acceptance.ip": _("Acceptance of Stripe's terms of service"),
    "settings.payments.statement_descriptor": _("Statement descriptor"),
    "company.name": _("Company name"),
    "company.tax_id": _("Company tax ID"),
    "company.phone": _("Company phone number"),
    "company.owners_provided": _("Confirmation that all owners are listed"),
    "company.directors_provided": _("Confirmation that all directors are listed"),
    "company.executives_provided": _("Confirmation that all executives are listed"),
    "company.verification.document": _("Company verification document"),
    "company.address": _("Company address"),
    "individual.first_name": _("First name"),
    "individual.last_name": _("Last name"),
    "individual.email": _("Email address"),
    "individual.phone": _("Phone number"),
    "individual.dob": _("Date of birth"),
    "individual.address": _("Home address"),
    "individual.id_number": _("ID number"),
    "individual.ssn_last_4": _("Last 4 digits of the Social Security number"),
    "individual.verification.document": _("Identity document"),
    "individual.verification.additional_document": _("Additional identity document"),
}

#: Whose details a code is about, for codes not in :data:`LABELS`.
SUBJECTS = {
    "individual": _("Account holder"),
    "company": _("Company"),
    "representative": _("Representative"),
    "owners": _("Owners"),
    "directors": _("Directors"),
    "executives": _("Executives"),
    "business_profile": _("Business profile"),
    "settings": _("Settings"),
}

DISABLED_REASONS = {
    "requirements.past_due": _("information Stripe asked for was not given in time"),
    "requirements.pending_verification": _("Stripe is verifying the information given"),
    "action_required.requested_capabilities": _("a capability needs to be requested"),
    "under_review": _("Stripe is reviewing the account"),
    "listed": _("the account is on a list Stripe checks and is being reviewed"),
    "platform_paused": _("payouts are paused by the platform"),
    "rejected.fraud": _("rejected by Stripe (suspected fraud)"),
    "rejected.terms_of_service": _("rejected by Stripe (terms of service)"),
    "rejected.listed": _("rejected by Stripe (listed)"),
    "rejected.other": _("rejected by Stripe"),
    "other": _("a reason Stripe did not name"),
}


def _words(part: str) -> str:
    return part.replace("_", " ").replace("dob", "date of birth")


def requirement_label(code: str) -> str:
    """What ``code`` asks for, in words."""
    for length in range(code.count(".") + 1, 0, -1):
        prefix = ".".join(code.split(".")[:length])
        if prefix in LABELS:
            return str(LABELS[prefix])
    head, _dot, rest = code.partition(".")
    if head.startswith("person_"):
        subject: str = str(_("A person on the account"))
    else:
        subject = str(SUBJECTS.get(head, _words(head).capitalize()))
    if not rest:
        return subject
    return f"{subject}: {', '.join(_words(part) for part in rest.split('.'))}"


def requirement_labels(codes: list[str]) -> list[tuple[str, str]]:
    """``(label, code)`` per code, each label once (Stripe asks for some things as two
    fields, such as the terms of service's date and IP address)."""
    seen: set[str] = set()
    labels: list[tuple[str, str]] = []
    for code in codes:
        label = requirement_label(code)
        if label not in seen:
            seen.add(label)
            labels.append((label, code))
    return labels


def disabled_reason_label(reason: str) -> str:
    """Stripe's ``requirements.disabled_reason`` in words (unknown ones as given)."""
    return str(DISABLED_REASONS.get(reason, reason.replace("_", " ").replace(".", ": ")))
