"""The Playground UI (admin server, /ui) in a real Chromium against a real tollgate: the
Routes, Config, Rate limits and MCP sessions pages, MCP over both transports to the official
Python SDK's server, and a chat through the fake OpenAI."""

import json
import os
import sys
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import OPENAI_KEY, PATIENCE, ROUTE, free_port, run_tollgate, wait_for

CHROMIUM = os.environ.get("TOLLGATE_CHROMIUM", "/usr/bin/chromium")
# Playwright's own browser download needs the network: use the distribution's Chromium.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
MCP_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mcp_server.py")
SLOW_MS = int(30_000 * PATIENCE)
CORS = (
    "cors: {allowOrigins: ['*'], allowHeaders: [mcp-protocol-version, content-type, cache-control, accept], "
    "allowMethods: [GET, POST, OPTIONS, DELETE]}"
)

MCP_ROUTE = """
    - name: demo-mcp
      matches: [{{path: {{pathPrefix: /}}}}]
      policies:
        {cors}
      backends:
      - mcp:
          targets:
          - name: demo
            stdio: {{cmd: {cmd}, args: [{script}]}}
"""


@pytest.fixture(scope="module")
def playground(fakes):
    """A tollgate serving an MCP route and an AI route (both with CORS) and the admin UI."""
    mcp_port, ai_port, admin = free_port(), free_port(), free_port()
    mcp = MCP_ROUTE.format(cors=CORS, cmd=json.dumps(sys.executable), script=json.dumps(MCP_SERVER))
    ai = ROUTE.format(
        name="openai", kind="openAI", model="gpt-4o-mini", addr=fakes["openai"], env="OPENAI_API_KEY"
    ).replace(
        "      policies:\n",
        f"      policies:\n        {CORS}\n"
        "        localRateLimit: [{maxTokens: 100, tokensPerFill: 100, fillInterval: 1m}]\n",
    )
    config = (
        f"binds:\n- port: {mcp_port}\n  listeners:\n  - routes:{mcp}"
        f"- port: {ai_port}\n  listeners:\n  - routes:{ai}"
    )
    with run_tollgate(config, env={"OPENAI_API_KEY": OPENAI_KEY}, admin=f"127.0.0.1:{admin}") as log:
        wait_for(f"http://127.0.0.1:{admin}/healthz", log)
        yield {
            "ui": f"http://127.0.0.1:{admin}/ui",
            "admin": f"http://127.0.0.1:{admin}",
            "mcp": f"http://127.0.0.1:{mcp_port}",
            "ai": f"http://127.0.0.1:{ai_port}",
            "log": log,
        }


@pytest.fixture(scope="module")
def browser():
    assert os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM}: tests/run.sh installs Debian's chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, playground):
    """A fresh tab on the UI; a script error anywhere fails the test."""
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(playground["admin"] + "/")
    yield page
    context.close()
    assert not errors, f"script errors in the page: {errors}"


def admin_json(playground, path):
    with urllib.request.urlopen(playground["admin"] + path, timeout=5) as r:
        return json.load(r)


def test_root_redirects_to_the_ui_and_routes_lists_both_routes(page, playground):
    assert page.url == playground["ui"]
    mcp = page.locator("#routes-table tr[data-route='demo-mcp']")
    expect(mcp).to_contain_text("mcp")
    expect(mcp).to_contain_text(playground["mcp"] + "/")
    ai = page.locator("#routes-table tr[data-route='openai']")
    expect(ai).to_have_attribute("data-kind", "ai")
    expect(ai).to_contain_text(playground["ai"] + "/openai")


def test_config_page_shows_the_applied_version(page, playground):
    version = admin_json(playground, "/api/config")["version"]
    page.click("#nav-config")
    expect(page.locator("#config-meta")).to_contain_text(version)
    expect(page.locator("#config-json")).to_contain_text('"name": "demo-mcp"')


