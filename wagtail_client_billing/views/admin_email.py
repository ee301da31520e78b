"""Admin: the Email tab's "Send test email" button.

The button submits the settings form here (POST, with its CSRF token). The test goes
to the editor's own address through :func:`emails.send_test_email`, which uses the
very connection invoices use (:func:`emails.mailer_for_site`), and the outcome comes
back as a message on the settings page: success, or what went wrong in words an
editor can act on (authentication failed, cannot connect, TLS failed, timed out,
recipient refused).
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from wagtail.models import Site

from .. import emails
from ..models import settings_url
from ..permissions import user_can_change_settings
from ..scope import can_use_client_billing

logger = logging.getLogger(__name__)


@require_POST
def send_test_email(request, site_id: int):
    """Send a test email for ``site_id`` to the current editor and report the outcome.

    Permission: change Client Billing settings for that site (the same as editing the
    SMTP settings it tests), and the ``client_billing_can_use`` hook.
    """
    site = get_object_or_404(Site, pk=site_id)
    if not (user_can_change_settings(request.user, site) and can_use_client_billing(request, site)):
        raise PermissionDenied
    back = redirect(settings_url(site, "email"))

    to = (request.user.email or "").strip()
    if not to:
        messages.error(
            request,
            _(
                "Your account has no email address, so the test has nowhere to go. "
                "Add one in your account settings."
            ),
        )
        return back

    result = emails.send_test_email(site, to)
    if result.error is not None:
        # The error's words never include the password; that is all the log gets.
        logger.info(
            "Test email for site %s failed (%s): %s",
            site.pk,
            result.error.kind,
            result.error.message,
        )
        messages.error(
            request,
            _("The test email could not be sent. %(reason)s") % {"reason": result.error.message},
        )
        return back

    messages.success(
        request,
        _("Test email sent to %(address)s through %(connection)s. Check your inbox.")
        % {"address": to, "connection": result.connection},
    )
    return back


urlpatterns = [
    path("test/<int:site_id>/", send_test_email, name="send_test_email"),
]
