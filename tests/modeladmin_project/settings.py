"""The suite's settings, plus wagtail-modeladmin and a site app that uses it."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [
    "tests.modeladmin_project",
    "wagtail_modeladmin",
    *INSTALLED_APPS,  # noqa: F405
]
