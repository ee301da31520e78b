import pytest

from tests.utils import connect, make_account, make_emulated_invoice, make_invoice, make_site

pytest_plugins = ["wagtail_client_billing.testing.pytest_plugin", "tests.emulator_helpers"]


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


# --- Webhooks: the invoices the events are about -------------------------------------------------


@pytest.fixture
def invoice(connected_site, account):
    """A pending one-time test invoice with an open Checkout Session ``cs_test_a1current``."""
    return make_invoice(connected_site, account, checkout_session_id="cs_test_a1current")


@pytest.fixture
def monthly(connected_site, account):
    """A pending monthly test invoice with an open Checkout Session ``cs_test_a1sub``."""
    return make_invoice(
        connected_site, account, billing_type="monthly", checkout_session_id="cs_test_a1sub"
    )


# --- Email (issue 7) ----------------------------------------------------------------------------


@pytest.fixture
def smtp_server():
    """A plain aiosmtpd server on loopback (no TLS, no AUTH) for the test's duration."""
    from tests.utils import SMTPServer

    with SMTPServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1; see :class:`tests.utils.TLSCert`."""
    from tests.utils import TLSCert

    return TLSCert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trust_tls_cert(tls_cert, monkeypatch):
    """Make this process's TLS clients trust ``tls_cert`` (as a real CA-signed one)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert.cert_path))
    return tls_cert


# --- end Email ----------------------------------------------------------------------------------


@pytest.fixture
def emulated_invoice(stripe_emulator, settings):
    """A pending invoice on an onboarded account of the Stripe emulator."""
    invoice = make_emulated_invoice(stripe_emulator, "faults.example", email="payer@faults.example")
    settings.WAGTAIL_CLIENT_BILLING = {**settings.WAGTAIL_CLIENT_BILLING, "STRIPE_TIMEOUT": 1}
    stripe_emulator.timeout_fault_seconds = 3
    return invoice
