"""An MCP client written with the official MCP Python SDK, for carapace's /mcp tests.

Usage: mcp_client.py URL TOKEN SCENARIO
  SCENARIO "auth":   connect with TOKEN (a wrong one) and report what the SDK raises.
  SCENARIO "call":   connect, list the tools, call `ls`, close the session (DELETE).
Prints one JSON object on stdout.
"""

import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def describe(e: BaseException) -> dict:
    """The innermost error an exception group carries, as the SDK surfaces it."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    out = {"type": type(e).__name__, "message": str(e)}
    if isinstance(e, MCPError):
        out["code"] = e.error.code
        out["data"] = e.error.data
    return out


async def main(url: str, token: str, scenario: str) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        try:
            async with streamable_http_client(url, http_client=http) as (read, write, *_):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    if scenario == "auth":
                        return {"connected": True}
                    tools = await session.list_tools()
                    res = await session.call_tool("ls", {})
                    return {
                        "connected": True,
                        "tools": [t.name for t in tools.tools],
                        "isError": res.is_error,
                    }
        except BaseException as e:  # noqa: BLE001 - the point is to report it
            return {"connected": False, "error": describe(e)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3])), default=str))
