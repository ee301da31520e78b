from wagtail.models import Page


class SimplePage(Page):
    """A page type for tests that publish or unpublish pages."""

    template = "testapp/simple_page.html"
