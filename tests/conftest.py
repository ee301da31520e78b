import pytest

from tests.utils import connect, make_account, make_site

pytest_plugins = ["wagtail_client_billing.testing.pytest_plugin"]


@pytest.fixture
def site(db):
    return make_site("client-a.example")


@pytest.fixture
def account(db):
    return make_account("acct_test_a")


@pytest.fixture
def connected_site(site, account):
    connect(site, account)
    return site
