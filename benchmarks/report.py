"""The results table: one row per figure, one column per database, and the target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _get(result: dict, path: str) -> Any:
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f} ms"


def _s(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.2f} s"


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _n(value: float | None, unit: str = "") -> str:
    return "" if value is None else f"{value:,.0f}{unit}"


Row = tuple[str, str, Callable[[dict], str]]


def _problem(result: dict, section: str) -> str | None:
    part = result.get(section)
    if part is None:
        return "not run"
    if isinstance(part, dict) and "error" in part:
        return "ERROR: " + part["error"][:60]
    if isinstance(part, dict) and "skipped" in part:
        return "skipped: " + part["skipped"][:60]
    return None


def _rows() -> list[tuple[str, str, str, Callable[[dict], str], str]]:
    """(section, figure, target, formatter, key of the result it reads)."""
    rows: list[tuple[str, str, str, Callable[[dict], str], str]] = []

    def add(
        section: str, figure: str, target: str, fmt: Callable[[dict], str], key: str = ""
    ) -> None:
        rows.append((section, figure, target, fmt, key or section))

    sw = "sweep"
    add(
        sw,
        "due invoices among all",
        "",
        lambda r: f"{_n(_get(r, 'sweep.due'))} / {_n(_get(r, 'size.total'))}",
    )
    add(sw, "set-based sweep: time", "", lambda r: _s(_get(r, "sweep.seconds")))
    add(
        sw,
        "set-based sweep: invoices/s",
        "",
        lambda r: _n(_get(r, "sweep.invoices_per_second"), "/s"),
    )
    add(
        sw,
        "queries at N/10 | at N",
        "independent of N (+1 batch const.)",
        lambda r: f"{_n(_get(r, 'sweep.small_queries'))} | {_n(_get(r, 'sweep.queries'))}",
    )
    add(
        sw,
        "queries per batch at N/10 | at N",
        "equal",
        lambda r: (
            f"{_get(r, 'sweep.small_queries_per_batch') or 0:.1f} | "
            f"{_get(r, 'sweep.queries_per_batch') or 0:.1f}"
        ),
    )
    add(
        sw,
        "naive loop (sample, extrapolated)",
        "",
        lambda r: (
            f"{_s(_get(r, 'sweep.loop_seconds_extrapolated'))} "
            f"({_n(_get(r, 'sweep.loop_sample'))} measured, "
            f"{_get(r, 'sweep.loop_queries_per_invoice') or 0:.1f} q/inv)"
        ),
    )
    add(
        sw,
        "speedup vs loop",
        ">= 30x",
        lambda r: (
            _x(_get(r, "sweep.speedup"))
            + (
                f" (pairs {', '.join(f'{x:.0f}' for x in _get(r, 'sweep.speedup_each'))})"
                if _get(r, "sweep.speedup_each")
                else ""
            )
        ),
    )

    def sweep_split(r: dict) -> str:
        split = _get(r, "sweep.split") or {}
        total = split.get("seconds") or 0
        if not total:
            return ""
        parts = ("update", "log", "rollup", "other", "commit", "rest")
        return ", ".join(f"{part} {split.get(part, 0) / total:.0%}" for part in parts)

    add(sw, "where one sweep's time goes", "reported", sweep_split)
    add(
        sw,
        "invoice indexes a sweep updates / all",
        "only those plans use",
        lambda r: (
            f"{sum(1 for i in _get(r, 'sweep.indexes') or [] if i.get('updated'))} / "
            f"{len(_get(r, 'sweep.indexes') or [])}"
        ),
    )

    for page in ("global", "filtered", "filtered_site", "search"):
        base = f"listing.{page}"
        add(
            "listing",
            f"{page}: time 100 -> N invoices (rows)",
            "",
            lambda r, b=base: (
                f"{_ms(_get(r, b + '.small_seconds'))} ({_n(_get(r, b + '.small_rows'))}) -> "
                f"{_ms(_get(r, b + '.large_seconds'))} ({_n(_get(r, b + '.large_rows'))})"
            ),
        )
        add(
            "listing",
            f"{page}: time ratio",
            "<= 3x" if page != "filtered_site" else "(2 -> 50 rows)",
            lambda r, b=base: _x(_get(r, b + ".time_ratio")),
        )
        add(
            "listing",
            f"{page}: queries 100 | N",
            "equal",
            lambda r, b=base: (
                f"{_n(_get(r, b + '.small_queries'))} | {_n(_get(r, b + '.large_queries'))}"
            ),
        )
        add(
            "listing",
            f"{page}: slowest query at N",
            "",
            lambda r, b=base: (
                f"{_ms(_get(r, b + '.large_slowest_query_seconds'))} "
                f"{(_get(r, b + '.large_slowest_query') or '')[:22]}"
            ),
        )

    wh = "webhook"
    add(
        wh,
        "webhook view events/s (p50 / p99)",
        "",
        lambda r: (
            f"{_n(_get(r, 'webhook.webhook.per_second'), '/s')} "
            f"({_get(r, 'webhook.webhook.p50_ms') or 0:.0f} / {_get(r, 'webhook.webhook.p99_ms') or 0:.0f} ms)"
        ),
    )
    add(
        wh,
        "bare insert view/s (p50 / p99)",
        "",
        lambda r: (
            f"{_n(_get(r, 'webhook.baseline.per_second'), '/s')} "
            f"({_get(r, 'webhook.baseline.p50_ms') or 0:.0f} / {_get(r, 'webhook.baseline.p99_ms') or 0:.0f} ms)"
        ),
    )
    add(
        wh,
        "webhook / baseline",
        ">= 80%",
        lambda r: (
            f"{(_get(r, 'webhook.ratio') or 0) * 100:.0f}%"
            + (
                f" (runs {', '.join(f'{x * 100:.0f}' for x in _get(r, 'webhook.ratio_each'))})"
                if _get(r, "webhook.ratio_each")
                else ""
            )
        ),
    )

    def cpu_split(r: dict) -> str:
        """``web 617 | 453, database 177 | 97, load generator 220 | 208`` (app | bare)."""
        parts = []
        for side, label in (
            ("web", "web"),
            ("database", "database"),
            ("load_generator", "loadgen"),
        ):
            app = _get(r, f"webhook.webhook.cpu_us_per_request.{side}")
            bare = _get(r, f"webhook.baseline.cpu_us_per_request.{side}")
            if app is None or bare is None:
                continue  # SQLite: the database's work is the web workers'
            parts.append(f"{label} {app:,.0f} | {bare:,.0f}")
        return ", ".join(parts)

    add(wh, "CPU us per request, webhook | bare view", "reported", cpu_split)
    add(
        wh,
        "queries per event: view | worker",
        "",
        lambda r: (
            f"{_n(_get(r, 'webhook.queries.view'))} | {_n(_get(r, 'webhook.queries.worker'))}"
        ),
    )
    add(wh, "Stripe API calls", "0", lambda r: _n(_get(r, "webhook.stripe_calls")))
    add(
        wh,
        "all 200, all kept; applied once (events applied)",
        "yes",
        lambda r: (
            f"{_get(r, 'webhook.all_ok')}, {_get(r, 'webhook.all_stored')}; "
            f"{_get(r, 'webhook.all_applied')} ({_n(_get(r, 'webhook.applied_events'))})"
        ),
    )
    add(
        wh,
        "duplicates x10: events/s",
        "same rate",
        lambda r: _n(_get(r, "webhook.duplicates.per_second"), "/s"),
    )
    add(
        wh,
        "deliveries queued / expected (tasks)",
        "equal",
        lambda r: (
            f"{_n(_get(r, 'webhook.events_queued'))} / {_n(_get(r, 'webhook.tasks_expected'))}"
            f" ({_n(_get(r, 'webhook.tasks_queued'))} tasks)"
        ),
    )
    add(
        wh,
        "stored -> applied p50 / p99 at 70% of intake (sent/s, applied/s)",
        "reported",
        lambda r: (
            f"{_get(r, 'webhook.latency.p50_ms') or 0:,.0f} / "
            f"{_get(r, 'webhook.latency.p99_ms') or 0:,.0f} ms "
            f"({_n(_get(r, 'webhook.latency.rate_sent'), '/s')}, "
            f"{_n(_get(r, 'webhook.latency.applied_per_second'), '/s')})"
        ),
    )
    add(
        wh,
        "apply CPU ms/event: app | queue (1 qcluster)",
        "",
        lambda r: (
            f"{_get(r, 'webhook.apply.one_cluster.app_cpu_ms_per_event') or 0:.2f} | "
            f"{_get(r, 'webhook.apply.one_cluster.queue_cpu_ms_per_event') or 0:.2f} "
            f"({_n(_get(r, 'webhook.apply.one_cluster.tasks'))} tasks)"
        ),
    )
    add(
        wh,
        "apply: queue overhead / app work",
        "<= 50%",
        lambda r: f"{(_get(r, 'webhook.apply.one_cluster.queue_over_app') or 0) * 100:.0f}%",
    )
    add(
        wh,
        "duplicates: status changes / invoices",
        "exactly 1 each",
        lambda r: (
            f"{_n(_get(r, 'webhook.duplicates.status_changes_logged'))} / "
            f"{_n(_get(r, 'webhook.duplicates.distinct'))}"
        ),
    )

    add("paylink", "pay link (open session): time", "", lambda r: _ms(_get(r, "paylink.seconds")))
    add(
        "paylink",
        "bare redirect view: time",
        "",
        lambda r: _ms(_get(r, "paylink.baseline_seconds")),
    )
    add("paylink", "pay link / bare redirect", "", lambda r: _x(_get(r, "paylink.time_ratio")))
    add(
        "paylink",
        "queries (pay link | bare)",
        "",
        lambda r: f"{_n(_get(r, 'paylink.queries'))} | {_n(_get(r, 'paylink.baseline_queries'))}",
    )
    add("paylink", "Stripe API calls", "0", lambda r: _n(_get(r, "paylink.stripe_calls")))

    for key, label in (("one_site", "1 site"), ("many_sites", "100 sites at once")):
        base = f"email.{key}"
        add(
            "email",
            f"{label}: reuse | per message | bound (msg/s)",
            "",
            lambda r, base=base: (
                f"{_n(_get(r, base + '.reuse_per_second'))} | "
                f"{_n(_get(r, base + '.per_connection_per_second'))} | "
                f"{_n(_get(r, base + '.bound.reuse_per_second'))} / "
                f"{_n(_get(r, base + '.bound.per_connection_per_second'))}"
            ),
        )
        add(
            "email",
            f"{label}: reuse speedup (bound)",
            "",
            lambda r, base=base: (
                f"{_x(_get(r, base + '.ratio'))} ({_x(_get(r, base + '.bound.ratio'))})"
            ),
        )
        add(
            "email",
            f"{label}: reuse / its bound",
            ">= 80%",
            lambda r, base=base: f"{(_get(r, base + '.reuse_of_bound') or 0) * 100:.0f}%",
        )
        sender = "sender" if key == "one_site" else "senders"
        add(
            "email",
            f"{label}: CPU ms per message, {sender} | sink",
            "",
            lambda r, base=base, sender=sender: (
                f"{_get(r, base + '.cpu_ms_per_message.' + sender) or 0:.2f} | "
                f"{_get(r, base + '.cpu_ms_per_message.sink') or 0:.2f}"
                + (
                    f" ({_get(r, base + '.cores_needed_at_bound'):.2f} cores at the bound)"
                    if _get(r, base + ".cores_needed_at_bound")
                    else ""
                )
            ),
        )
    add(
        "email",
        "100 sites at once, one-line messages: reuse / its bound",
        "",
        lambda r: f"{(_get(r, 'email.many_sites_one_line.reuse_of_bound') or 0) * 100:.0f}%",
    )
    add(
        "email",
        "100 sites at once: sender processes x sites each",
        "",
        lambda r: (
            f"{_n(_get(r, 'email.many_sites.sender_processes'))} x "
            f"{_n((_get(r, 'email.many_sites.sites') or 0) / (_get(r, 'email.many_sites.sender_processes') or 1))}"
        ),
    )
    add(
        "email",
        "STARTTLS, delay per reply; all delivered",
        "yes",
        lambda r: f"{_get(r, 'email.delay_ms') or 0:.0f} ms; {_get(r, 'email.all_delivered')}",
    )

    add(
        "scale_out",
        "webhook events applied: 1 -> 2 qclusters",
        "> 1x",
        lambda r: (
            f"{_n(_get(r, 'webhook.apply.one_cluster.per_second'), '/s')} -> "
            f"{_n(_get(r, 'webhook.apply.two_clusters.per_second'), '/s')} "
            f"({_x(_get(r, 'webhook.apply.ratio'))})"
        ),
        "webhook",
    )
    add(
        "scale_out",
        "webhook tasks per cluster (2 clusters)",
        "both work",
        lambda r: " + ".join(
            str(n) for n in _get(r, "webhook.apply.two_clusters.tasks_per_worker")
        ),
        "webhook",
    )
    add(
        "scale_out",
        "email tasks: 1 -> 2 qclusters",
        "> 1x",
        lambda r: (
            f"{_n(_get(r, 'email_scale_out.one_cluster_per_second'), '/s')} -> "
            f"{_n(_get(r, 'email_scale_out.two_clusters_per_second'), '/s')} "
            f"({_x(_get(r, 'email_scale_out.ratio'))})"
        ),
        "email_scale_out",
    )
    add(
        "scale_out",
        "email tasks per cluster (2 clusters)",
        "both work",
        lambda r: " + ".join(str(n) for n in _get(r, "email_scale_out.tasks_per_worker")),
        "email_scale_out",
    )
    for name in (
        "dashboard_page",
        "panel_alone",
        "report_revenue",
        "report_time_to_pay",
        "report_expiry",
        "listing_totals_all",
        "listing_totals_paid",
        "listing_paid_page",
    ):
        base = f"overview.figures.{name}"
        add(
            "overview",
            f"{name}: time 100 -> N over 10,000 sites",
            "",
            lambda r, b=base: (
                f"{_ms(_get(r, b + '.small_seconds'))} -> {_ms(_get(r, b + '.large_seconds'))}"
            ),
        )
        add(
            "overview",
            f"{name}: time ratio",
            "<= 3x",
            lambda r, b=base: _x(_get(r, b + ".time_ratio")),
        )
        add(
            "overview",
            f"{name}: queries 100 | N",
            "equal",
            lambda r, b=base: (
                f"{_n(_get(r, b + '.small_queries'))} | {_n(_get(r, b + '.large_queries'))}"
            ),
        )
    add(
        "overview",
        "rollup rows at N (load + rebuild)",
        "",
        lambda r: (
            f"{_n(_get(r, 'overview.rollup_rows'))} ({_s(_get(r, 'overview.load_large_seconds'))})"
        ),
    )
    for key in ("sweep", "listing", "webhook", "paylink", "email", "overview"):
        add(
            "load",
            f"{key}: 1-min load average, start -> end",
            "",
            lambda r, key=key: " -> ".join(str(v) for v in _get(r, key + ".load_average") or []),
            key,
        )
    return rows


def _kind_of_run(report: dict) -> str:
    if report.get("smoke"):
        return "smoke run (tiny data: the figures are not measurements)"
    return "quick run" if report.get("quick") else "full run"


def render_table(report: dict) -> str:
    results: dict = report.get("results", {})
    dbs = list(results)
    header = ["benchmark", "figure", "target", *dbs]
    lines: list[list[str]] = []
    for section, figure, target, fmt, key in _rows():
        cells = []
        for db in dbs:
            result = results[db]
            problem = _problem(result, key)
            if problem:
                cells.append(problem)
                continue
            try:
                cells.append(fmt(result))
            except Exception as exc:  # a figure missing from an older results file
                cells.append(f"? ({type(exc).__name__})")
        lines.append([section, figure, target, *cells])
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]

    def fmt_row(row: list[str]) -> str:
        return " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))

    out = [fmt_row(header), "-+-".join("-" * w for w in widths)]
    previous = None
    for row in lines:
        if previous is not None and row[0] != previous:
            out.append("-+-".join("-" * w for w in widths))
        previous = row[0]
        out.append(fmt_row(row))
    machine = report.get("machine", {})
    out.append("")
    out.append(
        f"{machine.get('cpus')} CPUs ({machine.get('cpu_model')}), Python {machine.get('python')}; "
        f"load average at start {machine.get('load_average_at_start')}; "
        f"{_kind_of_run(report)} in {report.get('total_seconds')} s"
    )
    for db, result in results.items():
        data = result.get("data", {})
        out.append(f"{db}: {result.get('database_version', '')}; data build {data}")
        if result.get("sweep", {}).get("entry"):
            out.append(
                f"  sweep timed via {result['sweep']['entry']}; the loop was measured on "
                f"{result['sweep'].get('loop_sample')} invoices and extrapolated to "
                f"{result['sweep'].get('due'):,}"
            )
    return "\n".join(out)
