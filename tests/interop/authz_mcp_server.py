"""The upstream of agentgateway's `authorization` example, built with the official Python SDK:
tools `echo`, `add` and `printEnv` over Streamable HTTP on 127.0.0.1:PORT/mcp.

`authz_mcp_server.py PORT LOG` appends one JSON line per POST it receives to LOG (the JSON-RPC
method, the tool name of a `tools/call`, the `Authorization` header), so tests can tell what
reached it."""

import json
import os
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

mcp = MCPServer("authorization-example")


@mcp.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool(name="printEnv")
def print_env() -> str:
    """The server's environment variable names."""
    return ", ".join(sorted(os.environ))


def recording(app, log):
    """ASGI middleware: records each POST before the SDK answers it."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            request = json.loads(body)
        except ValueError:
            request = {}
        headers = dict(scope["headers"])
        with open(log, "a") as f:
            f.write(json.dumps({
                "method": request.get("method"),
                "tool": (request.get("params") or {}).get("name"),
                "authorization": headers.get(b"authorization", b"").decode(),
            }) + "\n")
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await app(scope, replay, send)

    return wrapped


if __name__ == "__main__":
    port, log = int(sys.argv[1]), sys.argv[2]
    app = recording(mcp.streamable_http_app(), log)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
