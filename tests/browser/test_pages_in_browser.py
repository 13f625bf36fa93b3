"""Both add-ons' pages in Chromium, framed cross-origin by the sandbox's Clockify-like shell."""

from __future__ import annotations

from typing import Any

import httpx

from tests.browser.conftest import Console
from tests.browser.harness import Served

CORE = ["overview", "events", "flows", "explorer"]
EVENT = "NEW_PROJECT"


def sections(served: Served, *, writer: bool = True) -> list[str]:
    """The tabs an OWNER (or, with writer=False, a USER) sees."""
    own = ["endpoints", "coverage"] if served.app_name == "universal-webhook" else []
    return [*CORE, *own, *(["audit"] if writer else [])]


def open_shell(page: Any, served: Served, section: str = "overview", **query: Any) -> Any:
    """Open the shell on a section and wait until the framed page has shown it."""
    page.goto(served.shell_url(section, **query))
    frame = page.frame_locator("#addon")
    frame.locator(f"body[data-ready='{section.split('/')[0]}']").wait_for()
    return frame


def go(frame: Any, section: str) -> None:
    frame.locator(f".tabs a[data-section='{section}']").click()
    frame.locator(f"body[data-ready='{section}']").wait_for()


def test_each_page_loads_in_a_cross_origin_frame_without_console_errors(
    page: Any, served: Served, console: Console
) -> None:
    frame = open_shell(page, served)
    framed = next(f for f in page.frames if f.url.startswith(served.app_url))
    assert served.sandbox.url not in framed.url  # another origin than the shell's
    assert "auth_token" not in framed.evaluate("window.location.href")  # taken out of the URL
    assert frame.locator("#ov-installation").inner_text().count("ACTIVE") == 1
    for section in sections(served)[1:]:
        go(frame, section)
        assert frame.locator(f"#view-{section}").is_visible()
    go(frame, "overview")
    assert console.errors == []


def test_a_flow_is_created_in_the_editor_and_dry_run(
    page: Any, served: Served, console: Console
) -> None:
    frame = open_shell(page, served, "flows")
    frame.locator("#fl-new").click()
    frame.locator("#fl-editor-title", has_text="New flow").wait_for()
    frame.locator("#fl-name").fill("Read new projects")
    frame.locator(f"#fl-events label[data-type='{EVENT}'] input").check()
    frame.locator("#fl-add-rule").click()
    frame.locator("[data-field='conditions.rules[0].path']").fill("event.name")
    frame.locator("[data-field='conditions.rules[0].op']").select_option("starts_with")
    frame.locator("[data-field='conditions.rules[0].value']").fill("Big")
    frame.locator("#fl-op-search").fill("getProject")
    frame.locator("#fl-add-action").click()
    param = frame.locator("[data-field='actions[0].params.projectId']")
    param.fill("{{ event.id }}")
    frame.locator("#fl-dry-run").click()
    frame.locator("#fl-dry-box").wait_for()
    frame.locator("#fl-dry-event").fill('{"id": "p-1", "name": "Big launch"}')
    frame.locator("#fl-dry-go").click()
    result = frame.locator("#fl-dry-result")
    result.locator("text=The flow would run on this event.").wait_for()
    assert "/projects/p-1" in result.inner_text()
    flows = served.api("GET", "/api/flows")["items"]
    assert [flow["name"] for flow in flows] == ["Read new projects"]
    assert flows[0]["conditions"]["rules"] == [
        {"path": "event.name", "op": "starts_with", "value": "Big"}
    ]
    assert console.errors == []


def test_a_field_error_points_at_its_input(page: Any, served: Served, console: Console) -> None:
    frame = open_shell(page, served, "flows/new")
    frame.locator("#fl-editor").wait_for()
    frame.locator("#fl-save").click()  # no name, no event type
    frame.locator("#fl-errors li").first.wait_for()
    assert "name" in frame.locator("#fl-errors").inner_text()
    assert "invalid" in (frame.locator("#fl-name").get_attribute("class") or "")
    console.errors.clear()  # the 422 of the refused save is logged by the browser, as intended


