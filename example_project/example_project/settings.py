"""A small Wagtail site that installs wagtail_client_billing the way the README says.

Everything comes from the environment, so `make demo` and CI need no edits:
DATABASE_URL (default SQLite), Q_BROKER_URL (default the ORM broker), CACHE_URL (default
a per-process memory cache; redis://... for several workers), the Stripe keys (default:
the bundled emulator's) and the emulator's address.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "home",
    "wagtail_client_billing",
    "django_q",
    "wagtail.contrib.settings",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
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
    "django.contrib.admin",
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
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "example_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wagtail.contrib.settings.context_processors.settings",
            ],
        },
    },
]

WSGI_APPLICATION = "example_project.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Let the dev server, qcluster and the emulator's webhooks write side by side.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS: list[dict] = []

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("fr", "Français"), ("ja", "日本語")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static_collected"
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / "media"

WAGTAIL_SITE_NAME = "Client Billing demo"
WAGTAILADMIN_BASE_URL = os.environ.get("WAGTAILADMIN_BASE_URL", "http://localhost:8000")

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "1025"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Demo Agency <billing@demo.localhost>")

# The emulator's defaults; real keys come from the environment in production.
EMULATOR_URL = os.environ.get("STRIPE_API_BASE", "http://127.0.0.1:12111")
WAGTAIL_CLIENT_BILLING = {
    "STRIPE_TEST_SECRET_KEY": os.environ.get("STRIPE_TEST_SECRET_KEY", "sk_test_emulator"),
    # One test Connect endpoint: the emulator's (it signs with whsec_emulator) or, with
    # real keys, the one `stripe listen --forward-connect-to ...` prints.
    "STRIPE_WEBHOOK_ENDPOINTS": [
        {
            "name": "test Connect",
            "live": False,
            "connect": True,
            "secrets": [
                s
                for s in os.environ.get("STRIPE_TEST_WEBHOOK_SECRETS", "whsec_emulator").split(",")
                if s
            ],
        }
    ],
    "STRIPE_API_BASE": EMULATOR_URL or None,
    # The demo's SMTP sink (mailsink.py) listens on loopback, port 1025: let a site's
    # custom SMTP settings point at it. Production keeps the defaults.
    "SMTP_ALLOWED_NETWORKS": ["127.0.0.0/8", "::1/128"],
    "SMTP_ALLOWED_PORTS": ["*"],
}

# The public pages' rate limit counts in the default cache: several gunicorn workers
# share one count only through a shared cache, such as Redis (CACHE_URL=redis://...).
if os.environ.get("CACHE_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["CACHE_URL"],
        }
    }

Q_CLUSTER = {
    "name": "client_billing_demo",
    "workers": int(os.environ.get("Q_WORKERS", "2")),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "orm": "default",
}
if os.environ.get("Q_BROKER_URL"):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = os.environ["Q_BROKER_URL"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"wagtail_client_billing": {"handlers": ["console"], "level": "INFO"}},
}
