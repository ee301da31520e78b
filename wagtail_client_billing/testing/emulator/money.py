"""Currency facts the emulator needs to behave like Stripe and show amounts like Checkout.

Kept here rather than imported from the app's ``money`` module so the emulator stays an
independent check on the app: if both read one wrong table, tests could not notice.
"""

from __future__ import annotations

from decimal import Decimal

#: Currencies Stripe charges in without a minor unit (amount 500 JPY means ¥500).
ZERO_DECIMAL = frozenset(
    [
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
        "vuv", "xaf", "xof", "xpf",
    ]
)  # fmt: skip
#: Currencies with three decimals (amount 1000 KWD means 1.000 KWD).
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])

#: Currencies Stripe accepts for card payments (presentment currencies).
SUPPORTED = frozenset(
    [
        "usd", "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam",
        "bbd", "bdt", "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn",
        "bzd", "cad", "cdf", "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk",
        "dop", "dzd", "egp", "etb", "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf",
        "gtq", "gyd", "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "isk", "jmd", "jod",
        "jpy", "kes", "kgs", "khr", "kmf", "krw", "kwd", "kyd", "kzt", "lak", "lbp", "lkr",
        "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop", "mur", "mvr", "mwk",
        "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "omr", "pab", "pen",
        "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub", "rwf", "sar", "sbd",
        "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std", "szl", "thb", "tjs", "tnd",
        "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "uyu", "uzs", "vnd", "vuv", "wst",
        "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
    ]
)  # fmt: skip

#: Stripe's minimum charge amounts, in minor units, for the currencies it documents.
MINIMUM_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50,
    "czk": 1500, "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50,
    "jpy": 50, "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200,
    "sek": 300, "sgd": 50, "thb": 1000,
}  # fmt: skip

#: The largest amount Stripe accepts for a price or charge, in minor units.
MAXIMUM_AMOUNT = 99_999_999


def exponent(currency: str) -> int:
    """Number of decimals of ``currency``'s minor unit (JPY 0, USD 2, KWD 3)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def format_amount(amount: int, currency: str) -> str:
    """``1234, "usd"`` -> ``"12.34 USD"``; ``500, "jpy"`` -> ``"500 JPY"``."""
    places = exponent(currency)
    value = Decimal(amount).scaleb(-places)
    return f"{value:,.{places}f} {currency.upper()}"
