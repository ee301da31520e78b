"""Django settings for the benchmarks: the test suite's apps, a file database, Redis.

``BENCH_DATABASE_URL`` picks the database (the runner sets it: a SQLite file under /tmp,
or a ``wcb_bench_<run>`` database on the server of ``DATABASE_URL``). Connections persist
(``CONN_MAX_AGE``) as they would in production, for the app's views and the baselines
alike. SQLite runs in WAL mode with ``IMMEDIATE`` transactions, the configuration a
site serving concurrent requests from SQLite needs; without it concurrent writers get
"database is locked".
"""

import os

import dj_database_url

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS as _TEST_APPS
from tests.settings import WAGTAIL_CLIENT_BILLING as _TEST_BILLING

INSTALLED_APPS = [*_TEST_APPS, "benchmarks.apps.BenchmarksConfig"]

DEBUG = False
ROOT_URLCONF = "benchmarks.urls"
WSGI_APPLICATION = "benchmarks.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("BENCH_DATABASE_URL", "sqlite:////tmp/wcb_bench.sqlite3"),
        conn_max_age=600,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

WAGTAIL_CLIENT_BILLING = {
    **_TEST_BILLING,
    # The runner starts the Stripe emulator and checks its request log stays empty.
    "STRIPE_API_BASE": os.environ.get("BENCH_STRIPE_API_BASE", "http://127.0.0.1:9"),
}

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

Q_CLUSTER = {
    "name": f"wcb_bench_{os.environ.get('BENCH_RUN_ID', '0')}",  # a queue per run
    "workers": int(os.environ.get("BENCH_Q_WORKERS", "1")),
    "redis": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"),
    "timeout": 60,
    "retry": 120,
    "poll": 0.05,
    "catch_up": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"django_q": {"level": "ERROR"}},
}
