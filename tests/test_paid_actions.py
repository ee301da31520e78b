"""Paid-invoice actions and the status-changed extension points."""

import pytest
from wagtail import hooks as wagtail_hooks
from wagtail.models import GroupPagePermission, Page, PageLogEntry

from tests.testapp.models import SimplePage
from tests.utils import make_invoice, make_user
from wagtail_client_billing import hooks, lifecycle
from wagtail_client_billing.lifecycle import Source
from wagtail_client_billing.models import ClientBillingLogEntry

pytestmark = pytest.mark.django_db


def make_page(title="Client launch", live=False):
    root = Page.get_first_root_node()
    page = root.add_child(
        instance=SimplePage(title=title, slug=title.lower().replace(" ", "-"), live=live)
    )
    page.save_revision()
    return page


def publisher(page):
    user = make_user("publisher")
    group = user.groups.get()
    for permission in ("publish_page", "change_page", "add_page"):
        GroupPagePermission.objects.create(
            group=group, page=page, permission_type=permission.split("_")[0]
        )
    return user


def test_paying_publishes_the_chosen_page_and_logs_on_both(django_capture_on_commit_callbacks):
    page = make_page()
    editor = make_user("boss", superuser=True)
    invoice = make_invoice(publish_page_when_paid=page, created_by=editor)

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_paid(invoice, source=Source.WEBHOOK)

    page.refresh_from_db()
    assert page.live
    invoice_actions = ClientBillingLogEntry.objects.filter(object_id=str(invoice.pk)).values_list(
        "action", flat=True
    )
    assert "wagtail_client_billing.page_published" in invoice_actions
    page_actions = PageLogEntry.objects.filter(page=page).values_list("action", flat=True)
    assert "wagtail_client_billing.page_published" in page_actions
    assert "wagtail.publish" in page_actions


def test_page_is_not_published_when_the_author_may_not_publish_it(
    django_capture_on_commit_callbacks,
):
    page = make_page()
    author = make_user("junior")  # admin access only, no page permissions
    invoice = make_invoice(publish_page_when_paid=page, created_by=author)

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.mark_paid(invoice, source=Source.WEBHOOK)

    page.refresh_from_db()
    assert not page.live
    assert ClientBillingLogEntry.objects.filter(
        object_id=str(invoice.pk), action="wagtail_client_billing.page_action_refused"
    ).exists()


def test_expiry_unpublishes_the_chosen_page(django_capture_on_commit_callbacks):
    page = make_page(live=True)
    author = publisher(page)
    invoice = make_invoice(unpublish_page_when_expired=page, created_by=author)

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.expire(invoice, source=Source.SWEEP)

    page.refresh_from_db()
    assert not page.live
    assert PageLogEntry.objects.filter(
        page=page, action="wagtail_client_billing.page_unpublished"
    ).exists()


def test_status_changed_hook_runs_after_commit_with_old_new_and_source(
    django_capture_on_commit_callbacks,
):
    calls = []

    def record(invoice, old, new, source):
        calls.append((invoice.number, old, new, source))

    invoice = make_invoice()
    with wagtail_hooks.register_temporarily(hooks.INVOICE_STATUS_CHANGED, record):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            lifecycle.mark_processing(invoice, source=Source.WEBHOOK)
            assert calls == []  # not before the transaction commits
        for callback in callbacks:
            callback()
    assert calls == [(invoice.number, "pending", "processing", "webhook")]


def test_a_failing_receiver_does_not_undo_the_status_change(django_capture_on_commit_callbacks):
    def explode(invoice, old, new, source):
        raise RuntimeError("receiver bug")

    invoice = make_invoice()
    with (
        wagtail_hooks.register_temporarily(hooks.INVOICE_STATUS_CHANGED, explode),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert lifecycle.mark_paid(invoice, source=Source.WEBHOOK)
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_unknown_hook_names_are_refused():
    with pytest.raises(ValueError, match="not a wagtail_client_billing hook"):
        hooks.get("client_billing_typo")
