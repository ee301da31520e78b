"""The hosted pages a browser visits: Connect onboarding and Checkout.

On Stripe these are Stripe's own pages; the emulator serves plain, accessible HTML with
real ``<label>``s and ``<button>``s so a person clicking through the demo, or a browser
test using ``get_by_role("button", name="Pay", exact=True)``, can walk the whole flow
offline.  Every form posts back to the page it is on and answers with a ``303`` to where
Stripe would send the browser next.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from . import money
from .billing_portal import CANCELLABLE
from .core import EmulatorState
from .errors import EmulatorError

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f6f9fc; color: #1a1f36; }
main { max-width: 28rem; margin: 3rem auto; background: #fff; padding: 2rem;
       border-radius: 8px; box-shadow: 0 2px 8px rgba(0,0,0,.08); }
h1 { font-size: 1.3rem; } .amount { font-size: 2rem; font-weight: 600; margin: .5rem 0; }
.note { color: #697386; font-size: .9rem; }
label { display: block; margin-top: 1rem; font-weight: 500; }
input { width: 100%; padding: .5rem; box-sizing: border-box; }
button { display: block; width: 100%; margin-top: .75rem; padding: .7rem; font-size: 1rem;
         border-radius: 6px; border: 1px solid #635bff; background: #635bff; color: #fff; }
button.secondary { background: #fff; color: #635bff; }
[role=alert] { background: #fde8e8; color: #a01818; padding: .75rem; border-radius: 6px; }
"""


@dataclass
class PageResponse:
    """An HTML page (``status`` + ``html``) or a redirect (``303`` + ``location``)."""

    status: int
    html: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def redirect(cls, location: str) -> PageResponse:
        return cls(303, "", {"Location": location})


def _page(title: str, body: str, status: int = 200) -> PageResponse:
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · Stripe emulator</title><style>{_STYLE}</style>"
        f"</head><body><main>{body}"
        '<p class="note">Served by the offline Stripe emulator (test double).</p>'
        "</main></body></html>"
    )
    return PageResponse(status, document, {"Content-Type": "text/html; charset=utf-8"})


def _button(action: str, label: str, secondary: bool = False) -> str:
    css = ' class="secondary"' if secondary else ""
    return (
        f'<button type="submit" name="action" value="{html.escape(action)}"{css}>'
        f"{html.escape(label)}</button>"
    )


