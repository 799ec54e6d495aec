#!/usr/bin/env python3
"""Side-by-side MCP benchmark: swarm mcp, redis-mcp-server, claude-flow.

Each server is driven over stdio by the official Python MCP client (PyPI
`mcp`), one after the other, on the same machine and Redis. Measured per
server: cold start (spawn + initialize + tools/list), storing one record,
reading one back, and a keyword search over a preloaded corpus (p50/p99).
Run through scripts/bench-mcp-compare.sh, which installs the pinned peers.
"""
import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

WORDS = None


def vocabulary(n=3000, seed=7):
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(letters) for _ in range(rng.randint(4, 9))))
    return sorted(out)


def corpus(n, seed=11):
    rng = random.Random(seed)
    words = vocabulary()
    # Zipf-like: a few words are common, most are rare.
    weights = [1.0 / (i + 1) for i in range(len(words))]
    docs = []
    for i in range(n):
        title = rng.choices(words, weights, k=6)
        body = rng.choices(words, weights, k=60)
        docs.append((f"doc{i}", " ".join(title), " ".join(body)))
    return words, docs


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


class Server:
    name = ""

    def params(self):
        raise NotImplementedError

    async def store(self, s, i, title, body):
        raise NotImplementedError

    async def read(self, s, handle):
        raise NotImplementedError

    async def search(self, s, word):
        raise NotImplementedError

    async def preload(self, s, docs):
        for d in docs:
            await self.store(s, *d)


class Swarm(Server):
    name = "swarm"

    def __init__(self, binary, url):
        self.binary, self.url = binary, url

    def params(self):
        return StdioServerParameters(command=self.binary, args=["mcp", "--redis-url", self.url])

    async def store(self, s, i, title, body):
        r = await s.call_tool("put_finding", {"title": title, "body": body, "tags": ["bench"]})
        return json.loads(text_of(r))["id"]

    async def read(self, s, handle):
        r = await s.call_tool("get_finding", {"id": handle})
        assert not r.is_error, text_of(r)

    async def search(self, s, word):
        r = await s.call_tool("search_findings", {"query": word, "limit": 20})
        assert not r.is_error, text_of(r)

    async def preload(self, s, docs):
        for k in range(0, len(docs), 100):
            batch = [{"title": t, "body": b, "tags": ["bench"]} for (_, t, b) in docs[k:k + 100]]
            r = await s.call_tool("put_findings", {"findings": batch})
            assert not r.is_error, text_of(r)


class RedisMcp(Server):
    name = "redis-mcp-server 0.5.1"

    def __init__(self, binary, url):
        self.binary, self.url = binary, url

    def params(self):
        return StdioServerParameters(command=self.binary, args=["--url", self.url])

    async def store(self, s, i, title, body):
        key = "finding:" + i + ":" + title.replace(" ", "_")
        r = await s.call_tool("set", {"key": key, "value": json.dumps({"title": title, "body": body})})
        assert not r.is_error, text_of(r)
        return key

    async def read(self, s, handle):
        r = await s.call_tool("get", {"key": handle})
        assert not r.is_error, text_of(r)

    async def search(self, s, word):
        # No full-text search without the RediSearch module: key names only.
        r = await s.call_tool("scan_all_keys", {"pattern": f"finding:*{word}*", "batch_size": 1000})
        assert not r.is_error, text_of(r)

    async def preload(self, s, docs):
        # Loaded with redis-cli --pipe (the server has no bulk write).
        lines = []
        for (i, t, b) in docs:
            key = "finding:" + i + ":" + t.replace(" ", "_")
            val = json.dumps({"title": t, "body": b})
            parts = ["SET", key, val]
            lines.append(f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts))
        host_port = self.url.split("//")[1].split("/")[0]
        host, port = host_port.rsplit(":", 1)
        subprocess.run(["redis-cli", "-h", host, "-p", port, "--pipe"],
                       input="".join(lines).encode(), check=True, capture_output=True)


