"""agentgateway's `authorization` example (tests/fixtures/agentgateway/authorization), unchanged
but for its two ports, driven by the official MCP Python SDK: the proxy runs from the example's
directory so `./manifests/jwt/pub-key` resolves, and the upstream is the SDK server with the
example's tools `echo`, `add` and `printEnv`."""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import httpx2 as httpx
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import PATIENCE, free_port, run_tollgate

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "../fixtures/agentgateway/authorization")
SERVER = os.path.join(HERE, "authz_mcp_server.py")


def token(name):
    with open(os.path.join(EXAMPLE, "manifests/jwt", name)) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example's gateway and its upstream; yields (URL, path of the upstream's log)."""
    log = str(tmp_path_factory.mktemp("upstream") / "seen.jsonl")
    upstream_port, port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, SERVER, str(upstream_port), log])
    deadline = time.time() + 15 * PATIENCE
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{upstream_port}/", timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers
        except Exception:
            assert time.time() < deadline and proc.poll() is None, "the upstream did not start"
            time.sleep(0.05)
    with open(os.path.join(EXAMPLE, "config.yaml")) as f:
        text = f.read()
    config = text.replace("port: 3000", f"port: {port}").replace("localhost:3001", f"localhost:{upstream_port}")
    assert config.count(str(port)) == 1 and config.count(str(upstream_port)) == 1
    try:
        with run_tollgate(config, cwd=EXAMPLE):
            yield f"http://127.0.0.1:{port}/mcp", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def seen(log):
    with open(log) as f:
        return [json.loads(line) for line in f]


def session(url, bearer=None):
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return Client(streamable_http_client(url, http_client=httpx.AsyncClient(headers=headers)))


def tools_and_calls(url, bearer, calls):
    """The tools the caller lists, then each call's text or error message."""

    async def run():
        async with session(url, bearer) as c:
            tools = sorted(t.name for t in (await c.list_tools()).tools)
            answers = []
            for name, args in calls:
                try:
                    answers.append((await c.call_tool(name, args)).content[0].text)
                except MCPError as e:
                    answers.append(f"error {e.error.code}: {e.error.message}")
            return tools, answers

    return asyncio.run(run())


def test_without_a_token_only_echo(example):
    url, log = example
    tools, answers = tools_and_calls(url, None, [("echo", {"text": "hi"}), ("add", {"a": 1, "b": 2})])
    assert tools == ["echo"]
    assert answers == ["hi", "error -32602: Unknown tool: add"]
    calls = [s["tool"] for s in seen(log) if s["method"] == "tools/call"]
    assert "add" not in calls, "a denied call never reaches the target"


def test_example2_adds_add_and_its_token_reaches_the_upstream(example):
    url, log = example
    bearer = token("example2.key")
    tools, answers = tools_and_calls(url, bearer, [("add", {"a": 2, "b": 3}), ("printEnv", {})])
    assert tools == ["add", "echo"]
    assert answers == ["5", "error -32602: Unknown tool: printEnv"]
    calls = [s for s in seen(log) if s["method"] == "tools/call"]
    assert [c["tool"] for c in calls if c["tool"] == "printEnv"] == []
    assert calls[-1] == {"method": "tools/call", "tool": "add", "authorization": f"Bearer {bearer}"}


def test_example1_adds_print_env(example):
    url, _ = example
    tools, answers = tools_and_calls(url, token("example1.key"), [("printEnv", {})])
    assert tools == ["add", "echo", "printEnv"]
    assert "PATH" in answers[0]


def test_a_bad_signature_is_401(example):
    url, _ = example
    good = token("example2.key")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    resp = httpx.post(
        url,
        headers={"Authorization": f"Bearer {forged}", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
    )
    assert resp.status_code == 401
    assert "bad token signature" in resp.text
