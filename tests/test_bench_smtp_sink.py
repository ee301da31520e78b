"""The email benchmark's SMTP sink (``benchmarks.smtp_sink``) stands in for a remote
server: what it accepts must be what was sent, whatever shortcuts it takes to spend
less of the machine's CPU than aiosmtpd's own line-by-line reading."""

from __future__ import annotations

import smtplib
import socket
import ssl

import pytest
from aiosmtpd import smtp as aiosmtpd_smtp

from benchmarks import smtp_sink


class Recorder:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def sink(tmp_path):
    cert, key = smtp_sink.self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    recorder = Recorder()
    controller = smtp_sink.DelayedController(
        recorder,
        0.0,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    client_context = ssl.create_default_context(cafile=str(cert))
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.starttls(context=client_context)
    yield client, recorder
    client.quit()
    controller.stop()


def test_a_message_arrives_as_it_was_written(sink):
    client, recorder = sink
    body = (
        "Subject: dots\r\n\r\n"
        ".a line that starts with a dot\r\n"
        "..two dots\r\n"
        ".\r\n"  # a line that is only a dot, inside the message
        "the last line\r\n"
    )
    client.sendmail("billing@client0.example", ["client@example.com"], body.encode())
    client.sendmail("billing@client0.example", ["client@example.com"], b"second\r\n")
    first, second = recorder.envelopes
    assert first.content == body.encode()
    assert first.mail_from == "billing@client0.example"
    assert first.rcpt_tos == ["client@example.com"]
    assert second.content == b"second\r\n"


def test_addresses_in_other_forms_go_through_aiosmtpds_parser(sink):
    client, recorder = sink
    client.sendmail('"quoted part"@example.com', ["Client <client@example.com>"], b"x\r\n")
    (envelope,) = recorder.envelopes
    assert envelope.mail_from == '"quoted part"@example.com'
    assert envelope.rcpt_tos == ["client@example.com"]


@pytest.mark.parametrize(
    "arg",
    [
        "<billing@client0.example> SIZE=9442",
        "<a.b+c_d@sub-domain.example>",
        "<x@y>",
        "<!#$%&'*+-/=?^_`{|}~@example.com>",
        '<"quoted part"@example.com>',
        "<a@[127.0.0.1]>",
        "bare@example.com",
        "<>",
    ],
)
def test_the_address_shortcut_reads_what_aiosmtpd_reads(arg):
    shortcut = smtp_sink.DelayedSMTP(Recorder())
    assert shortcut._getaddr(arg) == aiosmtpd_smtp.SMTP._getaddr(shortcut, arg)


def test_data_before_a_recipient_is_refused(sink):
    client, recorder = sink
    client.ehlo()
    assert client.mail("billing@client0.example")[0] == 250
    assert client.docmd("DATA")[0] == 503
    assert recorder.envelopes == []
