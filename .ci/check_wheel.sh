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
               'static/wagtail_client_billing/' 'locale/' 'locale/de/LC_MESSAGES/django.mo' \
               'locale/pt_BR/LC_MESSAGES/django.mo' 'migrations/0001_initial.py'; do
    grep -q "wagtail_client_billing/$pattern" <<<"$wheel_files" \
        || { echo "wheel lacks $pattern"; exit 1; }
    grep -q "wagtail_client_billing/$pattern" <<<"$sdist_files" \
        || { echo "sdist lacks $pattern"; exit 1; }
done
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/pip" install -q "$wheel" dj-database-url
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
