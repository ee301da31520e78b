"""An SMTP sink that behaves like a server across a network: STARTTLS, and every reply
sent ``--delay`` seconds after the command (20 ms by default).

``python -m benchmarks.smtp_sink --port N --cert C --key K [--delay 0.02]`` prints
``ready`` once it listens, and on SIGTERM the number of messages it accepted. It runs
in a process of its own, so its TLS and event loop do not share a GIL with the senders.
A multi-line reply (EHLO's) is delayed once, before its last line: one round trip.

:func:`self_signed` writes the certificate (for ``127.0.0.1`` and ``localhost``) that
the benchmark's client trusts through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import re
import signal
import ssl
import sys
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

#: The default delay before each reply: a server tens of milliseconds away.
DEFAULT_DELAY = 0.02

#: ``<local@domain> params``: the form smtplib sends MAIL FROM and RCPT TO in.
_PLAIN_ADDRESS = re.compile(r"<([!#-'*+\-/-9=?A-Z^-~.]{1,64}@[-A-Za-z0-9.]{1,255})>(.*)")


class DelayedSMTP(SMTP):
    delay = DEFAULT_DELAY

    async def push(self, status: AnyStr) -> None:
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        if len(text) < 4 or text[3] != "-":  # the last (or only) line of a reply
            await asyncio.sleep(self.delay)
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """A plain ``<local@domain>`` read with one regular expression; anything else
        goes through aiosmtpd's own parser (the email package's header parser, about a
        fifth of this process's CPU per message)."""
        if match := _PLAIN_ADDRESS.fullmatch(arg.strip()):
            return match[1], match[2].strip()
        return super()._getaddr(arg)

    async def smtp_DATA(self, arg: str) -> None:
        """The message read in chunks up to the end-of-data line, not line by line.

        aiosmtpd reads DATA a line at a time (an ``await`` and a few list operations for
        each of a message's lines, 130 or so for a billing request with its PDF). A
        remote server spends that CPU on its own machine; here it would take it from the
        senders' two cores. The sink does not offer PIPELINING, so a client waits for the
        reply after the end-of-data line and that line ends what has been read.
        Anything but a well-formed DATA is left to aiosmtpd's own replies.
        """
        envelope, session = self.envelope, self.session
        if arg or not (envelope and envelope.rcpt_tos and session and session.host_name):
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = bytearray()
        while not (data.endswith(b"\r\n.\r\n") or data == b".\r\n"):
            chunk = await self._reader.read(1 << 16)
            if not chunk:  # the client went away mid-message
                return
            data += chunk
        # Undo dot-stuffing (RFC 5321, 4.5.2) and drop the end-of-data line.
        content = (b"\r\n" + bytes(data[:-3])).replace(b"\r\n.", b"\r\n")[2:]
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)


class Counter:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 Message accepted"


class DelayedController(Controller):
    def __init__(self, handler: Any, delay: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.delay = delay

    def factory(self) -> SMTP:
        smtp = DelayedSMTP(self.handler, **self.SMTP_kwargs)
        smtp.delay = self.delay
        return smtp


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 / localhost: ``(cert, key)``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wcb bench SMTP sink")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "sink-cert.pem", folder / "sink-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.smtp_sink")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--delay", type=float, default=DEFAULT_DELAY)
    args = parser.parse_args(argv)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    handler = Counter()
    controller = DelayedController(
        handler,
        args.delay,
        hostname="127.0.0.1",
        port=args.port,
        # The name it greets with. Without one, aiosmtpd asks the resolver for this
        # machine's name (socket.getfqdn) for every connection it accepts.
        server_hostname="sink.bench.example",
        tls_context=context,
        require_starttls=True,
        ready_timeout=30,
    )
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    controller.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()
    print(handler.count, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
