"""Bounded HTTP load test on 127.0.0.1: N concurrent clients for T seconds, then again with ingest running.

Starts `promptsim serve` on a free loopback port over an existing index, creates a read+write
key, and drives POST /v1/search with prompts drawn from the index itself. Client and server
share the machine's cores, so the numbers are for both together.

Example:
    python bench/load.py --index bench/out/core-index-100000 --clients 32 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from api.cli import main; main()"]


async def drive(base: str, key: str, texts: list[str], clients: int, seconds: float, ingest: bool) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {key}"}
    rng = random.Random(0)

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                response = await http.post("/v1/search", json={"text": rng.choice(texts), "k": 20})
                if response.status_code != 200:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                else:
                    latencies.append(time.perf_counter() - start)
            except httpx.HTTPError as err:
                errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1

    async def writer(http: httpx.AsyncClient) -> int:
        sent = 0
        while time.monotonic() < stop:
            batch = [
                {
                    "id": f"load-{sent + i}",
                    "text": f"{rng.choice(texts)} (load {sent + i})",
                    "account_id": f"load-{i % 7}",
                    "timestamp": 1795000000 + sent + i,
                }
                for i in range(20)
            ]
            response = await http.post("/v1/prompts", json={"prompts": batch}, timeout=120)
            if response.status_code == 200:
                sent += len(batch)
            await asyncio.sleep(0.5)
        return sent

    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as http:
        start = time.monotonic()
        tasks = [client(http) for _ in range(clients)] + ([writer(http)] if ingest else [])
        results = await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "errors": errors,
        "ingested": results[-1] if ingest else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "load.json")
    args = parser.parse_args()
    with sqlite3.connect(args.index / "prompts.sqlite") as db:
        texts = [t for (t,) in db.execute("SELECT text FROM prompts ORDER BY RANDOM() LIMIT 500")]
        prompts = db.execute("SELECT COUNT(*) FROM prompts").fetchone()[0]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([*CLI, "keys", "revoke", "--index", str(args.index), "--name", "load"], env=env, capture_output=True)
    key = subprocess.run(
        [*CLI, "keys", "create", "--index", str(args.index), "--name", "load", "--scopes", "read,write"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            *CLI,
            "serve",
            "--index",
            str(args.index),
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--rate",
            "100000",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        report = {
            "prompts": prompts,
            "workers": args.workers,
            "search_only": asyncio.run(drive(base, key, texts, args.clients, args.seconds, False)),
            "with_ingest": asyncio.run(drive(base, key, texts, args.clients, args.seconds, True)),
        }
    finally:
        server.terminate()
        server.wait(timeout=60)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