class ClaudeFlow(Server):
    name = "claude-flow 3.43.0"

    def __init__(self, cli, home):
        self.cli, self.home = cli, home

    def params(self):
        env = dict(os.environ, HOME=self.home, CLAUDE_FLOW_TELEMETRY="false")
        return StdioServerParameters(command="node", args=[self.cli, "mcp", "start"], env=env, cwd=self.home)

    async def store(self, s, i, title, body):
        key = f"{i}-{random.random()}"
        r = await s.call_tool("memory_store", {"key": key, "value": f"{title}\n{body}", "namespace": "bench"})
        assert not r.is_error, text_of(r)
        return key

    async def read(self, s, handle):
        r = await s.call_tool("memory_retrieve", {"key": handle, "namespace": "bench"})
        assert not r.is_error, text_of(r)

    async def search(self, s, word):
        r = await s.call_tool("memory_search", {"query": word, "namespace": "bench", "limit": 20})
        assert not r.is_error, text_of(r)


async def measure(server, docs, words, ops, searches):
    t0 = time.perf_counter()
    async with stdio_client(server.params()) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            tools = await s.list_tools()
            cold = time.perf_counter() - t0
            names = {t.name for t in tools.tools}
            out = {"server": server.name, "tools": len(names), "cold_ms": cold * 1e3}
            stores, reads, handles = [], [], []
            for k in range(ops):
                a = time.perf_counter()
                h = await server.store(s, f"op{k}", f"probe finding {k}", "a short body to store")
                stores.append(time.perf_counter() - a)
                handles.append(h)
            for h in handles:
                a = time.perf_counter()
                await server.read(s, h)
                reads.append(time.perf_counter() - a)
            out["store_p50_ms"] = pct(stores, 50) * 1e3
            out["read_p50_ms"] = pct(reads, 50) * 1e3
            a = time.perf_counter()
            await server.preload(s, docs)
            out["preload_s"] = time.perf_counter() - a
            rng = random.Random(3)
            # Mid-frequency words: each matches a few hundred documents.
            pool = words[20:400]
            lat = []
            for _ in range(searches):
                word = rng.choice(pool)
                a = time.perf_counter()
                await server.search(s, word)
                lat.append(time.perf_counter() - a)
            out["search_p50_ms"] = pct(lat, 50) * 1e3
            out["search_p99_ms"] = pct(lat, 99) * 1e3
            out["corpus"] = len(docs)
            return out


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--swarm", required=True)
    ap.add_argument("--redis-mcp")
    ap.add_argument("--claude-flow")
    ap.add_argument("--url", required=True, help="redis://host:port (an empty server)")
    ap.add_argument("--findings", type=int, default=10000)
    ap.add_argument("--claude-flow-findings", type=int, default=None)
    ap.add_argument("--ops", type=int, default=200)
    ap.add_argument("--searches", type=int, default=100)
    ap.add_argument("--home", default="/tmp/bench-mcp-home")
    a = ap.parse_args()
    words, docs = corpus(a.findings)
    results = []
    servers = [(Swarm(a.swarm, a.url + "/0"), docs)]
    if a.redis_mcp:
        servers.append((RedisMcp(a.redis_mcp, a.url + "/1"), docs))
    if a.claude_flow:
        os.makedirs(a.home, exist_ok=True)
        n = a.claude_flow_findings or a.findings
        servers.append((ClaudeFlow(a.claude_flow, a.home), docs[:n]))
    for server, d in servers:
        try:
            res = await measure(server, d, words, a.ops, a.searches)
        except Exception as e:  # a peer that fails is reported, not fatal
            res = {"server": server.name, "error": repr(e)[:300]}
        print(json.dumps(res), flush=True)
        results.append(res)
    print()
    print("| | " + " | ".join(r["server"] for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    rows = [("cold start (initialize + tools/list)", "cold_ms"), ("store one, p50", "store_p50_ms"),
            ("read one, p50", "read_p50_ms"), ("keyword search p50", "search_p50_ms"),
            ("keyword search p99", "search_p99_ms")]
    for label, k in rows:
        cells = [f"{r[k]:.2f} ms" if k in r else "—" for r in results]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("| corpus searched | " + " | ".join(str(r.get("corpus", "—")) for r in results) + " |")


if __name__ == "__main__":
    asyncio.run(main())