def test_rate_limits_page_lists_the_bucket(page):
    page.click("#nav-ratelimits")
    row = page.locator("#ratelimits-table tbody tr", has_text="openai")
    expect(row).to_contain_text("requests")
    expect(row).to_contain_text("100")
    page.click("#ratelimits-refresh")
    expect(row).to_be_visible()


def has_sessions_api(playground):
    try:
        admin_json(playground, "/api/mcp/sessions")
    except urllib.error.HTTPError as e:
        assert e.code == 404, e
        return False
    return True


def test_sessions_page_renders(page, playground):
    page.click("#nav-sessions")
    if has_sessions_api(playground):
        expect(page.locator("#sessions-table tbody tr").first).to_be_visible()
        expect(page.locator("#sessions-error")).to_be_hidden()
    else:
        expect(page.locator("#sessions-error")).to_contain_text("404")


def test_mcp_unreachable_url_explains_cors(page):
    page.click("#nav-mcp")
    page.fill("#mcp-url", f"http://127.0.0.1:{free_port()}/mcp")
    page.click("#mcp-connect")
    expect(page.locator("#mcp-status")).to_have_text("error")
    expect(page.locator("#mcp-error")).to_contain_text("CORS policy")


def test_mcp_http_error_is_shown(page, playground):
    page.click("#nav-mcp")
    # The AI route rejects a JSON-RPC body as an LLM request, with CORS headers on the 400.
    page.fill("#mcp-url", playground["ai"] + "/openai/v1/chat/completions")
    page.click("#mcp-connect")
    expect(page.locator("#mcp-status")).to_have_text("error")
    expect(page.locator("#mcp-error")).to_contain_text("HTTP 400")


@pytest.mark.parametrize("transport", ["streamable", "sse"])
def test_mcp_playground_calls_a_tool(page, playground, transport):
    page.click("#nav-mcp")
    page.select_option("#mcp-route", "demo-mcp")
    page.select_option("#mcp-transport", transport)
    url = page.locator("#mcp-url")
    if transport == "sse":
        expect(url).to_have_value(playground["mcp"] + "/sse")
    else:
        expect(url).to_have_value(playground["mcp"] + "/mcp")
    page.click("#mcp-connect")
    expect(page.locator("#mcp-status")).to_have_text("connected", timeout=SLOW_MS)
    expect(page.locator("#mcp-tools [data-tool='echo']")).to_be_visible()
    page.click("#mcp-tools [data-tool='add']")
    form = page.locator("#mcp-tool-form")
    form.locator("[name='a']").fill("2")
    form.locator("[name='b']").fill("3")
    page.click("#mcp-call")
    expect(page.locator("#mcp-result")).to_have_text("5", timeout=SLOW_MS)
    expect(page.locator("#mcp-error")).to_be_hidden()

    if has_sessions_api(playground):
        page.click("#nav-sessions")
        expect(page.locator("#sessions-table tbody tr", has_text="demo-mcp").first).to_be_visible()
        page.click("#nav-mcp")

    page.click("#mcp-disconnect")
    expect(page.locator("#mcp-status")).to_have_text("disconnected")


def test_llm_playground_chats_through_the_ai_route(page, playground):
    page.click("#nav-llm")
    expect(page.locator("#llm-url")).to_have_value(playground["ai"] + "/openai/v1/chat/completions")
    expect(page.locator("#llm-model")).to_have_value("gpt-4o-mini")
    page.fill("#llm-message", "hello playground")
    page.click("#llm-send")
    expect(page.locator("#llm-answer")).to_have_text("openai says: hello playground", timeout=SLOW_MS)
    expect(page.locator("#llm-usage")).to_contain_text("tokens")
    expect(page.locator("#llm-error")).to_be_hidden()


def test_llm_errors_are_shown(page, playground):
    page.click("#nav-llm")
    page.fill("#llm-message", "to the wrong route")
    # The MCP route rejects a chat body as JSON-RPC, with CORS headers on the 400.
    page.fill("#llm-url", playground["mcp"] + "/mcp")
    page.click("#llm-send")
    expect(page.locator("#llm-error")).to_contain_text("HTTP 400")
    expect(page.locator("#llm-answer")).to_be_empty()


