"""Run the whole demo: the Stripe emulator, an SMTP sink, a qcluster worker and the dev server.

`make demo` calls this after `migrate`, `seed_demo` and `client_billing_schedules`.
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wait_for(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=12111)
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--no-emulator", action="store_true", help="an emulator is already running")
    args = parser.parse_args()

    python = sys.executable
    env = dict(os.environ)
    emulator_url = f"http://127.0.0.1:{args.emulator_port}"
    env.setdefault("STRIPE_API_BASE", emulator_url)
    env["EMAIL_PORT"] = str(args.smtp_port)
    secret = env.get("STRIPE_TEST_WEBHOOK_SECRETS", "whsec_emulator").split(",")[0]
    state = HERE.parent / ".demo"
    state.mkdir(exist_ok=True)

    processes: list[subprocess.Popen] = []

    def start(name: str, command: list[str]) -> None:
        print(f"[demo] starting {name}: {' '.join(command)}", flush=True)
        processes.append(subprocess.Popen(command, cwd=HERE, env=env))

    if not args.no_emulator:
        start(
            "Stripe emulator",
            [
                python,
                "-m",
                "wagtail_client_billing.testing.stripe_emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(args.emulator_port),
                "--webhook-url",
                f"http://127.0.0.1:{args.port}/billing/stripe/webhook/",
                "--webhook-secret",
                secret,
                "--state-file",
                str(state / "emulator.json"),
            ],
        )
        wait_for(f"{emulator_url}/_emulator/events")
    for command in (["seed_demo", "--port", str(args.port)], ["client_billing_schedules"]):
        print(f"[demo] manage.py {' '.join(command)}", flush=True)
        subprocess.run([python, "manage.py", *command], cwd=HERE, env=env, check=True)
    start(
        "SMTP sink",
        [python, "mailsink.py", "--port", str(args.smtp_port), "--dir", str(state / "mail")],
    )
    start("qcluster", [python, "manage.py", "qcluster"])
    start("dev server", [python, "manage.py", "runserver", f"0.0.0.0:{args.port}", "--noreload"])
    wait_for(f"http://127.0.0.1:{args.port}/admin/login/")
    print(
        "\n[demo] ready:\n"
        f"  admin          http://localhost:{args.port}/admin/  (admin / admin)\n"
        f"  client sites   http://client-a.localhost:{args.port}/  http://client-b.localhost:{args.port}/\n"
        f"  Stripe         {emulator_url} (the bundled emulator; its pages open from Checkout links)\n"
        f"  mail           printed here, saved in {state / 'mail'}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