def test_a_webhook_appears_in_the_live_event_list_without_a_reload(
    page: Any, served: Served, console: Console
) -> None:
    frame = open_shell(page, served, "events")
    frame.locator("#ev-live[data-state='on']").wait_for()
    rows = frame.locator(f"#ev-table tbody tr[data-type='{EVENT}']")
    before = rows.count()
    answer = served.fire(EVENT, {"id": "live-1", "name": "Arrived live"})
    assert answer.status_code == 200
    rows.nth(before).wait_for()
    rows.first.click()
    frame.locator("#ev-detail").wait_for()
    assert "Arrived live" in frame.locator("#ev-payload").inner_text()
    assert console.errors == []


def test_an_explorer_call_shows_the_answer_and_joins_the_history(
    page: Any, served: Served, console: Console
) -> None:
    frame = open_shell(page, served, "explorer")
    frame.locator("#ex-q").fill("getProjects")
    frame.locator("#ex-ops li[data-operation='getProjects']").click()
    frame.locator("#ex-run").click()
    frame.locator("#ex-answer-status", has_text="200").wait_for()
    assert frame.locator("#ex-answer-body").inner_text().lstrip().startswith("[")
    frame.locator("#ex-calls tbody tr td", has_text="getProjects").first.wait_for()
    assert console.errors == []


def test_the_token_is_renewed_through_the_shell_before_it_expires(
    page: Any, served: Served, console: Console
) -> None:
    # A 62-second token: the page asks for a new one 60 seconds before it expires.
    frame = open_shell(page, served, "overview", expiresIn=62)
    page.wait_for_function("window.sandboxRefreshes >= 1", timeout=20_000)
    go(frame, "flows")
    go(frame, "events")
    frame.locator("#ev-live[data-state='on']").wait_for()
    assert console.errors == []


def test_a_user_sees_no_write_control(page: Any, served: Served, console: Console) -> None:
    frame = open_shell(page, served, "overview", role="USER")
    assert frame.locator(".badge", has_text="read-only").count() == 1
    assert frame.locator(".tabs a[data-section='audit']").count() == 0
    for section in sections(served, writer=False):
        go(frame, section)
        assert frame.locator(".write:visible").count() == 0, section
        assert frame.locator("button.primary:visible").count() <= 1  # explorer's Run, or none
    for hidden in ("#fl-new", "#fl-save", "#ev-replay", "#ov-bootstrap-run", "#ep-form"):
        assert frame.locator(hidden).count() == 0
    assert console.errors == []


def test_a_gallery_flow_is_imported_from_the_flows_page_and_shows_in_the_audit(
    page: Any, served: Served, console: Console
) -> None:
    frame = open_shell(page, served, "flows")
    frame.locator("#fl-gallery-box summary").click()
    needing = frame.locator(".gallery-item[data-id='tag-matching-time-entries']")
    needing.locator("button").click()
    needing.locator(".errors li", has_text="the id of the tag to add").wait_for()
    assert [error for error in console.errors if "422" not in error] == []
    console.errors.clear()  # the browser logs the refused import's 422, as intended

    ready = frame.locator(".gallery-item[data-id='bill-like-the-project']")
    ready.locator("button").click()
    frame.locator("#fl-editor-title", has_text="Bill time entries like their project").wait_for()
    go(frame, "audit")
    frame.locator("#au-table tr[data-kind='flow.imported']").first.wait_for()
    assert console.errors == []


