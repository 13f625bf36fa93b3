"""Benchmark: time to interactive of the Overview and the flow editor in Chromium.

Serves the sandbox and one add-on (a real `clockify-addons serve` process, SQLite), then
loads the sidebar page cold (a new browser context each time, so nothing is cached) on
`#overview` and on `#flows/new`, and reads when the page had shown the section with its
data: `performance.now()` at that moment, from the start of the page's navigation. Goal
(issue 11): under 300 ms on this machine.

    uv run python benchmarks/page_load.py [--app api-studio] [--loads 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' harness

from figures import Figures, add_json_option, percentile, slug, write_json
from playwright.sync_api import sync_playwright

from tests.browser.harness import CHROMIUM_FLAGS, Served, chromium_path, serve


def measure(browser: Any, served: Served, section: str, loads: int) -> list[float]:
    figures = []
    for _ in range(loads + 1):  # the first load warms the server's caches and is dropped
        context = browser.new_context(viewport={"width": 1100, "height": 800})
        page = context.new_page()
        token = served.workspace.user_token()
        page.goto(f"{served.app_url}/ui/sidebar?auth_token={token}#{section}")
        page.locator("body[data-ready-ms]").wait_for()
        figures.append(float(page.locator("body").get_attribute("data-ready-ms") or "nan"))
        context.close()
    return figures[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app", default="api-studio", choices=["api-studio", "universal-webhook"])
    parser.add_argument("--loads", type=int, default=15)
    add_json_option(parser)
    args = parser.parse_args()
    results: Figures = {}
    executable = chromium_path()
    if executable is None:
        raise SystemExit("Chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as folder, serve(args.app, Path(folder)) as served:
        for number in range(5):
            served.fire("NEW_PROJECT", {"id": f"p{number}", "name": f"Project {number}"})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            print(f"{args.app}: time to interactive, {args.loads} cold loads each (ms)")
            for section in ("overview", "flows/new"):
                figures = sorted(measure(browser, served, section, args.loads))
                p95 = percentile(figures, 0.95)
                print(
                    f"  {section:<10} p50 {statistics.median(figures):6.0f}  "
                    f"p95 {p95:6.0f}  min {figures[0]:6.0f}  max {figures[-1]:6.0f}"
                )
                name = slug(section)
                results[f"{name}.p50_ms"] = statistics.median(figures)
                results[f"{name}.p95_ms"] = p95
                results[f"{name}.min_ms"] = figures[0]
            browser.close()
    write_json(args.json, results)


if __name__ == "__main__":
    main()
