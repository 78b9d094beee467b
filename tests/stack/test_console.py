"""The operator console in a real browser: Debian's chromium, driven by Playwright.

One signed-in browser goes through the console as an operator would: deploy an agent from an
uploaded module, submit a task and watch it finish live, edit a policy with a mistake and see
the validator's error beside the text, simulate it, look at decisions, the audit trail, search
and health, then sign out. Screenshots of the main pages go to ``test-artifacts/console/``.
Expectations auto-wait (Playwright's ``expect``); nothing here times anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from kernel.shipped import example_wasm
from tests.conftest import ROOT
from tests.stack.identity import admin_client
from tests.stack.test_tenants_api import new_tenant_id

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = ROOT / "test-artifacts" / "console"
WAIT = {"Prefer": "wait=20"}
ECHO = example_wasm("echo")
ECHO_DIGEST = "sha256:" + hashlib.sha256(ECHO).hexdigest()
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)  # auto-waiting, not a timing assertion

# Skipped only on a developer's machine without chromium; in CI (which installs it) a missing
# browser fails the run instead of hiding it.
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (make test installs it when run as root)",
)


def manifest(name: str, description: str) -> dict[str, Any]:
    return {
        "agent_name": name,
        "version": "1.0.0",
        "abi": "reactor",
        "module_digest": ECHO_DIGEST,
        "quotas": {"fuel": 10_000_000, "memory_mb": 16, "timeout_ms": 2000},
        "description": description,
    }


@pytest.fixture(scope="module")
def tenant(system: str) -> str:
    """A tenant with the echo module and one agent deployed through the API."""
    tenant_id = new_tenant_id()
    t = f"/v1/tenants/{tenant_id}"
    with admin_client(system) as api:
        created = api.post("/v1/tenants", json={"tenant_id": tenant_id, "display_name": "C"},
                           headers=WAIT)  # fmt: skip
        assert created.status_code == 201, created.text
        uploaded = api.post(f"{t}/modules", content=ECHO,
                            headers={"content-type": "application/wasm"})  # fmt: skip
        assert uploaded.status_code in (200, 201), uploaded.text
        body = {"manifest": manifest("parrot", "Repeats every word it hears, like a parrot.")}
        deployed = api.post(f"{t}/agents", json=body, headers=WAIT)
        assert deployed.status_code in (200, 201), deployed.text
    return tenant_id


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Requests:
    """The hosts the console's pages asked for (it fetches nothing from the internet); any
    request that would leave the machine is refused (the provider's form names a web font)."""

    def __init__(self, console_origin: str) -> None:
        self.origin = console_origin
        self.hosts: set[str] = set()

    def route(self, route: Any) -> None:
        host = urlparse(route.request.url).hostname or ""
        try:
            from_console = route.request.frame.url.startswith(self.origin + "/console")
        except Exception:  # a request of no frame (a service worker): not the console's
            from_console = False
        if from_console:
            self.hosts.add(host)
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            route.abort()


def sign_in(
    page: Any, system: str, user: str, claims: dict[str, Any], at: str = "/console/"
) -> None:
    page.goto(system + at)
    page.get_by_role("link", name="Sign in").click()
    # The local provider's interactive form: a user name and the claims to sign in with.
    page.locator("input[name=username]").fill(user)
    page.locator("textarea[name=claims]").fill(json.dumps(claims))
    page.locator("input[type=submit]").click()
    expect(page.locator("#who-name")).to_contain_text(user)


@pytest.fixture(scope="module")
def console(browser: Any, system: str, tenant: str) -> Iterator[tuple[Any, Requests]]:
    """A page signed in as the tenant's admin."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.set_default_timeout(TIMEOUT_MS)
    seen = Requests(system)
    context.route("**/*", seen.route)
    page = context.new_page()
    sign_in(page, system, "ana", {"tenant": tenant, "roles": ["admin"]})
    yield page, seen
    context.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_signing_in_lands_on_the_agents_page(console: tuple[Any, Requests], tenant: str) -> None:
    page, seen = console
    expect(page).to_have_url(re.compile(r"/console/agents$"))
    expect(page.get_by_role("heading", name="Agents")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="parrot")
    expect(row).to_contain_text("deployed")
    expect(page.locator("#tenant-picker")).to_have_value(tenant)
    assert seen.hosts <= {"127.0.0.1", "localhost"}, seen.hosts
    shot(page, "agents")


def test_deploying_an_agent_from_an_uploaded_module(
    console: tuple[Any, Requests], tmp_path: Path
) -> None:
    page, _ = console
    page.get_by_role("link", name="Deploy an agent").click()
    expect(page.get_by_role("heading", name="Deploy an agent")).to_be_visible()
    # Bytes that are not WASM: wasmtime's refusal shows beside the file input.
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not a module")
    page.get_by_label("WASM module").set_input_files(str(junk))
    expect(page.get_by_label("WASM module")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#module-status")).to_contain_text("not stored")

    module = tmp_path / "echo.wasm"
    module.write_bytes(ECHO)
    page.get_by_label("WASM module").set_input_files(str(module))
    expect(page.get_by_label("Module digest")).to_have_value(ECHO_DIGEST)
    page.get_by_label("Agent name").fill("Bad Name")
    page.get_by_label("Description").fill("Echoes back what it is given.")
    page.get_by_role("button", name="Deploy").click()
    # The API's field error sits next to the field; what was typed is still there.
    expect(page.get_by_label("Agent name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Description")).to_have_value("Echoes back what it is given.")
    shot(page, "deploy-error")

    page.get_by_label("Agent name").fill("echo")
    page.get_by_role("button", name="Deploy").click()
    expect(page).to_have_url(re.compile(r"/console/agents/echo$"))
    expect(page.get_by_role("heading", name="Agent echo")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("deployed")
    expect(page.locator("pre")).to_contain_text(ECHO_DIGEST)
    shot(page, "agent")


def test_submitting_a_task_and_watching_it_finish_live(console: tuple[Any, Requests]) -> None:
    page, _ = console
    page.get_by_role("link", name="Tasks", exact=True).click()
    expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()
    form = page.get_by_role("form", name="Submit a task")
    form.get_by_label("Agent", exact=True).select_option("parrot")
    form.get_by_label("Input").fill("{not json")
    form.get_by_role("button", name="Submit task").click()
    expect(form.get_by_label("Input")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Input")).to_have_value("{not json")

    form.get_by_label("Input").fill('{"text": "hello from the console"}')
    form.get_by_role("button", name="Submit task").click()
    expect(page).to_have_url(re.compile(r"/console/tasks/[^/]+$"))
    # Live: the events arrive over SSE until the final one; then the output and artifacts.
    expect(page.locator("#live-state")).to_have_text("(finished)")
    expect(page.locator("#events")).to_contain_text("TaskSucceeded")
    expect(page.locator("#task-state")).to_contain_text("succeeded")
    expect(page.locator("#artifact-output")).to_contain_text("hello from the console")
    expect(page.get_by_role("link", name="Download output")).to_be_visible()
    shot(page, "task")

    page.get_by_role("link", name="← Tasks").click()
    page.get_by_role("search").get_by_label("Status").select_option("succeeded")
    page.get_by_role("search").get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"status=succeeded"))
    expect(page.get_by_role("row").nth(1)).to_contain_text("succeeded")
    shot(page, "tasks")


def test_cancelling_a_queued_task(browser: Any, system: str) -> None:
    """One task a minute: the second waits in the queue, so it is there to cancel."""
    tenant_id = new_tenant_id()
    t = f"/v1/tenants/{tenant_id}"
    with admin_client(system) as api:
        body = {"tenant_id": tenant_id, "display_name": "Q", "limits": {"tasks_per_minute": 1}}
        assert api.post("/v1/tenants", json=body, headers=WAIT).status_code == 201
        uploaded = api.post(f"{t}/modules", content=ECHO,
                            headers={"content-type": "application/wasm"})  # fmt: skip
        assert uploaded.status_code in (200, 201), uploaded.text
        deployed = api.post(f"{t}/agents", json={"manifest": manifest("parrot", "P")}, headers=WAIT)
        assert deployed.status_code == 201, deployed.text
        for task_id in ("first", "queued"):
            task = {"task_id": task_id, "agent_name": "parrot", "input": "{}"}
            assert api.post(f"{t}/tasks", json=task, headers=WAIT).status_code == 201
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", Requests(system).route)
    page = context.new_page()
    try:
        sign_in(page, system, "bo", {"tenant": tenant_id, "roles": ["operator"]})
        page.goto(system + "/console/tasks/queued")
        form = page.get_by_role("form", name="Cancel the task")
        form.get_by_label("Reason").fill("not needed after all")
        form.get_by_role("button", name="Cancel task").click()
        expect(page.locator("#task-state")).to_contain_text("cancelled")
        expect(page.locator("#events")).to_contain_text("TaskCancelled")
        expect(page.get_by_role("form", name="Cancel the task")).to_have_count(0)
        shot(page, "task-cancelled")
    finally:
        context.close()


def test_a_draft_survives_a_reload_and_the_keyboard_submits(
    console: tuple[Any, Requests],
) -> None:
    page, _ = console
    page.get_by_role("link", name="Tasks", exact=True).click()
    form = page.get_by_role("form", name="Submit a task")
    form.get_by_label("Input").fill('{"text": "typed, not yet sent"}')
    page.reload()
    form = page.get_by_role("form", name="Submit a task")
    expect(form.get_by_label("Input")).to_have_value('{"text": "typed, not yet sent"}')
    form.get_by_label("Input").fill("")

    # The keyboard alone: focus the search field, type, Enter.
    page.get_by_role("link", name="Search").focus()
    page.keyboard.press("Enter")
    field = page.get_by_label("Search for")
    field.focus()
    page.keyboard.type("parrot")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/search\?q=parrot$"))
    expect(page.locator("#results li").first).to_be_visible()  # a hit, or "No match."


def test_a_policy_mistake_is_shown_inline_then_simulated_and_saved(
    console: tuple[Any, Requests],
) -> None:
    page, _ = console
    page.get_by_role("link", name="Policies").click()
    page.get_by_role("link", name="New policy").click()
    page.get_by_label("Policy id").fill("no-parrot")
    cedar = page.get_by_label("Cedar")
    # A mistake: an attribute the schema does not have.
    cedar.fill(
        'forbid(principal, action == Action::"SubmitTask", resource) '
        'when { resource.no_such_attribute == "parrot" };'
    )
    page.get_by_role("button", name="Save policy").click()
    expect(cedar).to_have_attribute("aria-invalid", "true")
    error = page.locator(f"#{cedar.get_attribute('aria-describedby')}")
    expect(error).to_contain_text("invalid Cedar")
    shot(page, "policy-error")

    # What-if before saving: the task submitted to parrot would now be denied.
    cedar.fill(
        'forbid(principal, action == Action::"SubmitTask", resource) '
        'when { resource.agent_name == "parrot" };'
    )
    page.get_by_role("button", name="Simulate").click()
    expect(cedar).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#simulation")).to_contain_text("would change")
    expect(page.locator("#simulation")).to_contain_text("deny")
    shot(page, "policy-simulation")

    page.get_by_role("button", name="Save policy").click()
    expect(page).to_have_url(re.compile(r"/console/policies/no-parrot$"))
    expect(page.get_by_text("active")).to_be_visible()
    page.get_by_role("link", name="← Policies").click()
    expect(page.get_by_role("row").filter(has_text="no-parrot")).to_contain_text("active")


def test_decisions_and_the_audit_trail(console: tuple[Any, Requests]) -> None:
    page, _ = console
    page.get_by_role("link", name="Decisions").click()
    expect(page.get_by_role("row").filter(has_text="SubmitTask").first).to_contain_text("allow")
    shot(page, "decisions")
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("row").filter(has_text="PolicyPut").first).to_contain_text("ana")
    page.get_by_role("search").get_by_label("Kind").select_option("login")
    page.get_by_role("search").get_by_role("button", name="Apply").click()
    expect(page.get_by_role("row").filter(has_text="SignedIn").first).to_contain_text("ana")
    shot(page, "audit")


def test_search_finds_an_agent_by_meaning(
    console: tuple[Any, Requests], system: str, tenant: str
) -> None:
    with admin_client(system) as api:  # the vector projection is eventually consistent
        deadline = time.monotonic() + 60
        while True:
            found = api.get(f"/v1/tenants/{tenant}/search", params={"q": "bird", "kind": "agent"})
            assert found.status_code == 200, found.text
            if any(i["id"] == "parrot" for i in found.json()["items"]):
                break
            assert time.monotonic() < deadline, "the agent was never indexed"
            time.sleep(0.5)
    page, _ = console
    page.get_by_role("link", name="Search").click()
    page.get_by_label("Search for").fill("a bird that repeats words")
    page.get_by_label("In", exact=True).select_option("agent")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#results")).to_contain_text("agent parrot")
    shot(page, "search")
    page.get_by_label("Search for").fill("   ")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_label("Search for")).to_have_attribute("aria-invalid", "true")


def test_the_health_page_shows_services_lag_and_dead_letters(
    console: tuple[Any, Requests],
) -> None:
    page, _ = console
    page.get_by_role("link", name="Health").click()
    for service in ("kafka", "postgres", "registry", "redis", "s3", "search"):
        expect(page.get_by_role("row").filter(has_text=service).first).to_contain_text("ok")
    expect(page.locator("#dead-letters")).to_contain_text(re.compile(r"\d+"))
    expect(page.get_by_role("row").filter(has_text="aion-kernel")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="core")).to_be_visible()
    shot(page, "health")


def test_a_platform_admin_sees_and_creates_tenants(browser: Any, system: str) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", Requests(system).route)
    page = context.new_page()
    try:
        sign_in(page, system, "root", {"roles": ["platform-admin"]})
        expect(page).to_have_url(re.compile(r"/console/tenants$"))
        new = new_tenant_id()
        page.get_by_label("Tenant id").fill(new)
        page.get_by_label("Display name").fill("Made in the console")
        page.get_by_role("button", name="Create tenant").click()
        row = page.get_by_role("row").filter(has_text=new)
        expect(row).to_contain_text("active")
        shot(page, "tenants")
        row.get_by_role("button", name=f"Open {new}").click()
        expect(page).to_have_url(re.compile(r"/console/agents$"))
        expect(page.locator("#tenant-picker")).to_have_value(new)
        expect(page.get_by_text("No agent yet")).to_be_visible()
    finally:
        context.close()


def test_signing_out_ends_the_session(console: tuple[Any, Requests], system: str) -> None:
    page, _ = console
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.goto(system + "/console/tasks")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def test_a_cookie_request_that_changes_state_needs_the_console_header(
    system: str, tenant: str
) -> None:
    """The CSRF defence: the session cookie alone does not submit a task."""
    with httpx.Client(base_url=system, timeout=30) as browser:
        start = browser.get("/auth/login", params={"return_to": "/console/"})
        signed = httpx.post(
            start.headers["location"],
            data={"username": "cy", "claims": json.dumps({"tenant": tenant, "roles": ["admin"]})},
            timeout=30,
        )
        assert browser.get(signed.headers["location"]).status_code == 303
        body = {"agent_name": "parrot", "input": "{}"}
        refused = browser.post(f"/v1/tenants/{tenant}/tasks", json=body)
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("/csrf")
        assert browser.get(f"/v1/tenants/{tenant}/tasks").status_code == 200  # reads need none
        accepted = browser.post(
            f"/v1/tenants/{tenant}/tasks", json=body, headers={"X-Aion-Console": "1"}
        )
        assert accepted.status_code == 202, accepted.text


def test_console_files_are_served_with_a_strict_content_security_policy(system: str) -> None:
    page = httpx.get(f"{system}/console/tasks/anything", timeout=10)
    assert page.status_code == 200 and "<main" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = httpx.get(f"{system}/console/app.js", timeout=10)
    assert script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{system}/console/nothing.js", timeout=10).status_code == 404
    assert httpx.get(f"{system}/console/..%2fapp.py", timeout=10).status_code == 404
