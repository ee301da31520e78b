"""A local SMTP sink for the demo: prints each message's summary and keeps it as .eml.

python mailsink.py --port 1025 --dir ../.demo/mail
"""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = len(list(self.directory.glob("*.eml")))

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = self.directory / f"{self.count:04d}.eml"
        path.write_bytes(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body else ""
        links = re.findall(r"https?://\S+/billing/pay/\S+", text)
        print(f"[mail] to {', '.join(envelope.rcpt_tos)}: {message['subject']}", flush=True)
        for link in links:
            print(f"[mail]   payment link: {link.rstrip('/')}/", flush=True)
        print(f"[mail]   saved as {path}", flush=True)
        return "250 Message accepted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument(
        "--dir", default=str(Path(__file__).resolve().parent.parent / ".demo" / "mail")
    )
    args = parser.parse_args()
    controller = Controller(Sink(Path(args.dir)), hostname=args.host, port=args.port)
    controller.start()
    print(f"[mail] SMTP sink on {args.host}:{args.port}, messages in {args.dir}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        controller.stop()


if __name__ == "__main__":
    main()
