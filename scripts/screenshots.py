"""Write light and dark screenshots of the main pages into docs/screenshots/.

Serves the sandbox and Universal Webhook (it has every section), adds a few events, a
flow and an explorer call, then captures the sandbox shell framing the add-on on the
Overview, the flow editor and the Events list, in each theme.

    uv run python scripts/screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' harness

from playwright.sync_api import sync_playwright  # noqa: E402

from addon_core.flows.example import tag_meetings  # noqa: E402
from tests.browser.harness import CHROMIUM_FLAGS, Served, chromium_path, serve  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1000, "height": 680}


def populate(served: Served) -> str:
    """Events, a flow and an explorer call, so the pages show something; the flow's id."""
    for number in range(6):
        served.fire("NEW_PROJECT", {"id": f"p{number}", "name": f"Project {number}"})
    served.fire("NEW_TIME_ENTRY")
    flow = served.api("POST", "/api/flows", tag_meetings())
    served.api("POST", "/api/operations/getProjects/execute", {"params": {"page-size": 5}})
    return str(flow["id"])


def main() -> None:
    executable = chromium_path()
    if executable is None:
        raise SystemExit("Chromium is not installed (apt-get install chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as folder,
        serve("universal-webhook", Path(folder)) as served,
    ):
        flow_id = populate(served)
        shots = {"overview": "overview", "flow-editor": f"flows/{flow_id}", "events": "events"}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            for theme in ("DEFAULT", "DARK"):
                for name, section in shots.items():
                    # A fresh page each: only the hash differs, which would not reload.
                    context = browser.new_context(viewport=VIEWPORT)
                    page = context.new_page()
                    page.goto(served.shell_url(section, theme=theme))
                    frame = page.frame_locator("#addon")
                    frame.locator(f"body[data-ready='{section.split('/')[0]}']").wait_for()
                    page.wait_for_timeout(300)  # the chart and lists settle
                    suffix = "dark" if theme == "DARK" else "light"
                    path = OUT / f"{name}-{suffix}.png"
                    page.screenshot(path=str(path))
                    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)")
                    context.close()
            browser.close()


if __name__ == "__main__":
    main()
