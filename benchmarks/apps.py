"""The benchmarks as a Django app, for one thing: counting which worker ran each task.

``benchmarks.settings`` installs it. In every ``qcluster`` worker a receiver of
django-q2's ``pre_execute`` signal adds one to a Redis hash keyed by the worker's
process id, so the scale-out figures can show how the work spread over the clusters.
"""

from __future__ import annotations

import os
from typing import Any

from django.apps import AppConfig

#: Redis hash: worker pid -> tasks it started.
SPREAD_KEY = "wcb_bench:tasks_by_worker"

_connection: Any = None


def count_task(sender: Any, **kwargs: Any) -> None:
    global _connection
    if _connection is None:  # one connection per worker process, made after the fork
        from django_q.brokers import get_broker

        _connection = get_broker().connection
    _connection.hincrby(SPREAD_KEY, str(os.getpid()), 1)


class BenchmarksConfig(AppConfig):
    name = "benchmarks"
    label = "benchmarks"

    def ready(self) -> None:
        from django_q.signals import pre_execute

        pre_execute.connect(count_task, dispatch_uid="benchmarks.count_task")