def test_the_page_answers_with_its_security_headers_and_refuses_other_framers(
    page: Any, served: Served
) -> None:
    with page.expect_response(lambda r: "/ui/sidebar" in r.url) as caught:
        open_shell(page, served)
    headers = caught.value.headers
    assert (
        "frame-ancestors https://*.clockify.me http://127.0.0.1:*"
        in headers["content-security-policy"]
    )
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    # A page of another origin than Clockify's and loopback may not frame the add-on.
    token = served.workspace.user_token()
    sidebar = f"{served.app_url}/ui/sidebar?auth_token={token}"
    page.route(
        "https://evil.example/",
        lambda route: route.fulfill(
            content_type="text/html", body=f'<iframe id="x" src="{sidebar}"></iframe>'
        ),
    )
    page.goto("https://evil.example/")
    page.wait_for_timeout(500)
    framed = [f for f in page.frames if f.url.startswith(served.app_url)]
    assert not framed or framed[0].evaluate(
        "document.body === null || !document.body.dataset.ready"
    )
    assert httpx.get(f"{served.app_url}/ui/sidebar").status_code == 401


def test_an_explorer_call_turns_into_a_flow_action(
    page: Any, served: Served, console: Console
) -> None:
    served.api("POST", "/api/operations/getTags/execute", {"params": {"page-size": 3}})
    frame = open_shell(page, served, "explorer")
    row = frame.locator("#ex-calls tbody tr", has_text="getTags").first
    row.get_by_role("button", name="Turn into a flow action").click()
    frame.locator("body[data-ready='flows']").wait_for()
    action = frame.locator("#fl-actions .action").first
    action.wait_for()
    assert "getTags" in action.inner_text()
    assert frame.locator("[data-field='actions[0].id']").input_value() == "get_tags"
    assert console.errors == []


def test_an_endpoint_is_created_tested_and_its_delivery_listed(
    page: Any, served: Served, console: Console
) -> None:
    if served.app_name != "universal-webhook":
        return  # only Universal Webhook has custom endpoints
    frame = open_shell(page, served, "endpoints")
    frame.locator("#ep-name").fill("Shop orders")
    frame.locator("#ep-form button[type='submit']").click()
    secret = frame.locator("#ep-secret-value")
    secret.wait_for()
    assert secret.inner_text().startswith("whsec_")
    assert "/webhooks/custom/" in frame.locator("#ep-secret-url").inner_text()
    frame.locator("#ep-table tbody tr", has_text="Shop orders").click()
    frame.locator("#ep-test").click()
    frame.locator("#ep-deliveries tbody td", has_text="custom").first.wait_for()
    go(frame, "coverage")
    assert frame.locator("#cv-table tbody tr").count() > 40
    assert console.errors == []


def test_every_page_fits_a_360_pixel_wide_frame(
    chromium: Any, served: Served, console: Console
) -> None:
    context = chromium.new_context(viewport={"width": 360, "height": 700})
    page = context.new_page()
    page.on("console", console.record)
    try:
        token = served.workspace.user_token()
        page.goto(f"{served.app_url}/ui/sidebar?auth_token={token}#overview")
        page.locator("body[data-ready='overview']").wait_for()
        for section in sections(served):
            page.locator(f".tabs a[data-section='{section}']").click()
            page.locator(f"body[data-ready='{section}']").wait_for()
            assert page.evaluate("document.documentElement.scrollWidth") <= 360, section
    finally:
        context.close()
    assert console.errors == []


def test_a_flow_shows_its_versions_diff_and_pauses(
    page: Any, served: Served, console: Console
) -> None:
    document = {
        "name": "Watch clients",
        "trigger": {"source": "clockify", "events": ["NEW_CLIENT"]},
    }
    created = served.api("POST", "/api/flows", document)
    served.api("PUT", f"/api/flows/{created['id']}", {**document, "name": "Watch new clients"})
    frame = open_shell(page, served, f"flows/{created['id']}")
    frame.locator("#fl-editor-title", has_text="Watch new clients (v2)").wait_for()
    frame.locator("#fl-versions li", has_text="v1").get_by_role("button").click()
    diff = frame.locator("#fl-diff")
    diff.locator(".del", has_text='"name": "Watch clients"').wait_for()
    assert diff.locator(".add", has_text='"name": "Watch new clients"').count() == 1
    frame.locator("#fl-toggle", has_text="Pause").click()
    frame.locator("#fl-toggle", has_text="Resume").wait_for()
    assert served.api("GET", f"/api/flows/{created['id']}")["enabled"] is False
    assert console.errors == []