def test_with_an_admin_token_the_playground_sends_the_typed_token(browser, fakes):
    """Issue 12, finding 8: the admin API wants the token; the page's field supplies it."""
    port, admin = free_port(), free_port()
    config = f"binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends: [{{host: '{fakes['openai']}'}}]\n"
    env = {"TOLLGATE_ADMIN_TOKEN": "playground-token-1"}
    with run_tollgate(config, env=env, admin=f"127.0.0.1:{admin}") as log:
        wait_for(f"http://127.0.0.1:{admin}/healthz", log)
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{admin}/ui#config")
        expect(page.locator("#config-error")).to_contain_text("admin token")
        page.fill("#admin-token", "playground-token-1")
        page.locator("#admin-token").dispatch_event("change")
        expect(page.locator("#config-json")).to_contain_text('"binds"')
        context.close()


CLIENT_KEY = "tg-playground-client-key-7e3a"


def test_the_credential_field_reaches_api_key_protected_routes(browser, fakes):
    """Issue 14: the MCP and LLM pages send the typed credential as `Authorization: Bearer` to
    routes with `apiKey` (strict); it is kept in the page, never in the browser's storage."""
    mcp_port, ai_port, admin = free_port(), free_port(), free_port()
    cors = CORS.replace("allowHeaders: [", "allowHeaders: [authorization, ")
    protect = f"      policies:\n        apiKey: {{mode: strict, keys: [{{key: $CLIENT_KEY}}]}}\n        {cors}\n"
    mcp = MCP_ROUTE.format(cors="", cmd=json.dumps(sys.executable), script=json.dumps(MCP_SERVER))
    mcp = mcp.replace("      policies:\n        \n", protect)
    ai = ROUTE.format(
        name="openai", kind="openAI", model="gpt-4o-mini", addr=fakes["openai"], env="OPENAI_API_KEY"
    ).replace("      policies:\n", protect)
    config = (
        f"binds:\n- port: {mcp_port}\n  listeners:\n  - routes:{mcp}"
        f"- port: {ai_port}\n  listeners:\n  - routes:{ai}"
    )
    env = {"OPENAI_API_KEY": OPENAI_KEY, "CLIENT_KEY": CLIENT_KEY}
    with run_tollgate(config, env=env, admin=f"127.0.0.1:{admin}") as log:
        wait_for(f"http://127.0.0.1:{admin}/healthz", log)
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{admin}/ui#mcp")
        page.select_option("#mcp-route", "demo-mcp")
        page.click("#mcp-connect")
        expect(page.locator("#mcp-error")).to_contain_text("HTTP 401")
        page.fill("#mcp-key", CLIENT_KEY)
        page.click("#mcp-connect")
        expect(page.locator("#mcp-status")).to_have_text("connected", timeout=SLOW_MS)
        expect(page.locator("#mcp-tools [data-tool='echo']")).to_be_visible()
        page.select_option("#mcp-transport", "sse")
        page.click("#mcp-connect")
        expect(page.locator("#mcp-error")).to_contain_text("cannot send a credential")

        page.click("#nav-llm")
        page.fill("#llm-message", "hello with a key")
        page.click("#llm-send")
        expect(page.locator("#llm-error")).to_contain_text("HTTP 401")
        page.fill("#llm-key", CLIENT_KEY)
        page.click("#llm-send")
        expect(page.locator("#llm-answer")).to_have_text("openai says: hello with a key", timeout=SLOW_MS)

        stored = page.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
        assert CLIENT_KEY not in stored
        page.reload()
        page.click("#nav-llm")
        expect(page.locator("#llm-key")).to_have_value("")
        context.close()
        assert CLIENT_KEY not in open(log).read()
