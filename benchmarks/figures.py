"""The `--json PATH` output every benchmark shares: a flat dict of named figures.

`benchmarks/run_all.py` reads these files; names are dotted (`sqlite.p50_ms`), values
are numbers or short strings, and units are in the names. The percentiles of those
figures are taken one way, here.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

Figures = dict[str, float | int | str]


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON"
    )


def write_json(path: Path | None, figures: Mapping[str, float | int | str]) -> None:
    """Write `figures` to `path` (nothing when no path was given)."""
    if path is not None:
        path.write_text(json.dumps(dict(figures), indent=2, sort_keys=True) + "\n")


def slug(label: str) -> str:
    """A figure name from a printed label: `1 MiB, many objects` -> `1_mib_many_objects`."""
    return "_".join("".join(c if c.isalnum() else " " for c in label.lower()).split())


def percentile(values: list[float], fraction: float) -> float:
    """The value `fraction` of the way through the sorted `values` (NaN for none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
