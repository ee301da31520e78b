"""The one way into django-q2's task queue.

Tasks are named by their dotted path (:data:`TASKS` plus the function's name), never
imported: the domain modules (:mod:`.billing`, :mod:`.webhooks`) queue work that
:mod:`.tasks` runs, and :mod:`.tasks` calls into them, so importing ``tasks`` from
below would be a cycle. A task's dotted path is stored in queued tasks and in
django-q2's ``Schedule`` rows, so it must stay stable once released.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.db import close_old_connections, transaction
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task as _async_task

#: The module whose functions are the tasks; ``f"{TASKS}.name"`` is a task's dotted path.
TASKS = "wagtail_client_billing.tasks"

logger = logging.getLogger(__name__)

_broker: Broker | None = None


def async_task(func: str, *args: Any, **kwargs: Any) -> str:
    """django-q2's ``async_task`` with one broker per process.

    Without a ``broker`` django-q2 makes a new one for every task: with Redis a new
    connection, handshake and all, which cost the webhook view more than its ``INSERT``.
    Brokers are thread-safe (a Redis connection pool; the ORM broker uses Django's
    per-thread connections), and a pool notices a fork and reconnects.
    """
    global _broker
    if _broker is None:
        _broker = get_broker()
    kwargs.setdefault("broker", _broker)
    return _async_task(func, *args, **kwargs)


def on_commit(func: str, *args: Any, **kwargs: Any) -> None:
    """Queue ``func`` (a dotted path) once the current transaction commits.

    A worker must not run before the rows it reads are visible, nor run at all for
    work that was rolled back.
    """
    transaction.on_commit(lambda: async_task(func, *args, **kwargs))


class Batcher:
    """Gathers the items one task function takes as a list, and queues them in batches.

    :meth:`add` keeps an item in this process until ``size`` items are waiting (the
    call that fills the batch queues it) or the first of them has waited ``delay``
    seconds (a timer thread of this process queues it then): one ``async_task`` per
    batch instead of one per item. ``limits()`` returns ``(size, delay)``, read at every
    call so a settings change applies at once. A size of 1 or less, a delay of 0, and
    django-q2's ``sync`` mode queue every item at once, on its own.

    Only work whose items are also found again from the database belongs here: a
    process killed with items waiting loses them (the webhook deliveries it holds stay
    in their table, and :func:`.tasks.resume_received_webhook_events` queues them again).
    A process that exits normally queues what it holds (``atexit``); a worker that
    wants items for a batch of work holds the timer (:meth:`held`) so they go as one
    task when the work is done. No extra process
    runs: the timer is a daemon thread, started in each process (after a fork too) when
    its first item arrives.
    """

    def __init__(self, func: str, *, group: str, limits: Callable[[], tuple[int, float]]) -> None:
        self.func, self.group, self.limits = func, group, limits
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._condition = threading.Condition()
        self._items: list[Any] = []
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._holds = 0

    def add(self, item: Any) -> None:
        size, delay = self.limits()
        if size <= 1 or delay <= 0 or _sync():
            async_task(self.func, [item], group=self.group)
            return
        with self._condition:
            self._items.append(item)
            if len(self._items) < size:
                if self._deadline is None:
                    self._deadline = time.monotonic() + delay
                    self._start_timer()
                    self._condition.notify()
                return
            batch, self._items, self._deadline = self._items, [], None
        self._send(batch)

    def flush(self) -> int:
        """Queue whatever is waiting now; returns how many items."""
        with self._condition:
            batch, self._items, self._deadline = self._items, [], None
        if batch:
            self._send(batch)
        return len(batch)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """While the block runs the timer queues nothing (a full batch still goes); what
        is waiting is queued when it ends. For a worker that wants items for a batch of
        work: their task goes when the work is done, however long it took."""
        with self._condition:
            self._holds += 1
        try:
            yield
        finally:
            with self._condition:
                self._holds -= 1
                self._condition.notify()
            self.flush()

    def waiting(self) -> int:
        with self._condition:
            return len(self._items)

    def _start_timer(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name=f"batcher {self.func}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._deadline is None or self._holds:
                    self._condition.wait()
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._condition.wait(remaining)
                    continue
                batch, self._items, self._deadline = self._items, [], None
            if batch:
                # The ORM broker writes through this thread's own connection, which no
                # request cycle closes: drop it if it broke or outlived CONN_MAX_AGE.
                close_old_connections()
                self._send(batch)

    def _send(self, batch: list[Any]) -> None:
        try:
            async_task(self.func, batch, group=self.group)
        except Exception:
            # The broker is down: the items stay where the database has them, for the sweep.
            logger.exception("Could not queue %d items for %s", len(batch), self.func)


def _sync() -> bool:
    from django_q.conf import Conf

    return bool(Conf.SYNC)
