"""The benchmarks as a Django app, for one thing: counting which worker ran each task.

``benchmarks.settings`` installs it. In every ``qcluster`` worker a receiver of
django-q2's ``pre_execute`` signal adds one to a Redis hash keyed by the worker's
parent, the cluster's sentinel (workers are recycled every 500 tasks; the sentinel
stays), so the scale-out figures can show how the work spread over the clusters; and
the CPU time each task function took in its worker's thread (from ``pre_execute`` to
``post_execute_in_worker``), so the webhook figures can split the cluster's CPU time into
the app's work and django-q2's.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.apps import AppConfig

#: Redis hash: cluster (sentinel pid) -> tasks its workers started (one per run).
SPREAD_KEY = f"wcb_bench_{os.environ.get('BENCH_RUN_ID', '0')}:tasks_by_worker"

#: Redis hash: "seconds" -> CPU seconds the workers' threads spent inside task functions
#: (the app's own work), "tasks" -> how many tasks; what the rest of the cluster's CPU
#: time is, is django-q2's overhead (see :func:`benchmarks.util.process_group_cpu`).
APP_CPU_KEY = f"wcb_bench_{os.environ.get('BENCH_RUN_ID', '0')}:app_cpu"

_connection: Any = None
_task_started: float | None = None


def _redis() -> Any:
    global _connection
    if _connection is None:  # one connection per worker process, made after the fork
        from django_q.brokers import get_broker

        _connection = get_broker().connection
    return _connection


def count_task(sender: Any, **kwargs: Any) -> None:
    global _task_started
    _redis().hincrby(SPREAD_KEY, str(os.getppid()), 1)
    _task_started = time.thread_time()  # after the counting above: that is the bench's


def task_done(sender: Any, **kwargs: Any) -> None:
    global _task_started
    if _task_started is None:
        return
    spent, _task_started = time.thread_time() - _task_started, None
    pipe = _redis().pipeline()
    pipe.hincrbyfloat(APP_CPU_KEY, "seconds", spent)
    pipe.hincrby(APP_CPU_KEY, "tasks", 1)
    pipe.execute()


class BenchmarksConfig(AppConfig):
    name = "benchmarks"
    label = "benchmarks"

    def ready(self) -> None:
        from django_q.signals import post_execute_in_worker, pre_execute

        pre_execute.connect(count_task, dispatch_uid="benchmarks.count_task")
        post_execute_in_worker.connect(task_done, dispatch_uid="benchmarks.task_done")
