"""The playground in a real browser: sign in, generate, edit with a painted mask, follow the
task on its event stream (and by polling when there is none), cancel, history, sign out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import pyvips

from tests.support.e2e import Server
from tests.support.images import flat_png
from tests.ui.conftest import Guarded, sign_in, wait_js

pytestmark = pytest.mark.e2e

SHOWN = "[...document.querySelectorAll('[data-testid=result-image]')].filter(i => i.naturalWidth)"


def shown_sizes(page: Any, count: int = 1) -> list[list[int]]:
    wait_js(page, f"{SHOWN}.length >= {count}")
    sizes: list[list[int]] = page.evaluate(f"{SHOWN}.map(i => [i.naturalWidth, i.naturalHeight])")
    return sizes


def posted(ui: Guarded, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.post_data) for r in ui.requests
            if r.method == "POST" and r.url.split("?")[0].endswith(path)]


def test_sign_in_and_generate_16_9_at_2k(ui: Guarded, ui_server: Server) -> None:
    page = ui.open(ui_server, "/")
    assert page.url == ui_server.base_url + "/ui/"
    sign_in(page, ui_server.key)
    page.select_option("[data-testid=model]", "gpt-image-2")
    page.select_option("[data-testid=ratio]", "16:9")
    page.select_option("[data-testid=tier]", "2k")
    assert page.get_by_test_id("resolved-size").inner_text() == "2048×1152"
    page.get_by_test_id("prompt").fill("a lighthouse at dusk")
    page.get_by_test_id("generate").click()
    assert shown_sizes(page) == [[2048, 1152]]
    sent = posted(ui, "/v1/images/generations")
    assert sent[-1]["size"] == "16:9" and sent[-1]["resolution"] == "2k"
    assert page.get_by_test_id("progress").get_attribute("value") == "100"
    assert page.get_by_test_id("task-status").inner_text() == "succeeded"
    # Followed on the event stream (not polling), which brought the partial previews.
    assert page.get_by_test_id("follow-mode").inner_text().startswith("Following")
    assert page.get_by_test_id("partial-image").count() >= 1
    # The key never appears in a URL.
    assert not [r.url for r in ui.requests if ui_server.key in r.url]
    # Balance and usage reflect the image.
    page.get_by_role("button", name="Refresh").first.click()
    wait_js(page,
        "document.querySelector('[data-testid=usage-images]')?.textContent === '1'")


def test_falls_back_to_polling_without_an_event_stream(ui: Guarded, ui_server: Server) -> None:
    ui.expected_failures.append("/events")
    page = ui.open(ui_server, "/ui/")
    page.route("**/v1/tasks/*/events", lambda route: route.fulfill(
        status=404, content_type="application/json",
        body=json.dumps({"error": {"message": "Unknown path", "type": "invalid_request_error",
                                   "param": None, "code": "unknown_url"}})))
    sign_in(page, ui_server.key)
    page.select_option("[data-testid=ratio]", "1:1")
    page.select_option("[data-testid=tier]", "1k")
    page.get_by_test_id("prompt").fill("polled")
    page.get_by_test_id("generate").click()
    assert shown_sizes(page) == [[1024, 1024]]
    assert "Polling" in page.get_by_test_id("follow-mode").inner_text()


def test_paint_a_mask_on_an_uploaded_reference_and_edit(ui: Guarded, ui_server: Server
                                                        ) -> None:
    page = ui.open(ui_server, "/ui/")
    sign_in(page, ui_server.key)
    page.select_option("[data-testid=model]", "gpt-image-2")
    page.get_by_test_id("ref-file").set_input_files(
        files=[{"name": "ref.png", "mimeType": "image/png", "buffer": flat_png(640, 480)}])
    page.get_by_test_id("reference-image").wait_for()
    page.get_by_test_id("paint-mask").click()
    canvas = page.get_by_test_id("mask-canvas")
    canvas.wait_for()
    wait_js(page, "document.querySelector('[data-testid=mask-canvas]').width === 640")
    box = canvas.bounding_box()
    assert box is not None
    # One stroke across the middle with the mouse.
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.up()
    page.get_by_test_id("prompt").fill("put a red boat in the painted area")
    page.get_by_test_id("generate").click()
    shown_sizes(page)
    [body] = posted(ui, "/v1/images/edits")
    assert len(body["image_urls"]) == 1 and body["image_urls"][0].startswith("data:image/png")
    mask = pyvips.Image.new_from_buffer(base64.b64decode(body["mask_url"].split(",", 1)[1]),
                                        "")
    assert (mask.width, mask.height, mask.bands) == (640, 480, 4)
    # Painted: transparent (the area to edit); elsewhere: opaque.
    assert mask.getpoint(320, 240)[3] == 0 and mask.getpoint(10, 10)[3] == 255
    assert page.get_by_test_id("task-status").inner_text() == "succeeded"


def test_cancel_a_slow_task_and_find_it_in_history(ui: Guarded, slow_server: Server) -> None:
    page = ui.open(slow_server, "/ui/")
    sign_in(page, slow_server.key)
    page.get_by_test_id("prompt").fill("this takes a minute")
    page.get_by_test_id("generate").click()
    wait_js(page,
        "['queued', 'in_progress'].includes(document.querySelector('[data-testid=task-status]')"
        ".textContent) && document.querySelector('[data-testid=task-id]').textContent")
    task_id = page.get_by_test_id("task-id").inner_text()
    page.get_by_test_id("cancel").click()
    wait_js(page,
        "document.querySelector('[data-testid=task-status]').textContent === 'cancelled'")
    with slow_server.client() as client:
        assert client.get(f"/v1/tasks/{task_id}").json()["status"] == "cancelled"
    row = page.locator(f"[data-testid=history] tr[data-task-id='{task_id}']")
    row.wait_for()
    assert row.get_by_test_id("history-status").inner_text() == "cancelled"


def test_history_pages_through_the_keys_tasks(ui: Guarded, ui_server: Server) -> None:
    key = ui_server.create_key("history")["key"]
    with ui_server.client(key) as client:
        made = [client.post("/v1/images/generations?async=true",
                            json={"prompt": f"p{i}", "model": "gpt-image-2"}).json()["task_id"]
                for i in range(12)]
    page = ui.open(ui_server, "/ui/")
    sign_in(page, key)
    rows = page.locator("[data-testid=history] tbody tr")
    wait_js(page, "document.querySelectorAll('[data-testid=history] tbody tr')"
                           ".length === 10")
    page.get_by_role("button", name="Older").click()
    wait_js(page, "document.querySelectorAll('[data-testid=history] tbody tr')"
                           ".length === 12")
    shown = [rows.nth(i).get_attribute("data-task-id") for i in range(12)]
    assert shown == made[::-1]  # newest first, no repeats across pages


def test_sign_out_clears_storage_and_bad_key_is_refused(ui: Guarded, ui_server: Server
                                                       ) -> None:
    ui.expected_failures.append("/v1/models")  # the refused key's 401
    page = ui.open(ui_server, "/ui/")
    page.get_by_test_id("api-key").fill("ig_not_a_real_key_000000000000")
    page.get_by_test_id("sign-in").click()
    wait_js(page, "document.querySelector('#signin-status').textContent.length > 0")
    assert page.evaluate("sessionStorage.length") == 0
    sign_in(page, ui_server.key)
    assert page.evaluate("sessionStorage.getItem('imagegate.apiKey')") == ui_server.key
    page.get_by_test_id("sign-out").click()
    page.get_by_test_id("api-key").wait_for()
    assert page.evaluate("sessionStorage.length") == 0


def test_narrow_screen_dark_theme_and_keyboard(browser: Any, ui_server: Server) -> None:
    ui = Guarded(browser, width=375, height=800)
    try:
        page = ui.open(ui_server, "/ui/")
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")  # the theme toggle
        page.keyboard.press("Enter")
        assert page.evaluate("document.documentElement.dataset.theme") in ("dark", "light")
        page.get_by_test_id("api-key").focus()
        page.keyboard.type(ui_server.key)
        page.keyboard.press("Enter")
        page.get_by_test_id("prompt").wait_for()
        # Nothing wider than the screen, once the history (a wide table) has loaded too.
        wait_js(page, "document.querySelectorAll('#history-rows tr').length > 0")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        ui.check()
    finally:
        ui.context.close()
