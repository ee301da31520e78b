"""``make bench`` keeps working: every benchmark runs to its end on tiny data.

The benchmarks are not part of the suite (a full run takes 20 to 35 minutes), so a change
to the app that breaks one (a renamed function, a new required field, a view that now
answers differently) would otherwise surface only at the next full run, as an ``ERROR``
cell in the table. :func:`test_every_benchmark_runs_and_reports_every_figure` runs
``python -m benchmarks --smoke`` (10,000 invoices, each benchmark once; about a minute
and a half on an idle two-core machine) and checks that each one finished, that its own
checks held (every webhook stored and applied once, every email delivered, no Stripe
call), and that the table has a value in every cell. The figures themselves mean
nothing at this size, and nothing here looks at them.

It needs Redis (the webhook and qcluster benchmarks), so it is marked ``bench`` and
runs only when selected: ``pytest -m bench tests/test_benchmarks_smoke.py``, which
``.ci/run`` does, on SQLite and, when ``DATABASE_URL`` is set, on PostgreSQL too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils import selected_by_marker

ROOT = Path(__file__).resolve().parent.parent

#: The sections ``benchmarks.run`` stores, each of which must have run without an error.
SECTIONS = (
    "sweep",
    "listing",
    "paylink",
    "webhook",
    "email",
    "email_scale_out",
    "overview",
)
#: What the table prints instead of a figure when something went wrong.
BROKEN_CELL = re.compile(r"ERROR|not run|skipped|\? \(")


@pytest.mark.bench
def test_every_benchmark_runs_and_reports_every_figure(request, tmp_path):
    if not selected_by_marker(request.config, "bench"):
        pytest.skip("slow (every benchmark on 10,000 invoices): run with -m bench; .ci/run does")
    out = tmp_path / "results.json"
    databases = "all" if os.environ.get("DATABASE_URL") else "sqlite"
    # The benchmarks use their own settings; pytest-django exported the suite's.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    run = subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "benchmarks", "--smoke", "--db", databases, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True
    expected = ["sqlite", "postgres"] if databases == "all" else ["sqlite"]
    assert list(report["results"]) == expected
    for db, result in report["results"].items():
        for section in SECTIONS:
            assert section in result, (db, section, run.stderr[-3000:])
            part = result[section]
            assert "error" not in part and "skipped" not in part, (db, section, part)
        webhook = result["webhook"]
        assert webhook["all_ok"] and webhook["all_stored"] and webhook["all_applied"], (db, webhook)
        assert webhook["duplicates"]["exactly_one_change_each"], (db, webhook["duplicates"])
        assert webhook["stripe_calls"] == 0, (db, webhook["stripe_calls"])
        assert result["email"]["all_delivered"], (db, result["email"])
        assert result["stripe_calls_total"] == 0, db
    # The table: a row for every figure, each with a value for every database.
    table = run.stdout
    assert "smoke run" in table
    broken = [line for line in table.splitlines() if BROKEN_CELL.search(line)]
    assert not broken, "\n".join(broken)
    assert table.count(">= 30x") == 1  # the sweep's target row is there
