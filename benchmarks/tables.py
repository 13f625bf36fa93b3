"""The markdown tables of `docs/performance.md`, rendered from `run_all.py`'s results.

Each figure stands beside its reference (the bare framework measured in the same run, or
the physical limit: the sandbox's 50 requests per second per workspace) and the goal of
issue 14 (or of the issue that set it), with whether this run met it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Row = list[str]
#: Each database's figures (`-` for a benchmark without one), as `run_all.py` gathered them.
Runs = dict[str, dict[str, Any]]
DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "-": ""}


def table(header: list[str], rows: list[Row]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def number(value: Any, digits: int = 1, unit: str = "") -> str:
    if not isinstance(value, int | float):
        return "-"
    text = f"{value:,.{digits}f}".replace(",", " ")
    return f"{text}{unit}"


def verdict(value: Any, goal: float, *, at_most: bool) -> str:
    if not isinstance(value, int | float):
        return "-"
    met = value <= goal if at_most else value >= goal
    return "met" if met else "not met"


def per_run(
    runs: Runs,
    header: list[str],
    keys: Callable[[dict[str, Any]], Iterable[str]],
    row: Callable[[dict[str, Any], str], Row],
    *,
    database: bool = True,
) -> str:
    """A table with a row per run and key of its figures (`keys(figures)`): the run's
    database first (unless `database` is false), then `row(figures, key)`."""
    rows = [
        ([DATABASES[name]] if database else []) + row(figures, key)
        for name, figures in runs.items()
        for key in keys(figures)
    ]
    return table(header, rows)


def webhook_intake(runs: Runs) -> str:
    goals = {"identical": 0.8, "distinct": 0.5}
    labels = {"identical": "identical (dedupe)", "distinct": "distinct (persist)"}

    def row(figures: dict[str, Any], mode: str) -> Row:
        ratio, p99 = figures.get(f"{mode}.ratio"), figures.get(f"{mode}.p99_ms")
        return [
            labels[mode], number(figures.get(f"{mode}.bare_rps"), 0),
            number(figures.get(f"{mode}.app_rps"), 0), number(ratio, 2),
            f"≥ {goals[mode]} ({verdict(ratio, goals[mode], at_most=False)})",
            number(p99, 1, " ms"), f"≤ 15 ms ({verdict(p99, 15, at_most=True)})",
        ]  # fmt: skip

    header = ["database", "mode", "bare Litestar req/s", "Universal Webhook req/s", "ratio",
              "goal", "p99", "goal"]  # fmt: skip
    commits = [
        f"{DATABASES[name]}: {number(figures.get('distinct.commits_per_s'), 0)} commits/s, "
        f"{number(figures.get('distinct.deliveries_per_commit'), 1)} deliveries per commit"
        for name, figures in runs.items()
        if "distinct.commits_per_s" in figures
    ]
    return per_run(runs, header, lambda _: labels, row) + (
        "\n\nDistinct rounds, " + "; ".join(commits) + "." if commits else ""
    )


def _pacing_run(label: str) -> tuple[bool, int, int]:
    """(shared budget, workspaces, processes) of a pacing run label: `ws20`, `pg_ws40_x2`."""
    shared = label.startswith("pg_")
    workspaces, _, processes = label.removeprefix("pg_").removeprefix("ws").partition("_x")
    return shared, int(workspaces), int(processes or 1)


def pacing(runs: Runs) -> str:
    """A row per run: the share of 50 req/s per workspace against the 97 % goal, then what
    the run cost (CPU per call of the clients, the sandbox and the rest of the machine)
    and the calls/s the whole machine could carry at that cost against the calls/s needed."""

    def labels(figures: dict[str, Any]) -> list[str]:
        found = {key.split("_share_mean_pct")[0] for key in figures if "_share_mean_pct" in key}
        return sorted(found, key=_pacing_run)

    def row(figures: dict[str, Any], label: str) -> Row:
        def get(name: str, digits: int = 0) -> str:
            return number(figures.get(f"{label}_{name}"), digits)

        shared, workspaces, processes = _pacing_run(label)
        worst = figures.get(f"{label}_share_worst_pct")
        return [
            f"{workspaces} on {processes}" + (" (PostgreSQL budget)" if shared else ""),
            f"{get('share_mean_pct', 1)} % (worst {number(worst, 1)} %)",
            f"≥ 97 % ({verdict(worst, 97, at_most=False)})",
            get("calls_per_s_per_process"),
            f"{get('client_cpu_us_per_call')} / {get('sandbox_cpu_us_per_call')} / "
            f"{get('other_cpu_us_per_call')} µs",
            get("machine_cores_busy", 2),
            f"{get('machine_capacity_calls_per_s')} / {get('needed_calls_per_s')}",
            f"{get('peak_in_1s')}, {get('throttled')}",
            get("db_round_trips_per_call", 2),
        ]  # fmt: skip

    header = ["workspaces on processes", "share of 50 req/s", "goal", "calls/s per process",
              "CPU per call: clients / sandbox / rest", "cores busy (of 2)",
              "machine capacity / needed (calls/s)", "peak in 1 s, 429s",
              "DB round trips per call"]  # fmt: skip
    return per_run(runs, header, labels, row, database=False)


def flow_latency(runs: Runs) -> str:
    rows = []
    for figures in runs.values():
        for database in ("sqlite", "postgresql"):
            p50, p99 = figures.get(f"{database}.p50_ms"), figures.get(f"{database}.p99_ms")
            if p50 is None:
                continue
            met = "met" if verdict(p50, 15, at_most=True) == verdict(p99, 30, at_most=True) == (
                "met") else "not met"  # fmt: skip
            sustained = figures.get(f"{database}.sustained_flows_s")
            rows.append([
                DATABASES[database], number(p50, 1, " ms"),
                number(figures.get(f"{database}.p90_ms"), 1, " ms"), number(p99, 1, " ms"),
                f"p50 ≤ 15 ms, p99 ≤ 30 ms ({met})", number(sustained, 1, " flows/s"),
                f"25 flows/s ({number(sustained / 25 * 100 if sustained else None, 0)} %)",
            ])  # fmt: skip
    header = ["database", "p50", "p90", "p99", "goal", "sustained", "limit (50 req/s, 2 calls)"]
    return table(header, rows)


def footprint(runs: Runs) -> str:
    def row(figures: dict[str, Any], app: str) -> Row:
        ready, rss = figures.get(f"{app}.ready_s"), figures.get(f"{app}.rss_mb")
        return [
            app, number(ready, 2, " s"), f"≤ 1.0 s ({verdict(ready, 1.0, at_most=True)})",
            f"{number(rss, 0, ' MB')} after {number(figures.get('minutes'), 1)} min",
            number(figures.get(f"{app}.rss_peak_mb"), 0, " MB"),
            f"≤ 120 MB ({verdict(rss, 120, at_most=True)})",
        ]  # fmt: skip

    header = ["database", "app", "/readyz green after start", "goal", "RSS", "peak", "goal"]
    return per_run(runs, header, lambda _: ("universal-webhook", "api-studio"), row)


def bootstrap(runs: Runs) -> str:
    def scales(figures: dict[str, Any]) -> list[str]:
        return sorted({key.split(".")[0] for key in figures if key.startswith("scale")})

    def row(figures: dict[str, Any], scale: str) -> Row:
        ratio = figures.get(f"{scale}.ratio")
        return [
            scale.removeprefix("scale"),
            f"{figures.get(f'{scale}.pages')} ({figures.get(f'{scale}.sent')})",
            number(figures.get(f"{scale}.seconds"), 2, " s"),
            number(figures.get(f"{scale}.floor_s"), 2, " s"), number(ratio, 2, "x"),
            f"≤ 1.1x ({verdict(ratio, 1.1, at_most=True)})",
        ]  # fmt: skip

    header = ["database", "seeded scale", "pages needed (sent)", "median", "floor (50 req/s)",
              "ratio", "goal"]  # fmt: skip
    return per_run(runs, header, scales, row)


def page_load(runs: Runs) -> str:
    labels = {"overview": "Overview", "flows_new": "Flow editor (new flow)"}

    def row(figures: dict[str, Any], page: str) -> Row:
        p50 = figures.get(f"{page}.p50_ms")
        return [
            labels[page], number(p50, 0, " ms"),
            number(figures.get(f"{page}.p95_ms"), 0, " ms"),
            number(figures.get(f"{page}.min_ms"), 0, " ms"),
            f"< 300 ms ({verdict(p50, 300, at_most=True)})",
        ]  # fmt: skip

    header = ["page", "p50", "p95", "min", "goal (issue 11)"]
    return per_run(runs, header, lambda _: labels, row, database=False)


def json_depth(runs: Runs) -> str:
    def bodies(figures: dict[str, Any]) -> list[str]:
        return sorted({key.rsplit(".", 1)[0] for key in figures})

    def row(figures: dict[str, Any], body: str) -> Row:
        return [
            body.replace("_", " "), number(figures.get(f"{body}.bytes"), 0),
            number(figures.get(f"{body}.check_us"), 1, " µs"),
            number(figures.get(f"{body}.decode_us"), 1, " µs"),
        ]  # fmt: skip

    header = ["body", "bytes", "depth check", "msgspec decode (reference)"]
    return per_run(runs, header, bodies, row, database=False)


def figures_list(runs: Runs) -> str:
    """Every figure by name, for benchmarks without a table of their own."""
    rows = [
        [DATABASES[database], name, number(value, 2) if isinstance(value, float) else str(value)]
        for database, figures in runs.items()
        for name, value in sorted(figures.items())
    ]
    if set(runs) == {"-"}:
        return table(["figure", "value"], [row[1:] for row in rows])
    return table(["database", "figure", "value"], rows)


SECTIONS: list[tuple[str, str, Callable[[Runs], str]]] = [
    ("webhook_intake", "Webhook intake", webhook_intake),
    ("pacing", "Clockify pacing (goal: ≥ 1 000 paced calls/s per process; 20 saturated "
     "workspaces ≥ 97 % of 50 req/s each, 40 over two processes)", pacing),
    ("flow_latency", "Flows: webhook 2xx to the first Clockify request", flow_latency),
    ("footprint", "Footprint", footprint),
    ("bootstrap", "Bootstrap", bootstrap),
    ("catalogue", "Operation catalogue", figures_list),
    ("json_depth", "The cost of the input bounds", json_depth),
    ("page_load", "Pages: time to interactive", page_load),
]  # fmt: skip


def render(results: dict[str, Any]) -> str:
    """The markdown for every benchmark that ran, with the skipped and failed ones named."""
    quick = " (--quick: short runs, indicative figures only)" if results.get("quick") else ""
    load = results.get("machine", {}).get("load_average_at_start")
    parts = [f"Run of {results.get('started')}{quick}; load average at the start {load}.\n"]
    for name, title, render_section in SECTIONS:
        runs = results["runs"].get(name)
        if not runs:
            continue
        parts.append(f"### {title} — `benchmarks/{name}.py`\n")
        done = {db: entry["figures"] for db, entry in runs.items() if entry["status"] == "ok"}
        if done:
            parts.append(render_section(done) + "\n")
        for database, entry in runs.items():
            if entry["status"] != "ok":
                where = f" on {DATABASES[database]}" if DATABASES[database] else ""
                reason = entry.get("reason") or f"exit {entry.get('exit')}, see {entry.get('log')}"
                parts.append(f"{entry['status']}{where}: {reason}\n")
    return "\n".join(parts)
