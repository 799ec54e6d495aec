"""The official Python MCP client (PyPI `mcp`) against `swarm serve` over
Streamable HTTP, for swarm-cli/tests/serve_python.rs.

Usage: mcp_http_client.py URL TOKEN

Initializes, lists the tools, stores a finding with put_finding and reads it
back with get_finding; prints one JSON line:
{"ok": true, "protocol": ..., "tools": [...], "put": {...}, "get": {...}}.
When the server refuses (or anything fails) it prints
{"ok": false, "error": "..."} and exits 3. Gives up after 20 s.
"""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


def structured(result):
    return getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)


async def session_run(url: str, token: str) -> dict:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = await session.list_tools()
                put = await session.call_tool(
                    "put_finding",
                    {"title": "from python", "body": "the official client", "tags": ["py"], "worker": "py-1"},
                )
                if put.isError if hasattr(put, "isError") else put.is_error:
                    raise RuntimeError(f"put_finding failed: {put}")
                fid = structured(put)["id"]
                got = await session.call_tool("get_finding", {"id": fid})
                return {
                    "ok": True,
                    "protocol": str(getattr(init, "protocol_version", None) or getattr(init, "protocolVersion", "")),
                    "tools": sorted(t.name for t in tools.tools),
                    "put": structured(put),
                    "get": structured(got),
                }


def describe(e: BaseException) -> str:
    inner = getattr(e, "exceptions", None)
    if inner:
        return "; ".join(describe(x) for x in inner)
    return f"{type(e).__name__}: {e}"


async def main(url: str, token: str) -> int:
    try:
        out = await asyncio.wait_for(session_run(url, token), timeout=20)
    except BaseException as e:  # the client wraps HTTP errors in exception groups
        print(json.dumps({"ok": False, "error": describe(e)}))
        return 3
    print(json.dumps(out))
    return 0


sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
