"""`make demo`, after `migrate`: the demo data, then `manage.py client_billing_dev`.

`seed_demo` makes the agency's connected account through the gateway, so it needs a
Stripe: the emulator runs in this process for it, on a free port, and its state is
saved to `.demo/emulator.json`, which the emulator of `client_billing_dev` starts from.
Then this process becomes `client_billing_dev` (the Stripe emulator, an SMTP sink with
its mail log, a qcluster and the dev server); Ctrl-C there stops everything.

python run_demo.py [--port 8000] [--emulator-port 12111] [--smtp-port 1025] [--mail-port 8025]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from wagtail_client_billing.testing.stripe_emulator import StripeEmulator

HERE = Path(__file__).resolve().parent
STATE = HERE.parent / ".demo"


def seed(port: int) -> None:
    """Run `seed_demo` against an emulator that starts from, and saves to, the demo's state."""
    state_file = STATE / "emulator.json"
    with StripeEmulator() as emulator:
        if state_file.exists():
            emulator.state.restore(json.loads(state_file.read_text()))
        env = {**os.environ, "STRIPE_API_BASE": emulator.base_url}
        command = [sys.executable, "manage.py", "seed_demo", "--port", str(port)]
        # Its own session: a Ctrl-C here stops it with SIGTERM, quietly, not mid-import.
        process = subprocess.Popen(command, cwd=HERE, env=env, start_new_session=True)
        try:
            if process.wait() != 0:
                sys.exit(f"seed_demo failed with exit code {process.returncode}")
        except KeyboardInterrupt:
            process.send_signal(signal.SIGTERM)
            process.wait()
            sys.exit(130)
        STATE.mkdir(exist_ok=True)
        partial = state_file.with_suffix(".tmp")
        partial.write_text(json.dumps(emulator.state.snapshot()))
        partial.replace(state_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=12111)
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--mail-port", type=int, default=8025)
    args = parser.parse_args()
    try:
        seed(args.port)
    except KeyboardInterrupt:
        sys.exit(130)
    os.chdir(HERE)
    command = [
        sys.executable,
        "manage.py",
        "client_billing_dev",
        "--port",
        str(args.port),
        "--emulator-port",
        str(args.emulator_port),
        "--smtp-port",
        str(args.smtp_port),
        "--mail-port",
        str(args.mail_port),
        "--state-dir",
        str(STATE),
        "--no-input",
    ]
    os.execv(sys.executable, command)  # noqa: S606 (our own interpreter and command)


if __name__ == "__main__":
    main()
