"""The official MCP Python SDK (client and server) through the gateway: Streamable HTTP with the
initialize handshake and with the 2026 auto negotiation, legacy SSE, two multiplexed targets,
the SDK's HTTP servers as remote targets, and the walkthrough's seed `mcp-endpoint.yaml` with
only its stdio command replaced."""

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from mcp.client import Client
from mcp.client.sse import sse_client

from conftest import PATIENCE, free_port, run_tollgate

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mcp_server.py")
SEED_DIR = os.environ.get("TOLLGATE_SEED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared/seed/configs"))
SEED = os.path.join(SEED_DIR, "mcp-endpoint.yaml")


def target(name):
    return f"          - name: {name}\n            stdio: {{cmd: {json.dumps(sys.executable)}, args: [{json.dumps(SERVER)}]}}\n"


@pytest.fixture(scope="module")
def mcp_gateway():
    port = free_port()
    config = (
        f"binds:\n- port: {port}\n  listeners:\n  - routes:\n"
        "    - name: single\n      matches: [{path: {pathPrefix: /single}}]\n"
        f"      backends:\n      - mcp:\n          targets:\n{target('demo')}"
        "    - name: multi\n      matches: [{path: {pathPrefix: /multi}}]\n"
        f"      backends:\n      - mcp:\n          targets:\n{target('demo')}{target('other')}"
    )
    with run_tollgate(config):
        yield f"http://127.0.0.1:{port}"


def text_of(result):
    return result.content[0].text


async def add_and_echo(client, prefix=""):
    tools = sorted(t.name for t in (await client.list_tools()).tools)
    result = await client.call_tool(prefix + "add", {"a": 2, "b": 3})
    echoed = await client.call_tool(prefix + "echo", {"text": "through the gateway"})
    return tools, text_of(result), text_of(echoed)


def test_streamable_http_with_the_initialize_handshake(mcp_gateway):
    async def run():
        async with Client(mcp_gateway + "/single/mcp", mode="legacy") as c:
            return await add_and_echo(c)

    assert asyncio.run(run()) == (["add", "echo"], "5", "through the gateway")


def test_streamable_http_with_auto_negotiation_falls_back_cleanly(mcp_gateway):
    async def run():
        async with Client(mcp_gateway + "/single/mcp") as c:
            return c.protocol_version, await add_and_echo(c)

    version, answers = asyncio.run(run())
    assert version in ("2025-11-25", "2025-06-18"), version
    assert answers == (["add", "echo"], "5", "through the gateway")


def test_legacy_sse(mcp_gateway):
    async def run():
        async with Client(sse_client(mcp_gateway + "/single/sse")) as c:
            return await add_and_echo(c)

    assert asyncio.run(run()) == (["add", "echo"], "5", "through the gateway")


def test_two_targets_are_multiplexed(mcp_gateway):
    async def run():
        async with Client(mcp_gateway + "/multi/mcp") as c:
            tools, added, echoed = await add_and_echo(c, prefix="other_")
            demo = await c.call_tool("demo_add", {"a": 40, "b": 2})
            return tools, added, echoed, text_of(demo)

    tools, added, echoed, demo = asyncio.run(run())
    assert tools == ["demo_add", "demo_echo", "other_add", "other_echo"]
    assert (added, echoed, demo) == ("5", "through the gateway", "42")


def test_the_seed_mcp_endpoint_config(tmp_path):
    seed = open(SEED).read()
    config = re.sub(r"cmd: uvx\n(\s+)args: .*", lambda m: f"cmd: {json.dumps(sys.executable)}\n{m.group(1)}args: [{json.dumps(SERVER)}]", seed)
    assert config != seed and "uvx" not in config
    port = int(re.search(r"port: (\d+)", config).group(1))

    async def run():
        async with Client(f"http://127.0.0.1:{port}/mcp") as c:
            return await add_and_echo(c)

    with run_tollgate(config):
        assert asyncio.run(run()) == (["add", "echo"], "5", "through the gateway")


@contextlib.contextmanager
def http_server(transport):
    """The SDK server serving `transport` over HTTP; yields its port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, SERVER, transport, str(port)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 15 * PATIENCE
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers
        except Exception:
            assert time.time() < deadline and proc.poll() is None, f"{transport} server did not start"
            time.sleep(0.05)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_sdk_http_servers_as_remote_targets():
    with http_server("streamable-http") as http_port, http_server("sse") as sse_port:
        port = free_port()
        config = (
            f"binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n"
            f"          targets:\n"
            f"          - name: http\n            mcp: {{host: \"127.0.0.1:{http_port}\"}}\n"
            f"          - name: legacy\n            sse: {{host: \"127.0.0.1:{sse_port}\"}}\n"
        )

        async def run():
            async with Client(f"http://127.0.0.1:{port}/mcp") as c:
                tools = sorted(t.name for t in (await c.list_tools()).tools)
                added = await c.call_tool("http_add", {"a": 20, "b": 22})
                echoed = await c.call_tool("legacy_echo", {"text": "over legacy SSE"})
                return tools, text_of(added), text_of(echoed)

        with run_tollgate(config):
            tools, added, echoed = asyncio.run(run())
    assert tools == ["http_add", "http_echo", "legacy_add", "legacy_echo"]
    assert (added, echoed) == ("42", "over legacy SSE")
