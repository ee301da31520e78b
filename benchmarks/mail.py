"""Benchmarks 5 and 6b: invoice emails through a site's custom SMTP server.

:func:`run`: the sink (:mod:`benchmarks.smtp_sink`, a process of its own) speaks
STARTTLS and answers each command after a delay, like a server across a network; one
site sends a batch over one connection against a connection per message, then 100
sites send at once from sender processes (one per core, like ``qcluster``'s workers),
each with a thread per site. :func:`scale_out` queues one ``send_invoice_email`` task
per invoice on Redis and lets one, then two ``qcluster`` processes work them off.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from django.core.mail import EmailMessage
from django.utils import timezone

from wagtail_client_billing.models import (
    ClientBillingSettings,
    EmailStatus,
    Invoice,
    InvoiceStatus,
    SMTPSecurity,
)

from . import smtp_sink
from .util import (
    REPO,
    QClusters,
    captured,
    free_port,
    median,
    process_group_cpu,
    redis_broker_error,
    wait_until,
)


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        return "250 Message accepted"


class SMTPSink:
    def __enter__(self) -> SMTPSink:
        self.handler = CountingSink()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def count(self) -> int:
        return self.handler.count


def configure_site(
    site_id: int, port: int, security: str = SMTPSecurity.NONE
) -> ClientBillingSettings:
    config = ClientBillingSettings.objects.get(site_id=site_id)
    config.use_custom_smtp = True
    config.smtp_host = "127.0.0.1"
    config.smtp_port = port
    config.smtp_username = ""
    config.set_smtp_password("")
    config.smtp_security = security
    config.from_email = "Client 0 <billing@client0.example>"
    config.reply_to = "accounts@client0.example"
    config.save()
    return config


def payable(site_id: int) -> list[int]:
    return list(
        Invoice.objects.filter(
            site_id=site_id, status=InvoiceStatus.PENDING, expires_at__gt=timezone.now()
        )
        .order_by("-pk")
        .values_list("pk", flat=True)
    )


class DelayedTLSSink:
    """:mod:`benchmarks.smtp_sink` in a process of its own, trusted by this process."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __enter__(self) -> DelayedTLSSink:
        self.folder = Path(tempfile.mkdtemp(prefix="wcb_bench_smtp_"))
        cert, key = smtp_sink.self_signed(self.folder)
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.smtp_sink", "--port", str(self.port)]
            + ["--cert", str(cert), "--key", str(key), "--delay", str(self.delay)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        # The client verifies the sink's certificate: it trusts it beside the system's
        # CA certificates, as a client of a real server trusts those (making a context
        # loads them all), through SSL_CERT_FILE, which OpenSSL reads when it does.
        trusted = self.folder / "trusted.pem"
        system = Path(ssl.get_default_verify_paths().cafile or "")
        trusted.write_bytes((system.read_bytes() if system.is_file() else b"") + cert.read_bytes())
        self.previous = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(trusted)
        self.count = 0
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = self.previous
        self.process.send_signal(signal.SIGTERM)
        out, _err = self.process.communicate(timeout=30)
        self.count = int(out.split()[-1]) if out.split() else 0
        shutil.rmtree(self.folder, ignore_errors=True)


#: Replies a message costs: on a new connection (greeting, EHLO, STARTTLS, EHLO, MAIL,
#: RCPT, DATA, end of data, QUIT), and on one already open (MAIL, RCPT, DATA, end of data).
REPLIES_NEW, REPLIES_REUSED, REPLIES_SETUP = 9, 4, 5


def _bound(delay: float, messages: int) -> dict:
    """What the round trips allow one connection: messages/s one per connection, and
    with reuse (one set-up and QUIT for the ``messages``, 4 replies each)."""
    return {
        "per_connection_per_second": 1 / (REPLIES_NEW * delay),
        "reuse_per_second": messages / ((REPLIES_SETUP + REPLIES_REUSED * messages) * delay),
        "reuse_limit_per_second": 1 / (REPLIES_REUSED * delay),
    }


def run(site_id: int, messages: int, repeats: int, delay: float = smtp_sink.DEFAULT_DELAY,
        sites: int = 100, per_site: int = 10) -> dict:  # fmt: skip
    """One site: ``emails.send_invoice_emails`` for ``messages`` invoices (one connection)
    against one call per invoice (a connection each), rendering included. ``sites`` at
    once: a site's mailer each, ``per_site`` messages rendered beforehand, sent by a
    thread per site over its own connection (or a connection per message)."""
    from wagtail_client_billing import emails

    pks = payable(site_id)[:messages]
    assert len(pks) == messages, len(pks)
    result: dict = {"delay_ms": delay * 1000, "messages": messages}
    with DelayedTLSSink(delay) as sink:
        configure_site(site_id, sink.port, SMTPSecurity.STARTTLS)

        def load() -> list[Invoice]:
            return list(Invoice.objects.filter(pk__in=pks).select_related("site"))

        def batch() -> None:
            results = emails.send_invoice_emails(load())
            assert all(r.sent for r in results), [r.error for r in results if r.error][:3]

        def one_by_one() -> None:
            for invoice in load():
                (result,) = emails.send_invoice_emails([invoice])
                assert result.sent, result.error

        # The first email of an invoice makes its PDF (tens of milliseconds of CPU) and
        # stores it; every later one attaches the stored file. An untimed batch makes
        # them, so the timed runs, with reuse or without, send the same stored files.
        batch()
        reuse_times, single_times, queries, cpu = [], [], [], []
        for _ in range(repeats):
            with captured() as ctx:
                sink_cpu = process_group_cpu(sink.process.pid)
                own_cpu = time.process_time()
                started = time.perf_counter()
                batch()
                reuse_times.append(time.perf_counter() - started)
                cpu.append(
                    (
                        time.process_time() - own_cpu,
                        process_group_cpu(sink.process.pid) - sink_cpu,
                    )
                )
            queries.append(len(ctx.captured_queries))
            started = time.perf_counter()
            one_by_one()
            single_times.append(time.perf_counter() - started)
        reuse, single = median(reuse_times), median(single_times)
        one = {
            "reuse_per_second": messages / reuse,
            "per_connection_per_second": messages / single,
            "ratio": single / reuse,
            "bound": _bound(delay, messages),
            "queries_per_batch": median(queries),
            # CPU milliseconds per message with reuse: this process (rendering, queries,
            # TLS, smtplib) and the sink's (aiosmtpd, TLS), on the same cores.
            "cpu_ms_per_message": {
                "sender": median([c[0] for c in cpu]) * 1000 / messages,
                "sink": median([c[1] for c in cpu]) * 1000 / messages,
            },
        }
        one["reuse_of_bound"] = one["reuse_per_second"] / one["bound"]["reuse_per_second"]
        one["per_connection_of_bound"] = (
            one["per_connection_per_second"] / one["bound"]["per_connection_per_second"]
        )
        one["bound"]["ratio"] = (
            one["bound"]["reuse_per_second"] / one["bound"]["per_connection_per_second"]
        )
        result["one_site"] = one
        result["many_sites"] = _many_sites(site_id, sink.process.pid, delay, sites, per_site)
        # The same, with a one-line message for each invoice: what the machine, the
        # threads, smtplib, TLS and the sink allow before the app writes a message.
        result["many_sites_one_line"] = _many_sites(
            site_id, sink.process.pid, delay, sites, per_site, one_line=True
        )
    expected = messages + 2 * messages * repeats + 4 * sites * per_site
    result["delivered"] = sink.count
    result["all_delivered"] = sink.count == expected
    # The figures the earlier runs reported, kept at the same keys.
    result.update({k: one[k] for k in ("reuse_per_second", "per_connection_per_second", "ratio")})
    return result


def _many_sites(
    site_id: int,
    sink_pid: int,
    delay: float,
    sites: int,
    per_site: int,
    processes: int | None = None,
    one_line: bool = False,
) -> dict:
    """``sites`` mailers (each site's own SMTP settings and connection) sending at once.

    The senders are ``processes`` processes (one per core by default, as ``qcluster``
    starts a worker per core), each sending for its share of the sites with a thread
    per site: in one process, 100 threads would share one GIL and the run would measure
    that, not the app. The messages are built beforehand in this process and inherited
    (``fork``); each process reports its own CPU time. ``one_line``: each message is
    one line of plain text from the same sender to the same client instead.
    """
    from django.db import connections

    from wagtail_client_billing import emails

    processes = processes or os.cpu_count() or 1
    config = ClientBillingSettings.objects.get(site_id=site_id)
    invoices = list(
        Invoice.objects.filter(pk__in=payable(site_id)[:per_site]).select_related("site")
    )
    mailers, outgoing = [], []
    for n in range(sites):
        config.from_email = f"Client {n} <billing@client{n}.example>"
        mailer = emails.mailer_for_site(invoices[0].site, config)
        mailers.append(mailer)
        outgoing.append(
            [
                EmailMessage(
                    i.number, "-", mailer.from_email, [i.email], connection=mailer.connection
                )
                if one_line
                else emails.build_invoice_message(i, mailer)
                for i in invoices
            ]
        )
    shares = [list(range(p, sites, processes)) for p in range(processes)]

    def send(index: int, reuse: bool) -> None:
        connection = mailers[index].connection
        if reuse:
            connection.open()
            sent = connection.send_messages(outgoing[index])
            connection.close()
        else:
            sent = 0
            for message in outgoing[index]:
                connection.open()
                sent += connection.send_messages([message])
                connection.close()
        assert sent == per_site, sent

    def sender(share: list[int], reuse: bool, start: Any, results: Any) -> None:
        try:
            with ThreadPoolExecutor(max_workers=len(share)) as pool:
                start.wait(60)
                cpu = time.process_time()
                list(pool.map(lambda i: send(i, reuse), share))
                results.put(("cpu", time.process_time() - cpu))
        except BaseException as exc:
            results.put(("error", repr(exc)))
            raise

    # The children must not share this process's database connection (they use none).
    connections.close_all()
    context = multiprocessing.get_context("fork")
    figures, cpu = {}, {}
    for reuse in (True, False):
        start, results = context.Barrier(processes + 1), context.Queue()
        children = [
            context.Process(target=sender, args=(share, reuse, start, results), daemon=True)
            for share in shares
        ]
        for child in children:
            child.start()
        sink_cpu = process_group_cpu(sink_pid)
        start.wait(60)
        started = time.perf_counter()
        reports = [results.get(timeout=600) for _ in children]
        wall = time.perf_counter() - started
        sink_cpu = process_group_cpu(sink_pid) - sink_cpu
        for child in children:
            child.join(30)
        if errors := [value for kind, value in reports if kind == "error"]:
            raise RuntimeError(f"a sender process failed: {errors[0]}")
        figures[reuse] = sites * per_site / wall
        # CPU seconds per wall second: near the cores this run gets, it is CPU-bound.
        cpu[reuse] = {
            "senders": sum(value for _kind, value in reports) / wall,
            "sink": sink_cpu / wall,
        }
    bound = _bound(delay, per_site)
    bound = {k: v * sites for k, v in bound.items()}
    cpu_per_message = sum(cpu[True].values()) / figures[True]  # CPU seconds, both sides
    bound["ratio"] = bound["reuse_per_second"] / bound["per_connection_per_second"]
    return {
        "sites": sites,
        "messages_per_site": per_site,
        "sender_processes": processes,
        "reuse_per_second": figures[True],
        "per_connection_per_second": figures[False],
        "ratio": figures[True] / figures[False],
        "bound": bound,
        "reuse_of_bound": figures[True] / bound["reuse_per_second"],
        "per_connection_of_bound": figures[False] / bound["per_connection_per_second"],
        "cpu_per_wall_second": {"reuse": cpu[True], "per_connection": cpu[False]},
        # CPU milliseconds per message with reuse, the sender processes' summed; at the
        # bound's rate, what it would take of the machine's cores (the senders and the
        # sink share them).
        "cpu_ms_per_message": {
            side: cpu[True][side] * 1000 / figures[True] for side in ("senders", "sink")
        },
        "cores_needed_at_bound": cpu_per_message * bound["reuse_per_second"],
    }


def scale_out(site_id: int, messages: int) -> dict:
    """One, then two ``qcluster`` processes (one worker each) on a Redis broker."""
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    if skipped := redis_broker_error():  # no Redis: say so rather than fail the run
        return {"skipped": skipped}
    broker = get_broker()
    pool = payable(site_id)
    results = {}
    with SMTPSink() as sink:
        configure_site(site_id, sink.port)
        for clusters in (1, 2):
            pks, pool = pool[:messages], pool[messages:]
            assert len(pks) == messages
            broker.purge_queue()
            with QClusters(clusters) as running:
                Invoice.objects.filter(pk__in=pks).update(
                    email_status=EmailStatus.QUEUED, email_attempts=0, email_last_error=""
                )
                before = sink.count
                started = time.perf_counter()
                for pk in pks:
                    async_task(
                        "wagtail_client_billing.tasks.send_invoice_email",
                        pk,
                        0,
                        group="client_billing_email",
                    )
                sent = Invoice.objects.filter(pk__in=pks, email_status=EmailStatus.SENT)
                done = wait_until(lambda sent=sent: sent.count() == messages, 300, 0.1)
                elapsed = time.perf_counter() - started
                if not done:
                    raise RuntimeError(f"only {sent.count()} of {messages} emails sent")
                spread = running.spread()
            results[clusters] = {
                "per_second": messages / elapsed,
                "delivered": sink.count - before,
                "tasks_per_worker": spread,
            }
    return {
        "messages": messages,
        "one_cluster_per_second": results[1]["per_second"],
        "two_clusters_per_second": results[2]["per_second"],
        "ratio": results[2]["per_second"] / results[1]["per_second"],
        "delivered": [results[1]["delivered"], results[2]["delivered"]],
        "tasks_per_worker": results[2]["tasks_per_worker"],
    }
