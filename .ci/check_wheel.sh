#!/usr/bin/env bash
# The wheel must carry templates, static files, locale files and migrations, and
# work in the example project from a venv that has no file of this repo on its path.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=$(ls dist/*.whl)
sdist=$(ls dist/*.tar.gz)
# Listings read once: `grep -q` closing a pipe early would fail the script under pipefail.
wheel_files=$(python3 -m zipfile -l "$wheel")
sdist_files=$(tar tzf "$sdist")
for pattern in 'templates/wagtail_client_billing/public/base.html' \
               'templates/wagtail_client_billing/emails/invoice_request.html' \
               'templates/wagtail_client_billing/documents/invoice.html' \
               'templates/wagtail_client_billing/documents/receipt.html' \
               'static/wagtail_client_billing/' 'locale/' 'locale/de/LC_MESSAGES/django.mo' \
               'locale/pt_BR/LC_MESSAGES/django.mo' 'migrations/0001_initial.py'; do
    grep -q "wagtail_client_billing/$pattern" <<<"$wheel_files" \
        || { echo "wheel lacks $pattern"; exit 1; }
    grep -q "wagtail_client_billing/$pattern" <<<"$sdist_files" \
        || { echo "sdist lacks $pattern"; exit 1; }
done
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
# pypdf only reads back the PDFs the installed wheel makes (below); the wheel needs nothing
# but pip to make them.
"$venv/bin/pip" install -q "$wheel" dj-database-url pypdf
work=$(mktemp -d)
cp -r example_project "$work/"
rm -f "$work/example_project/db.sqlite3"
cd "$work/example_project"
# Prove the installed package is used, not a checkout.
"$venv/bin/python" -c "import wagtail_client_billing, sys; assert 'site-packages' in wagtail_client_billing.__file__, wagtail_client_billing.__file__"
DATABASE_URL="sqlite:///$work/db.sqlite3" "$venv/bin/python" manage.py check --fail-level ERROR
DATABASE_URL="sqlite:///$work/db.sqlite3" "$venv/bin/python" manage.py migrate -v0
DATABASE_URL="sqlite:///$work/db.sqlite3" "$venv/bin/python" - <<'PY'
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
import django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
User = get_user_model()
User.objects.create_superuser("ci", "ci@example.com", "ci")
client = Client()
client.force_login(User.objects.get(username="ci"))
for url in ("/admin/", "/admin/client-billing/invoices/", "/admin/settings/wagtail_client_billing/clientbillingsettings/"):
    response = client.get(url, HTTP_HOST="localhost", follow=True)
    assert response.status_code == 200, (url, response.status_code)
print("installed wheel serves the admin")
from django.utils import translation
for language, expected in (("de", "Dieser Zahlungslink ist abgelaufen"), ("pt-br", "Este link de pagamento expirou")):
    with translation.override(language):
        assert translation.gettext("This payment link has expired") == expected, language
print("installed wheel carries the compiled catalogues")
PY
# A three-line taxed JPY invoice in Japanese and a EUR one in German, as PDFs, from the
# installed wheel (the Japanese font: Debian's fonts-ipafont-gothic, installed by .ci/run).
DATABASE_URL="sqlite:///$work/db.sqlite3" "$venv/bin/python" - <<'PY'
import io
import os
from datetime import date, timedelta
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
import django
from django.conf import settings

django.setup()
from django.test.utils import override_settings

override_settings(WAGTAIL_CLIENT_BILLING={
    **getattr(settings, "WAGTAIL_CLIENT_BILLING", {}),
    "PDF_FONTS": ["/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"],
}).enable()
from django.utils import timezone, translation
from pypdf import PdfReader
from wagtail.models import Page, Site

from wagtail_client_billing import documents
from wagtail_client_billing.models import ClientBillingSettings, Invoice, InvoiceLine, StripeAccount

site = Site.objects.create(hostname="wheel.example", root_page=Page.objects.get(depth=1).get_children().first(), site_name="Wheel")
config = ClientBillingSettings.for_site(site)
config.seller_name = "株式会社ホイール"
config.save()
account = StripeAccount.objects.create(stripe_id="acct_wheel", test_mode=True)
for currency, language, lines, expected in (
    ("JPY", "ja", [("デザイン", 1, 100000), ("保守", 2, 20000), ("ドメイン", 1, 1500)], ["株式会社ホイール", "デザイン", "￥141,500", "￥155,650"]),
    ("EUR", "de", [("Webdesign", 1, 100000), ("Pflege", 2, 20000), ("Domäne", 1, 1500)], ["Domäne", "1.415,00", "1.556,50"]),
):
    invoice = Invoice.objects.create(
        site=site, account=account, email="client@example.com", currency=currency,
        amount=sum(q * u for _d, q, u in lines), test_mode=True, tax_name="VAT",
        tax_percentage=Decimal("10"), success_url="https://wheel.example/ok",
        cancel_url="https://wheel.example/cancel", expires_at=timezone.now() + timedelta(days=1),
        due_date=date.today() + timedelta(days=1),
    )
    for position, (description, quantity, unit) in enumerate(lines):
        InvoiceLine.objects.create(invoice=invoice, position=position, description=description, quantity=quantity, unit_amount=unit)
    invoice.assign_number()
    invoice.save()
    with translation.override(language):
        data = documents.invoice_pdf(invoice)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    missing = [word for word in [invoice.number, *expected] if word not in text]
    assert not missing, (currency, missing, text)
    print(f"installed wheel made the {currency} invoice PDF in {language} ({len(data)} bytes)")
PY
