"""Benchmarks 5 and 6b: invoice emails through a site's custom SMTP server.

An aiosmtpd sink listens on loopback (in this process, on its own thread). The site's
Client Billing settings point at it (no TLS, no login). ``emails.send_invoice_emails``
sends a batch over one connection; the baseline sends each message on its own
connection. The scale-out figure queues one ``send_invoice_email`` task per invoice
on Redis and lets one, then two ``qcluster`` processes work them off.
"""

from __future__ import annotations

import time

from aiosmtpd.controller import Controller
from django.utils import timezone

from wagtail_client_billing.models import (
    ClientBillingSettings,
    EmailStatus,
    Invoice,
    InvoiceStatus,
    SMTPSecurity,
)

from .util import QClusters, captured, free_port, median, redis_broker_error, wait_until


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


def configure_site(site_id: int, port: int) -> None:
    config = ClientBillingSettings.objects.get(site_id=site_id)
    config.use_custom_smtp = True
    config.smtp_host = "127.0.0.1"
    config.smtp_port = port
    config.smtp_username = ""
    config.set_smtp_password("")
    config.smtp_security = SMTPSecurity.NONE
    config.from_email = "Client 0 <billing@client0.example>"
    config.reply_to = "accounts@client0.example"
    config.save()


def payable(site_id: int) -> list[int]:
    return list(
        Invoice.objects.filter(
            site_id=site_id, status=InvoiceStatus.PENDING, expires_at__gt=timezone.now()
        )
        .order_by("-pk")
        .values_list("pk", flat=True)
    )


def run(site_id: int, messages: int, repeats: int) -> dict:
    from wagtail_client_billing import emails

    pks = payable(site_id)[:messages]
    assert len(pks) == messages, len(pks)
    with SMTPSink() as sink:
        configure_site(site_id, sink.port)

        def load() -> list[Invoice]:
            return list(Invoice.objects.filter(pk__in=pks).select_related("site"))

        def batch() -> None:
            results = emails.send_invoice_emails(load())
            assert all(r.sent for r in results), [r.error for r in results if r.error][:3]

        def one_by_one() -> None:
            for invoice in load():
                (result,) = emails.send_invoice_emails([invoice])
                assert result.sent, result.error

        reuse_times, single_times, queries = [], [], []
        for _ in range(repeats):
            before = sink.count
            with captured() as ctx:
                started = time.perf_counter()
                batch()
                reuse_times.append(time.perf_counter() - started)
            queries.append(len(ctx.captured_queries))
            started = time.perf_counter()
            one_by_one()
            single_times.append(time.perf_counter() - started)
            assert wait_until(lambda before=before: sink.count == before + 2 * messages, 10)
    reuse, single = median(reuse_times), median(single_times)
    return {
        "messages": messages,
        "reuse_per_second": messages / reuse,
        "per_connection_per_second": messages / single,
        "ratio": single / reuse,
        "queries_per_batch": median(queries),
        "delivered": sink.count,
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
