"""Benchmark: loading Clockify's OpenAPI document and validating calls against the catalogue.

Prints the load time (median of 5) of the full document and of the compact catalogue shipped
in the package (what a fresh install reads), the first validation of an operation (its validators
are built then) and the steady cost per call, for a query-only GET and a POST with a body.
Goals from issue 3: load well under a second, validation in microseconds.

    uv run python benchmarks/catalogue.py [path/to/openapi.json] [--calls 10000]

Without a path: $CLOCKIFY_REFERENCE_DIR/openapi.json, else ../shared/clockify/openapi.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from figures import Figures, add_json_option, slug, write_json

from addon_core.clockify.catalogue import Catalogue, load_catalogue
from addon_core.clockify.shipped_data import CATALOGUE_FILE, SHIPPED_DIR
from addon_core.settings import reference_dir

REPO = Path(__file__).resolve().parent.parent
WORKSPACE = "64a687e29ae1f428e7ebe303"

#: (label, operationId, params, body): typical explorer calls, as a user would type them.
CALLS: list[tuple[str, str, dict[str, Any], Any]] = [
    (
        "GET getProjects (query only)",
        "getProjects",
        {"page": "2", "page-size": "50", "archived": "false", "client-status": "ACTIVE"},
        None,
    ),
    (
        "POST createTimeEntry (body)",
        "createTimeEntry",
        {},
        {
            "start": "2026-01-05T09:00:00Z",
            "end": "2026-01-05T10:30:00Z",
            "description": "Planning meeting",
            "projectId": "5b1e6b160cb8793dd93ec120",
            "tagIds": ["5e7b2b1c1d5e2a0d6a3e1f21", "5e7b2b1c1d5e2a0d6a3e1f22"],
            "customFields": [{"customFieldId": "44a687e29ae1f428e7ebe305", "value": "Manila"}],
            "billable": True,
            "type": "REGULAR",
        },
    ),
    (
        "POST generateDetailedReport (nested body)",
        "generateDetailedReport",
        {},
        {
            "dateRangeStart": "2026-01-01T00:00:00Z",
            "dateRangeEnd": "2026-01-31T23:59:59.999Z",
            "detailedFilter": {"page": 1, "pageSize": 50, "sortColumn": "DATE"},
            "exportType": "JSON",
            "users": {"ids": ["5a0ab5acb07987125438b60f"], "contains": "CONTAINS"},
        },
    ),
]


def document_path(argument: str | None) -> Path:
    """Pick the document from the argument, the reference folder or the sibling checkout."""
    if argument:
        path = Path(argument)
    else:
        folder = reference_dir() or REPO.parent / "shared" / "clockify"
        path = folder / "openapi.json"
    if not path.is_file():
        sys.exit(
            f"Clockify's OpenAPI document is not at {path}: pass its path, or set "
            "CLOCKIFY_REFERENCE_DIR to the folder holding openapi.json"
        )
    return path


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def per_call_microseconds(action: Callable[[], object], calls: int) -> float:
    """Median of 5 rounds of the mean cost of one call, after a warm-up."""
    for _ in range(min(calls, 1000)):
        action()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            action()
        rounds.append((time.perf_counter() - start) / calls)
    return median(rounds) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", nargs="?", help="path to Clockify's openapi.json")
    parser.add_argument("--calls", type=int, default=10_000, help="calls per timing round")
    add_json_option(parser)
    args = parser.parse_args()
    path = document_path(args.document)
    figures: Figures = {}

    shipped = SHIPPED_DIR / CATALOGUE_FILE
    for label, source in (("document", path), ("shipped", shipped)):
        loads = [seconds(lambda source=source: load_catalogue(source)) for _ in range(5)]
        print(
            f"{label}: {source} ({source.stat().st_size / 1e6:.2f} MB): load median "
            f"{median(loads) * 1e3:.1f} ms, max {max(loads) * 1e3:.1f} ms (5 runs)"
        )
        figures[f"{label}.load_ms"] = median(loads) * 1e3
        figures[f"{label}.mb"] = source.stat().st_size / 1e6

    catalogue: Catalogue = load_catalogue(path)
    print(f"operations: {len(catalogue)}, component schemas: {len(catalogue.definitions)}")
    print(f"\n{'call':44} {'first (build)':>14} {'per call':>10}  issues")
    for label, operation_id, params, body in CALLS:
        bound = catalogue.bind(operation_id, params, WORKSPACE)

        def validate(
            operation_id: str = operation_id, bound: dict[str, Any] = bound, body: Any = body
        ) -> object:
            return catalogue.validate(operation_id, bound, body, workspace_id=WORKSPACE)

        first = seconds(validate)
        steady = per_call_microseconds(validate, args.calls)
        issues = catalogue.validate(operation_id, bound, body, workspace_id=WORKSPACE)
        print(f"{label:44} {first * 1e3:11.2f} ms {steady:7.1f} µs  {len(issues)}")
        figures[f"{slug(label)}.first_ms"] = first * 1e3
        figures[f"{slug(label)}.per_call_us"] = steady
    write_json(args.json, figures)
    print(f"\n(pid {os.getpid()}, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
