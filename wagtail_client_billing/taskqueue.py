"""The one way into django-q2's task queue.

Tasks are named by their dotted path (:data:`TASKS` plus the function's name), never
imported: the domain modules (:mod:`.billing`, :mod:`.webhooks`) queue work that
:mod:`.tasks` runs, and :mod:`.tasks` calls into them, so importing ``tasks`` from
below would be a cycle. A task's dotted path is stored in queued tasks and in
django-q2's ``Schedule`` rows, so it must stay stable once released.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task as _async_task

#: The module whose functions are the tasks; ``f"{TASKS}.name"`` is a task's dotted path.
TASKS = "wagtail_client_billing.tasks"

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
