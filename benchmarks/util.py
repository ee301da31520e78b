"""Small helpers shared by the benchmarks: medians, query capture, ports, processes."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

REPO = Path(__file__).resolve().parent.parent


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


@contextmanager
def captured():
    """Yield a CaptureQueriesContext for the default connection."""
    with CaptureQueriesContext(connection) as ctx:
        yield ctx


def measure(fn: Callable[[], Any]) -> tuple[float, int, Any]:
    """``(seconds, queries, result)`` of one call."""
    with captured() as ctx:
        started = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - started
    return elapsed, len(ctx.captured_queries), result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a process that runs this project's code (gunicorn, qcluster)."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def start(args: list[str], **extra_env: str) -> subprocess.Popen:
    """Start a child in its own process group, so stopping it stops its workers too."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=child_env(**extra_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the child's process group (only the processes this benchmark started)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def _clusters_ready(expected: int) -> bool:
    from django_q.status import Stat

    try:
        return len([s for s in Stat.get_all() if s.status in ("Idle", "Working")]) >= expected
    except Exception:
        return False


class QClusters:
    """``n`` ``qcluster`` processes of one worker each on the Redis broker, ready to work.

    ``spread()`` is how many tasks each cluster started since the clusters came up
    (counted by :mod:`benchmarks.apps`), largest first.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> QClusters:
        from django_q.brokers import get_broker

        from .apps import SPREAD_KEY

        self.connection = get_broker().connection
        self.connection.delete(SPREAD_KEY)
        self.processes = [
            start(["-m", "django", "qcluster"], BENCH_Q_WORKERS="1") for _ in range(self.n)
        ]
        if not wait_until(lambda: _clusters_ready(self.n), 60, 0.2):
            self.__exit__()
            raise RuntimeError("qcluster did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        for process in self.processes:
            stop(process)

    def spread(self) -> list[int]:
        from .apps import SPREAD_KEY

        counts = self.connection.hgetall(SPREAD_KEY).values()
        return sorted((int(c) for c in counts), reverse=True)


def redis_broker_error() -> str:
    """Why the Redis broker cannot be used, or "" when it can."""
    from django_q.brokers import get_broker

    try:
        get_broker().ping()
    except Exception as exc:
        return f"Redis broker not reachable ({exc})"
    return ""