def _message(title: str, text: str, status: int = 200) -> PageResponse:
    return _page(title, f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>", status)


# -- onboarding ----------------------------------------------------------------------


def onboarding(state: EmulatorState, token: str, action: str | None) -> PageResponse:
    """``GET`` (``action=None``) shows the form; ``POST`` completes or leaves onboarding."""
    try:
        with state.lock:
            if not state.link_is_live(token):
                return PageResponse.redirect(state.use_link(token, complete=False))
            if action is None:
                link = state.account_links[token]
                account = state.accounts.get(link["_account"])
                if account is None:
                    return _message("Account not found", "This account no longer exists.", 404)
                return _onboarding_form(account, link["expires_at"])
            if action not in ("complete", "leave"):
                return _message("Unknown action", f"Unknown action {action!r}.", 400)
            return PageResponse.redirect(state.use_link(token, complete=action == "complete"))
    except EmulatorError as error:
        return _message("Link not found", error.message, error.status)


def _onboarding_form(account: dict, expires_at: int) -> PageResponse:
    profile = account["business_profile"]
    due = account["requirements"]["currently_due"]
    items = "".join(f"<li>{html.escape(r)}</li>" for r in due) or "<li>Nothing</li>"
    body = (
        "<h1>Set up payments</h1>"
        f"<p>Account <code>{html.escape(account['id'])}</code> "
        f"({'live' if account['livemode'] else 'test'} mode), "
        f"country {html.escape(account['country'])}.</p>"
        f"<p>Website: {html.escape(profile.get('url') or 'not provided')}</p>"
        f"<h2>Stripe still needs</h2><ul>{items}</ul>"
        '<form method="post">'
        '<label for="business_name">Business name</label>'
        f'<input id="business_name" name="business_name" '
        f'value="{html.escape(profile.get("name") or "Emulated Business")}">'
        f"{_button('complete', 'Complete onboarding')}"
        f"{_button('leave', 'Leave without completing', secondary=True)}"
        "</form>"
        f'<p class="note">This link expires at {expires_at} (Unix time) and works once.</p>'
    )
    return _page("Set up payments", body)


# -- checkout ------------------------------------------------------------------------


def _success_location(state: EmulatorState, session: dict) -> str:
    url = session["success_url"]
    if not url:
        return f"{state.public_url}/_hosted/checkout/{session['id']}"
    return url.replace("{CHECKOUT_SESSION_ID}", session["id"])


def checkout(state: EmulatorState, session_id: str, action: str | None) -> PageResponse:
    """The Checkout page: ``GET`` shows it, ``POST`` pays, declines or cancels."""
    try:
        with state.lock:
            session = state.session(session_id)
            if session["status"] == "expired":
                return _message("Session expired", "This Checkout Session has expired.")
            if session["status"] == "complete":
                if session["_async"] == "pending":
                    return processing(state, session_id, None)
                return _message(
                    "Already paid",
                    "This Checkout Session is already paid. You can close this page.",
                )
            if action is None:
                return _checkout_form(session)
            if action == "pay":
                state.complete_session(session_id, delayed=False)
                return PageResponse.redirect(_success_location(state, session))
            if action == "pay_delayed":
                state.complete_session(session_id, delayed=True)
                return PageResponse.redirect(
                    f"{state.public_url}/_hosted/checkout/{session_id}/processing"
                )
            if action == "decline":
                return _checkout_form(session, error="Your card was declined.")
            if action == "cancel":
                return PageResponse.redirect(
                    session["cancel_url"] or f"{state.public_url}/_hosted/checkout/{session_id}"
                )
            return _message("Unknown action", f"Unknown action {action!r}.", 400)
    except EmulatorError as error:
        return _message("Checkout Session not found", error.message, error.status)


def _checkout_form(session: dict, error: str | None = None) -> PageResponse:
    items = session["_line_items"]
    first = items[0]
    recurring = first["price"]["recurring"]
    per = ""
    if recurring:
        count = recurring["interval_count"]
        per = (
            f" per {recurring['interval']}"
            if count == 1
            else f" every {count} {recurring['interval']}s"
        )
    lines = "".join(
        f"<li>{html.escape(i['description'] or '')}"
        + (f" — {html.escape(i['_product_description'])}" if i.get("_product_description") else "")
        + f" × {i['quantity']}</li>"
        for i in items
    )
    amount = money.format_amount(session["amount_total"], session["currency"])
    alert = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    email = session["customer_email"] or ""
    body = (
        f"{alert}<h1>{html.escape(first['description'] or 'Payment')}</h1>"
        f'<p class="amount" data-testid="amount">{html.escape(amount)}{per}</p>'
        f"<p>Currency: {session['currency'].upper()}</p>"
        f"<ul>{lines}</ul>"
        f"{_totals(session)}"
        '<form method="post">'
        '<label for="email">Email</label>'
        f'<input id="email" name="email" type="email" value="{html.escape(email)}">'
        '<label for="card">Card number</label>'
        '<input id="card" name="card" inputmode="numeric" value="4242 4242 4242 4242">'
        f"{_button('pay', 'Pay')}"
        f"{_button('pay_delayed', 'Pay by bank debit (delayed)', secondary=True)}"
        f"{_button('decline', 'Decline card', secondary=True)}"
        f"{_button('cancel', 'Cancel', secondary=True)}"
        "</form>"
        f'<p class="note">{"Live" if session["livemode"] else "Test"} mode · '
        f"expires at {session['expires_at']} (Unix time)</p>"
        # Stripe renders Checkout in this language; the emulator only says which.
        f'<p class="note">Locale: <span data-testid="locale">'
        f"{html.escape(session['locale'] or 'auto')}</span></p>"
    )
    return _page(f"Pay {amount}", body, 200)


def _totals(session: dict[str, Any]) -> str:
    """Subtotal, discount and tax, as Checkout lists them above the total (when any)."""
    details = session["total_details"]
    if not (details["amount_discount"] or details["amount_tax"]):
        return ""
    currency = session["currency"]
    rows = [("Subtotal", session["amount_subtotal"])]
    if details["amount_discount"]:
        rows.append(("Discount", -details["amount_discount"]))
    if details["amount_tax"]:
        rows.append(("Tax", details["amount_tax"]))
    cells = "".join(
        f"<dt>{label}</dt><dd>{html.escape(money.format_amount(value, currency))}</dd>"
        for label, value in rows
    )
    return f'<dl data-testid="totals">{cells}</dl>'


def processing(state: EmulatorState, session_id: str, action: str | None) -> PageResponse:
    """After a delayed (bank debit) payment: settle it or make it fail, as the bank would."""
    try:
        with state.lock:
            session = state.session(session_id)
            if action is None:
                outcome = session["_async"]
                if outcome == "pending":
                    amount = money.format_amount(session["amount_total"], session["currency"])
                    body = (
                        "<h1>Payment processing</h1>"
                        f"<p>Your bank debit of {html.escape(amount)} was submitted and "
                        "has not settled yet.</p>"
                        f'<p><a href="{html.escape(_success_location(state, session))}">'
                        "Return to the merchant</a></p>"
                        '<form method="post">'
                        f"{_button('settle', 'Settle payment')}"
                        f"{_button('fail', 'Fail payment', secondary=True)}"
                        "</form>"
                    )
                    return _page("Payment processing", body)
                if outcome in ("succeeded", "failed"):
                    return _message(
                        f"Payment {outcome}",
                        f"The bank debit for this Checkout Session {outcome}.",
                    )
                return PageResponse.redirect(f"{state.public_url}/_hosted/checkout/{session_id}")
            if action not in ("settle", "fail"):
                return _message("Unknown action", f"Unknown action {action!r}.", 400)
            state.resolve_delayed(session_id, succeeded=action == "settle")
            return PageResponse.redirect(_success_location(state, session))
    except EmulatorError as error:
        return _message("Not available", error.message, error.status)


# -- the customer portal --------------------------------------------------------------


def billing_portal(
    state: EmulatorState, session_id: str, action: str | None, form: dict[str, str]
) -> PageResponse:
    """Stripe's customer portal: ``GET`` shows the card and the subscriptions; ``POST``
    updates the card (``update_card``) or cancels one (``cancel``), then goes back to the
    session's return URL."""
    try:
        if action is None:
            return _billing_portal_page(state.portal_view(session_id))
        if action == "update_card":
            return PageResponse.redirect(state.portal_update_card(session_id, form.get("card", "")))
        if action == "cancel":
            return PageResponse.redirect(
                state.portal_cancel(session_id, form.get("subscription", ""))
            )
        return _message("Unknown action", f"Unknown action {action!r}.", 400)
    except EmulatorError as error:
        return _message("Customer portal", error.message, error.status)


def _billing_portal_page(view: dict[str, Any]) -> PageResponse:
    session, customer, features = view["session"], view["customer"], view["features"]
    cancel = features["subscription_cancel"]
    rows = []
    for subscription in view["subscriptions"]:
        item = subscription["items"]["data"][0]
        price = item["price"]
        amount = money.format_amount(price["unit_amount"] * item["quantity"], price["currency"])
        interval = (price.get("recurring") or {}).get("interval", "")
        state = subscription["status"]
        if subscription["cancel_at_period_end"]:
            state = f"cancels at {subscription['cancel_at']} (Unix time)"
        button = ""
        if (
            cancel["enabled"]
            and subscription["status"] in CANCELLABLE
            and not (subscription["cancel_at_period_end"])
        ):
            label = "Cancel now" if cancel["mode"] == "immediately" else "Cancel plan"
            button = (
                '<form method="post">'
                f'<input type="hidden" name="subscription" value="{html.escape(subscription["id"])}">'
                f"{_button('cancel', label, secondary=True)}</form>"
            )
        rows.append(
            f'<li data-testid="subscription"><strong>{html.escape(amount)} per '
            f"{html.escape(interval)}</strong> — <span>{html.escape(state)}</span>{button}</li>"
        )
    card = view["card"]
    card_form = ""
    if features["payment_method_update"]["enabled"]:
        card_form = (
            '<form method="post"><label for="card">New card number</label>'
            '<input id="card" name="card" inputmode="numeric" value="4000 0566 5566 5556">'
            f"{_button('update_card', 'Update card')}</form>"
        )
    body = (
        "<h1>Manage your billing</h1>"
        f"<p>{html.escape(customer.get('email') or customer['id'])}</p>"
        f'<p data-testid="card">Card: {html.escape("•••• " + card if card else "none on file")}</p>'
        f"{card_form}"
        f"<h2>Subscriptions</h2><ul>{''.join(rows) or '<li>None</li>'}</ul>"
        f'<p><a href="{html.escape(session["return_url"])}">Return</a></p>'
        f'<p class="note">{"Live" if session["livemode"] else "Test"} mode</p>'
    )
    return _page("Customer portal", body)


def index(state: EmulatorState) -> PageResponse:
    """A landing page listing what the emulator holds, for people poking at it."""
    with state.lock:
        sessions = "".join(
            f'<li><a href="/_hosted/checkout/{html.escape(s["id"])}">{html.escape(s["id"])}</a>'
            f" — {html.escape(s['status'])}/{html.escape(s['payment_status'])}</li>"
            for s in state.checkout_sessions.values()
        )
        accounts = "".join(
            f"<li>{html.escape(a['id'])} — charges "
            f"{'enabled' if a['charges_enabled'] else 'disabled'}</li>"
            for a in state.accounts.values()
        )
    body = (
        "<h1>Stripe emulator</h1>"
        f"<h2>Accounts</h2><ul>{accounts or '<li>None yet</li>'}</ul>"
        f"<h2>Checkout Sessions</h2><ul>{sessions or '<li>None yet</li>'}</ul>"
    )
    return _page("Stripe emulator", body)
