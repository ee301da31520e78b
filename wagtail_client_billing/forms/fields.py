"""Form fields the app's forms and filters share: a web address, a site."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _
from wagtail.models import Site

from ..models import site_display_name

#: A web address a browser may be sent to.
HTTP_URL_RE = re.compile(r"^https?://", re.IGNORECASE)


class HttpURLField(forms.URLField):
    """A URL that must start with ``http://`` or ``https://``, as typed.

    Django's ``URLField`` adds a scheme to ``client.example/path`` and ``//host/path``
    and accepts ``ftp:``. These addresses are shown to people who pay (Stripe's links to
    the account's policies) or are where the client is sent after paying, so only
    absolute web addresses are accepted: never a guess, a ``javascript:`` trap or a
    download.
    """

    default_validators = [URLValidator(schemes=["http", "https"])]
    default_error_messages = {
        "scheme": _("Enter a web address starting with http:// or https://."),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("assume_scheme", "https")
        kwargs.setdefault("max_length", 2000)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        value = (value or "").strip()
        if value and not HTTP_URL_RE.match(value):
            raise ValidationError(self.error_messages["scheme"], code="scheme")
        result: str | None = super().to_python(value)
        return result or ""


class SiteChoiceField(forms.ModelChoiceField):
    """A choice of Wagtail sites, each named as everywhere else in the app."""

    def label_from_instance(self, obj: Site) -> str:
        return site_display_name(obj)
