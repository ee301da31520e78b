"""``python -m benchmarks [--quick|--smoke] [--db sqlite|postgres|all]``: run, print, save.

Runs :mod:`benchmarks.run` once per database (SQLite always; PostgreSQL when
``DATABASE_URL`` is set), each in its own process, then prints one table of every
figure with its target and writes ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .report import render_table

HERE = Path(__file__).resolve().parent


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": load,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100,000 invoices, fewer repeats")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="10,000 invoices, every benchmark once: that each runs, not how fast",
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument(
        "--clean", action="store_true", help="drop the cached migrated schemas and exit"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated subset: sweep,listing,paylink,webhook,email,overview (default: all)",
    )
    args = parser.parse_args(argv)
    if args.clean:
        from .run import drop_templates

        drop_templates()
        return 0

    databases = ["sqlite", "postgres"] if args.db == "all" else [args.db]
    if "postgres" in databases and not os.environ.get("DATABASE_URL"):
        if args.db == "postgres":
            parser.error("--db postgres needs DATABASE_URL")
        print("DATABASE_URL is not set: PostgreSQL skipped.", file=sys.stderr)
        databases.remove("postgres")

    report = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": args.quick,
        "smoke": args.smoke,
        "results": {},
    }
    started = time.perf_counter()
    for db in databases:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            out = handle.name
        command = [sys.executable, "-m", "benchmarks.run", "--db", db, "--out", out]
        command += ["--quick"] if args.quick else []
        command += ["--smoke"] if args.smoke else []
        command += ["--keep"] if args.keep else []
        command += ["--only", args.only] if args.only else []
        print(f"== {db} ==", file=sys.stderr, flush=True)
        code = subprocess.call(command, cwd=HERE.parent)
        try:
            report["results"][db] = json.loads(Path(out).read_text() or "{}")
        except (OSError, ValueError):
            report["results"][db] = {"error": f"benchmarks.run exited with {code}"}
        Path(out).unlink(missing_ok=True)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render_table(report))
    print(f"\nWritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
