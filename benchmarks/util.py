"""Small helpers shared by the benchmarks: medians, query capture, ports, processes."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
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
    """Yield a CaptureQueriesContext for the default connection.

    The log is emptied first: Django keeps at most 9,000 statements, and once it is full
    its length no longer grows, so a capture counted nothing (the sweep's index figure
    on SQLite came out 0 / 0 after the 9,000 statements of the loop's runs).
    """
    connection.queries_log.clear()
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
    """Start a child in its own process group, so stopping it stops its workers too.

    Its stderr goes to a temporary file (``process.log``, read back with
    :func:`stderr_tail`): a pipe nobody reads fills up after 64 KiB of log lines, and a
    worker blocked writing a warning holds whatever it locked (SQLite's write lock).
    """
    log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=child_env(**extra_env),
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def stderr_tail(process: subprocess.Popen, chars: int = 2000) -> str:
    """The end of what a child started by :func:`start` wrote to stderr."""
    log = getattr(process, "log", None)
    if log is None:
        return ""
    log.seek(0)
    return log.read()[-chars:].decode("utf-8", "replace")


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the child, which stops the processes it started (qcluster's sentinel its
    workers, gunicorn's master its workers); SIGKILL to whatever is left of its process
    group (only processes this benchmark started) once it has exited or ``timeout`` passed.

    SIGTERM to the whole group at once, as before, had each of qcluster's processes stop
    on its own, and the cluster never exited: each of a run's seven clusters cost the
    full ``timeout``, almost two minutes of waiting per database.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with suppress(ProcessLookupError):
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

    def __init__(self, n: int, workers: int = 1) -> None:
        self.n, self.workers = n, workers
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> QClusters:
        from django_q.brokers import get_broker

        from .apps import SPREAD_KEY

        self.connection = get_broker().connection
        self.connection.delete(SPREAD_KEY)
        self.processes = [
            start(["-m", "django", "qcluster"], BENCH_Q_WORKERS=str(self.workers))
            for _ in range(self.n)
        ]
        if not wait_until(lambda: _clusters_ready(self.n), 120, 0.2):
            logs = " | ".join(stderr_tail(p, 500) for p in self.processes)
            self.__exit__()
            raise RuntimeError(f"qcluster did not start: {logs!r}")
        return self

    def __exit__(self, *exc: Any) -> None:
        for process in self.processes:
            stop(process)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of every process of the clusters so far."""
        return sum(process_group_cpu(p.pid) for p in self.processes)

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


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _processes_cpu(chosen: Callable[[Path, list[str]], bool]) -> float:
    """CPU seconds (user + system, with reaped children) of the live processes that
    ``chosen(proc_dir, stat_fields)`` picks, read from ``/proc`` (Linux); 0 elsewhere."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if chosen(entry, fields):
                # After the command: state ppid pgrp ... utime(14) stime(15) cutime cstime
                total += sum(int(v) for v in fields[11:15])
        except OSError:  # the process ended meanwhile
            continue
    return total / _TICKS


def process_group_cpu(pgid: int) -> float:
    """CPU seconds of the live processes of a process group (see :func:`_processes_cpu`)."""
    return _processes_cpu(lambda _entry, fields: int(fields[2]) == pgid)


def database_server_cpu() -> float | None:
    """CPU seconds of the PostgreSQL server's processes (its backends, the WAL writer,
    the checkpointer, autovacuum), when the database is PostgreSQL on this machine;
    None otherwise (SQLite's work is done inside the processes that use it)."""
    if connection.vendor != "postgresql" or connection.settings_dict.get("HOST") not in (
        "", "127.0.0.1", "localhost", "::1",
    ):  # fmt: skip
        return None
    return _processes_cpu(
        lambda entry, _fields: (entry / "cmdline").read_bytes()[:9] == b"postgres:"
    )


def app_cpu() -> tuple[float, int]:
    """(CPU seconds inside task functions, tasks) counted by :mod:`benchmarks.apps`."""
    from django_q.brokers import get_broker

    from .apps import APP_CPU_KEY

    values = get_broker().connection.hgetall(APP_CPU_KEY)
    return float(values.get(b"seconds", 0)), int(values.get(b"tasks", 0))


def reset_app_cpu() -> None:
    from django_q.brokers import get_broker

    from .apps import APP_CPU_KEY

    get_broker().connection.delete(APP_CPU_KEY)
