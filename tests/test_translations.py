"""The shipped catalogues translate everything a client reads.

Client-facing text is every message of the templates under the client-facing template
directories (:data:`CLIENT_TEMPLATE_DIRS`: any template added there is covered without
touching this file) and every message of the package's Python code marked with the
translator comment ``# Translators: client-facing.`` on the line before it. Each must
have a non-empty, non-fuzzy translation in each catalogue of :data:`CLIENT_LANGUAGES`,
and the compiled ``.mo`` files must say what the ``.po`` files say.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import read_po
from django.utils.translation.template import templatize

PACKAGE = Path(__file__).resolve().parent.parent / "wagtail_client_billing"
TEMPLATES = PACKAGE / "templates" / "wagtail_client_billing"
LOCALE = PACKAGE / "locale"

#: The languages whose catalogues must cover every client-facing message.
CLIENT_LANGUAGES = ("de", "fr", "es", "nl", "pt_BR")

#: Template directories whose every file a client (or, for the agency's notices in
#: ``emails``, a billing contact) reads: the emails, the client's pages, the PDF
#: documents and the client portal. Directories that do not exist yet are skipped.
CLIENT_TEMPLATE_DIRS = ("emails", "public", "documents", "portal")

#: The translator comment that marks a client-facing message in Python code.
CLIENT_MARKER = "client-facing"

#: Django's gettext functions and where their message (and context) arguments are.
KEYWORDS = {
    "_": None,
    "gettext": None,
    "gettext_lazy": None,
    "gettext_noop": None,
    "ngettext": (1, 2),
    "ngettext_lazy": (1, 2),
    "pgettext": ((1, "c"), 2),
    "pgettext_lazy": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3),
    "npgettext_lazy": ((1, "c"), 2, 3),
}

Message = tuple[str | None, str | tuple[str, ...]]  # (context, msgid or (singular, plural))


def _messages(source: str, *, marked_only: bool) -> Iterator[tuple[Message, int]]:
    found = extract(
        "python",
        io.BytesIO(source.encode()),
        keywords=KEYWORDS,
        comment_tags=["Translators:"],
        options={"encoding": "utf-8"},
    )
    for lineno, message, comments, context in found:
        if marked_only and not any(CLIENT_MARKER in comment for comment in comments):
            continue
        yield (context, message), lineno


def client_template_files() -> list[Path]:
    files = []
    for name in CLIENT_TEMPLATE_DIRS:
        directory = TEMPLATES / name
        if directory.is_dir():
            files.extend(sorted(p for p in directory.rglob("*") if p.is_file()))
    return files


def client_messages() -> dict[Message, str]:
    """Every client-facing message and where it is (``path:line``)."""
    found: dict[Message, str] = {}
    for path in client_template_files():
        source = templatize(path.read_text(encoding="utf-8"), origin=str(path))
        for message, lineno in _messages(source, marked_only=False):
            found.setdefault(message, f"{path.relative_to(PACKAGE)}:{lineno}")
    for path in sorted(PACKAGE.rglob("*.py")):
        if {"testing", "migrations"} & set(path.relative_to(PACKAGE).parts):
            continue
        for message, lineno in _messages(path.read_text(encoding="utf-8"), marked_only=True):
            found.setdefault(message, f"{path.relative_to(PACKAGE)}:{lineno}")
    return found


def missing_translations(messages: Iterable[Message], catalog: Catalog) -> list[str]:
    """The messages ``catalog`` lacks, leaves empty or marks fuzzy, as readable lines."""
    missing = []
    for context, msgid in messages:
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        entry = catalog.get(key, context=context)
        strings = entry.string if entry is not None else ""
        strings = strings if isinstance(strings, tuple) else (strings,)
        if entry is None:
            missing.append(f"{key!r}: not in the catalogue")
        elif entry.fuzzy:
            missing.append(f"{key!r}: fuzzy")
        elif not all(strings):
            missing.append(f"{key!r}: not translated")
    return missing


def read_catalog(language: str) -> Catalog:
    with open(LOCALE / language / "LC_MESSAGES" / "django.po", "rb") as po:
        return read_po(po, locale=language)


def test_client_facing_messages_are_found():
    """The extraction sees the templates and the marked Python strings (else the
    completeness test below would pass on nothing)."""
    messages = client_messages()
    ids = {msgid for _context, msgid in messages}
    assert "Hello," in ids  # emails/
    assert "This payment link has expired" in ids  # public/
    assert "then every month until cancelled" in ids  # emails.py, marked
    assert "Invoice %(number)s from %(site)s" in ids  # gateway.py, Checkout's lines
    assert "Subtotal" in ids  # models.py, the figures
    assert "Invoice %(number)s from %(site_name)s" in ids  # a subject
    # Unmarked Python strings (the admin's) are not client-facing.
    assert "Billing request %(number)s updated." not in ids
    assert len(messages) > 100


@pytest.mark.parametrize("language", CLIENT_LANGUAGES)
def test_every_client_facing_message_is_translated(language):
    missing = missing_translations(client_messages(), read_catalog(language))
    assert not missing, f"{language}: {len(missing)} client-facing messages untranslated:\n" + (
        "\n".join(missing)
    )


def test_missing_and_fuzzy_translations_are_named():
    """The checker itself: a message absent, empty or fuzzy in a catalogue is reported."""
    catalog = Catalog(locale="de")
    catalog.add("Hello,", "Hallo,")
    catalog.add("Paid", "")
    catalog.add("Total", "Gesamt", flags=["fuzzy"])
    catalog.add(("%(n)s payment", "%(n)s payments"), ("%(n)s Zahlung", ""))
    messages: list[Message] = [
        (None, "Hello,"),
        (None, "Paid"),
        (None, "Total"),
        (None, "Nowhere"),
        (None, ("%(n)s payment", "%(n)s payments")),
    ]
    assert missing_translations(messages, catalog) == [
        "'Paid': not translated",
        "'Total': fuzzy",
        "'Nowhere': not in the catalogue",
        "'%(n)s payment': not translated",
    ]


@pytest.mark.parametrize("language", CLIENT_LANGUAGES)
def test_compiled_catalogue_matches_its_source(language):
    """``make messages`` compiled the ``.po``: the ``.mo`` Django reads says the same."""
    catalog = read_catalog(language)
    with open(LOCALE / language / "LC_MESSAGES" / "django.mo", "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    stale = []
    for entry in catalog:
        if not entry.id or entry.fuzzy or not entry.string or entry.pluralizable:
            continue
        key = f"{entry.context}\x04{entry.id}" if entry.context else entry.id
        if compiled._catalog.get(key) != entry.string:  # type: ignore[attr-defined]
            stale.append(entry.id)
    assert not stale, f"{language}: run `make messages`; the .mo lacks {stale[:5]}"
