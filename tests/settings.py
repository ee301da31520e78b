"""Settings for the test suite: SQLite by default, PostgreSQL with DATABASE_URL."""

import os
import tempfile
from datetime import timedelta

import dj_database_url

SECRET_KEY = "tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "tests.testapp",
    "wagtail_client_billing",
    "django_q",
    "wagtail.contrib.settings",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": dj_database_url.config(default="sqlite://:memory:")}
if "postgres" in DATABASES["default"]["ENGINE"]:
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DB_NAME", "test_client_billing")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("ja", "Japanese")]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
# Stored PDF invoices and image renditions: a folder of this run's own.
MEDIA_ROOT = tempfile.mkdtemp(prefix="wcb-test-media-")
MEDIA_URL = "/media/"
WAGTAIL_SITE_NAME = "Tests"
WAGTAILADMIN_BASE_URL = "http://testserver"

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEFAULT_FROM_EMAIL = "Platform <billing@platform.example>"

WAGTAIL_CLIENT_BILLING = {
    "STRIPE_TEST_SECRET_KEY": "sk_test_suite",
    "STRIPE_LIVE_SECRET_KEY": "sk_live_suite",
    "STRIPE_WEBHOOK_ENDPOINTS": [
        {
            "name": "test Connect",
            "live": False,
            "connect": True,
            "secrets": ["whsec_test_suite", "whsec_test_rotated"],
        },
        {"name": "live Connect", "live": True, "connect": True, "secrets": ["whsec_live_suite"]},
    ],
    "STRIPE_API_BASE": "http://127.0.0.1:9",  # the emulator fixture overrides this
    "STRIPE_TIMEOUT": 5,
    "STRIPE_MAX_NETWORK_RETRIES": 0,
    "PAYMENT_LINK_LIFETIME": timedelta(hours=24),
    "CURRENCIES": ["USD", "EUR", "GBP", "JPY", "KWD"],
    "EMAIL_RETRY_BACKOFF": timedelta(seconds=1),
    # The suite's SMTP servers (aiosmtpd) listen on loopback, on random ports.
    "SMTP_ALLOWED_NETWORKS": ["127.0.0.0/8", "::1/128"],
    "SMTP_ALLOWED_PORTS": ["*"],
    # Tests open the public pages far more often than a person: the limit's own tests
    # lower it (tests/test_rate_limit.py).
    "PUBLIC_RATE_LIMIT": 100_000,
}
# One test process, so the process-local cache counts every request (W005 is about workers);
# the suite runs with DEBUG off against the emulator on loopback (W008 is about production).
SILENCED_SYSTEM_CHECKS = ["wagtail_client_billing.W005", "wagtail_client_billing.W008"]

Q_CLUSTER = {
    "name": "client_billing_tests",
    "sync": True,
    "orm": "default",
    "timeout": 30,
    "retry": 60,
}
if os.environ.get("Q_BROKER_URL"):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = os.environ["Q_BROKER_URL"]
