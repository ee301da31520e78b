"""A small HTTP load generator: a thread pool, one keep-alive connection per thread.

Every request is sent once, in order of the list, by whichever thread is free; the
result is the throughput over the whole list and the latency of each request.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass

from .util import median, percentile


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


def run(port: int, requests: list[Request], concurrency: int, rate: float | None = None) -> dict:
    """Send ``requests`` over ``concurrency`` connections, as fast as they are answered,
    or, with ``rate``, request ``i`` no earlier than ``i / rate`` seconds after the start
    (an open-loop load: a slow answer does not slow down the ones after it)."""
    latencies: list[float] = [0.0] * len(requests)
    statuses: list[int] = [0] * len(requests)
    counter = itertools.count()
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            index = next(counter)
            if index >= len(requests):
                break
            req = requests[index]
            if rate:
                wait = started_at + index / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            headers = dict(req.headers)
            if req.body:
                headers.setdefault("Content-Type", "application/json")
            for attempt in range(2):
                started = time.perf_counter()
                try:
                    conn.request(req.method, req.path, body=req.body or None, headers=headers)
                    response = conn.getresponse()
                    response.read()
                except (ConnectionError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    if attempt:
                        errors.append(repr(exc))
                        statuses[index] = -1
                    continue
                latencies[index] = time.perf_counter() - started
                statuses[index] = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                break
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = started_at = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "requests": len(requests),
        "seconds": wall,
        "per_second": len(requests) / wall,
        "p50_ms": median(latencies) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "statuses": dict(Counter(statuses)),
        "errors": errors[:5],
    }
