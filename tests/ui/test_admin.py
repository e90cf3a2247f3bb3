"""The admin console in a real browser: sign in with the admin token, create a key (shown
once), use it in the playground, top it up, see its usage; the token goes to /admin only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.e2e import Server
from tests.ui.conftest import ADMIN_TOKEN, Guarded, sign_in, wait_js

pytestmark = pytest.mark.e2e


def admin_sign_in(page: Any) -> None:
    page.get_by_test_id("admin-token").fill(ADMIN_TOKEN)
    page.get_by_test_id("admin-sign-in").click()
    page.get_by_test_id("create-key").wait_for()


def key_row(page: Any, name: str) -> Any:
    return page.locator("[data-testid=keys] tbody tr").filter(has_text=name)


def test_create_a_key_use_it_top_up_and_see_usage(ui: Guarded, ui_server: Server) -> None:
    console = ui.open(ui_server, "/ui/admin")
    admin_sign_in(console)
    console.get_by_test_id("key-name").fill("browser-made")
    console.get_by_test_id("key-balance").fill("1.00")
    console.get_by_test_id("create-key").click()
    wait_js(console, "document.querySelector('[data-testid=new-key-value]').value")
    key = console.get_by_test_id("new-key-value").input_value()
    assert key.startswith("ig_")
    row = key_row(console, "browser-made")
    assert row.get_by_test_id("key-balance-cell").inner_text() == "1.00"

    playground = ui.open(ui_server, "/ui/")
    sign_in(playground, key)
    playground.select_option("[data-testid=ratio]", "1:1")
    playground.select_option("[data-testid=tier]", "1k")
    playground.get_by_test_id("prompt").fill("made with a console key")
    playground.get_by_test_id("generate").click()
    wait_js(playground, "document.querySelector('[data-testid=result-image]')?.naturalWidth")
    wait_js(playground, "document.querySelector('[data-testid=usage-balance]')"
                        "?.textContent.startsWith('0.96')")

    console.bring_to_front()
    row.get_by_test_id("edit-key").click()
    console.get_by_test_id("topup-amount").fill("5")
    console.get_by_test_id("topup").click()
    wait_js(console, "[...document.querySelectorAll('[data-testid=keys] tbody tr')]"
                     ".some(r => r.textContent.includes('browser-made')"
                     " && r.textContent.includes('5.96'))")
    console.get_by_role("button", name="Refresh").first.click()
    usage = console.locator("[data-testid=usage-table] tbody tr").filter(has_text="browser-made")
    usage.wait_for()
    assert usage.get_by_test_id("usage-images").inner_text() == "1"
    assert console.get_by_test_id("usage-bar").count() >= 1

    # The admin token went to /admin routes only; the key never to /admin.
    for request in ui.requests:
        auth = request.headers.get("authorization", "")
        path = request.url.split("://", 1)[1].split("/", 1)[1]
        if ADMIN_TOKEN in auth:
            assert path.startswith("admin/"), request.url
        if key in auth:
            assert path.startswith("v1/"), request.url
        assert ADMIN_TOKEN not in request.url and key not in request.url


def test_rotate_revoke_channels_and_deliveries(ui: Guarded, ui_server: Server) -> None:
    made = ui_server.create_key("to-revoke")
    console = ui.open(ui_server, "/ui/admin")
    admin_sign_in(console)
    row = key_row(console, "to-revoke")
    row.get_by_test_id("rotate-key").click()
    wait_js(console, "document.querySelector('[data-testid=new-key-value]').value")
    rotated = console.get_by_test_id("new-key-value").input_value()
    assert rotated.startswith("ig_") and rotated != made["key"]
    key_row(console, "to-revoke").get_by_test_id("revoke-key").click()
    wait_js(console, "[...document.querySelectorAll('[data-testid=keys] tbody tr')]"
                     ".some(r => r.textContent.includes('to-revoke')"
                     " && r.textContent.includes('revoked'))")
    with ui_server.client(rotated) as client:
        assert client.get("/v1/models").status_code == 401
    # The sandbox serves everything: no channels; no webhook deliveries yet.
    wait_js(console, "document.querySelector('#channels-status').textContent.includes('sandbox')")
    wait_js(console, "document.querySelector('#deliveries-status').textContent.length > 0")
    # The tasks browser lists tasks across keys.
    wait_js(console, "document.querySelectorAll('[data-testid=admin-tasks] tbody tr').length > 0"
                     " || document.querySelector('[data-testid=admin-tasks-status]')"
                     ".textContent === 'No tasks match.'")
    assert "not available" not in console.get_by_test_id("admin-tasks-status").inner_text()
    console.get_by_test_id("admin-sign-out").click()
    console.get_by_test_id("admin-token").wait_for()
    assert console.evaluate("sessionStorage.length") == 0


def test_a_wrong_token_is_refused(ui: Guarded, ui_server: Server) -> None:
    ui.expected_failures.append("/admin/keys")  # the 403 itself
    console = ui.open(ui_server, "/ui/admin")
    console.get_by_test_id("admin-token").fill("not-the-token")
    console.get_by_test_id("admin-sign-in").click()
    wait_js(console, "document.querySelector('#signin-status').textContent.includes('not')")
    assert console.evaluate("sessionStorage.length") == 0
    assert console.locator("#app").is_hidden()
