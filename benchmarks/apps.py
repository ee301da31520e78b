"""The benchmarks as a Django app, for one thing: counting which worker ran each task.

``benchmarks.settings`` installs it. In every ``qcluster`` worker a receiver of
django-q2's ``pre_execute`` signal adds one to a Redis hash keyed by the worker's
parent, the cluster's sentinel (workers are recycled every 500 tasks; the sentinel
stays), so the scale-out figures can show how the work spread over the clusters.
"""

from __future__ import annotations

import os
from typing import Any

from django.apps import AppConfig

#: Redis hash: cluster (sentinel pid) -> tasks its workers started (one per run).
SPREAD_KEY = f"wcb_bench_{os.environ.get('BENCH_RUN_ID', '0')}:tasks_by_worker"

_connection: Any = None


def count_task(sender: Any, **kwargs: Any) -> None:
    global _connection
    if _connection is None:  # one connection per worker process, made after the fork
        from django_q.brokers import get_broker

        _connection = get_broker().connection
    _connection.hincrby(SPREAD_KEY, str(os.getppid()), 1)


class BenchmarksConfig(AppConfig):
    name = "benchmarks"
    label = "benchmarks"

    def ready(self) -> None:
        from django_q.signals import pre_execute

        pre_execute.connect(count_task, dispatch_uid="benchmarks.count_task")
