"""A MCP server built with the official Python SDK: the gateway's MCP target in tests.

`mcp_server.py` serves stdio; `mcp_server.py sse PORT` and `mcp_server.py streamable-http PORT`
serve HTTP on 127.0.0.1 (paths /sse and /mcp)."""

import sys

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("demo")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


if __name__ == "__main__":
    if len(sys.argv) == 3:
        mcp.run(transport=sys.argv[1], host="127.0.0.1", port=int(sys.argv[2]))
    else:
        mcp.run()
