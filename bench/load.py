"""HTTP load against the real server, beside the engine's in-process batch throughput from the same run.

What it runs, in one process tree on this machine:
1. **In process**: `promptsim.open_index` + `promptsim.search_batch` over the query set, in
   batches of 32, for --seconds (one process, as a nightly job or notebook would call it).
2. **Over HTTP**, for each --workers count: `promptsim serve` (the real CLI: keys, rate limits,
   masking, the audit log and /metrics all on), then 32 concurrent clients POST /v1/search
   (k = 20) for --seconds; then again while a writer POSTs 20 prompts to /v1/prompts every
   --ingest-every seconds.
The HTTP clients are `wrk` (C, one thread per core: little CPU of its own) when it is
installed (`apt-get install wrk`), else httpx (its Python client costs server CPU; the report
says which). Client and server share the machine's cores. Queries are texts drawn from the
index itself (10,000 distinct by default, so none repeats within a run), so every search has
siblings to rank, mask and return. Run it after `promptsim dedup`: a search then also matches
the query against the campaign families (the real path of a served index).

Example:
    python bench/load.py --build 100000                     # corpus + `promptsim ingest --model static-minilm`
    python bench/load.py --index bench/out/load-index-100000 --workers 1 2 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CLI = [sys.executable, "-c", "from api.cli import main; main()"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
K = 20
BATCH = 32

# wrk's request generator: the bodies file, one JSON per line, round robin; a JSON summary at the end.
WRK_SCRIPT = """
local bodies = {}
for line in io.lines(os.getenv("PROMPTSIM_BODIES")) do bodies[#bodies + 1] = line end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PROMPTSIM_KEY")
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/search", nil, bodies[(n % #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %d, "seconds": %.3f, "p50_ms": %.2f, "p99_ms": %.2f, ' ..
    '"non_2xx": %d, "socket_errors": %d}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def build_index(size: int, out: Path) -> Path:
    """A corpus of about size prompts (bench/corpus.py), ingested on the bulk path by the CLI."""
    index = out / f"load-index-{size}"
    if (index / "manifest.json").exists():
        return index
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, str(REPO / "bench" / "corpus.py"), "--out", tmp, "--scale", str(size), "--seed", "5"],
            check=True,
            env=ENV,
        )
        subprocess.run(
            [*CLI, "ingest", f"{tmp}/prompts.jsonl", "--index", str(index), "--model", "static-minilm"],
            check=True,
            env=ENV,
        )
    return index


def query_bodies(index: Path, n: int = 500) -> list[dict[str, Any]]:
    """n search bodies: stored texts picked at random (a fixed seed), k = 20."""
    with sqlite3.connect(f"file:{index / 'prompts.sqlite'}?mode=ro", uri=True) as db:
        total = db.execute("SELECT MAX(row) FROM prompts").fetchone()[0]
        rows = random.Random(0).sample(range(1, total + 1), min(n * 2, total))
        texts = [t for r in rows for (t,) in db.execute("SELECT text FROM prompts WHERE row = ?", (r,))]
    return [{"text": t[:8000], "k": K} for t in texts[:n]]


def in_process(index: Path, bodies: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Batch-search throughput through the public library, the index as opened, one process."""
    import promptsim

    with promptsim.open_index(index) as opened:
        promptsim.search_batch(opened, bodies[:BATCH])  # warm: the model, the family encoder, caches
        cpu = _own_cpu_seconds()
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            lo = done % len(bodies)
            chunk = bodies[lo : lo + BATCH]
            promptsim.search_batch(opened, chunk)
            done += len(chunk)
        elapsed = time.perf_counter() - start
        cpu = _own_cpu_seconds() - cpu
    return {
        "batch": BATCH,
        "queries": done,
        "queries_per_s": round(done / elapsed, 1),
        "cpu_ms_per_query": round(1000 * cpu / done, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


class Server:
    """`promptsim serve` on a free loopback port, with a read+write key of its own."""

    def __init__(self, index: Path, workers: int):
        self.index, self.workers = index, workers
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.key = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        name = f"load-{os.getpid()}-{self.port}"
        # --rate 100000, the most a key may have: the limiter still runs for every request, never refuses
        create = [*CLI, "keys", "create", "--index", str(self.index), "--name", name, "--scopes", "read,write"]
        created = subprocess.run(
            [*create, "--rate", "100000"],
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        self.key, self.name = created.stdout.split()[-1], name
        command = [*CLI, "serve", "--index", str(self.index), "--port", str(self.port), "--workers", str(self.workers)]
        self.proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the server did not become ready in 300 s")

    def peak_rss_mib(self) -> int:
        """Peak RSS of the server's processes (the master and each worker), summed."""
        assert self.proc is not None
        pids = [self.proc.pid] + _children(self.proc.pid)
        total = 0
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
        return round(total / 1024)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        revoke = [*CLI, "keys", "revoke", "--index", str(self.index), "--name", self.name]
        subprocess.run(revoke, env=ENV, capture_output=True)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's processes so far (a worker that exited is not counted)."""
        assert self.proc is not None
        ticks = 0
        for pid in [self.proc.pid] + _children(self.proc.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return ticks / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in found] + [c for p in found for c in _children(int(p))]


def drive_wrk(server: Server, bodies_file: Path, clients: int, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    env = {**os.environ, "PROMPTSIM_BODIES": str(bodies_file), "PROMPTSIM_KEY": server.key}
    threads = str(min(clients, os.cpu_count() or 1))
    duration = f"{max(1, round(seconds))}s"
    command = ["wrk", "-t", threads, "-c", str(clients), "-d", duration, "--timeout", "10s", "-s", script.name]
    out = subprocess.run([*command, server.base], env=env, capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    found = json.loads(next(line[4:] for line in out.splitlines() if line.startswith("WRK ")))
    return {
        "requests": found["requests"],
        "requests_per_s": round(found["requests"] / found["seconds"], 1),
        "p50_ms": round(found["p50_ms"], 1),
        "p99_ms": round(found["p99_ms"], 1),
        "errors": found["non_2xx"] + found["socket_errors"],
    }


def drive_httpx(server: Server, bodies: list[dict[str, Any]], clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0

    async def client(http: httpx.AsyncClient, rng: random.Random, stop: float) -> None:
        nonlocal errors
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                response = await http.post("/v1/search", json=rng.choice(bodies))
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    async def run() -> float:
        limits = httpx.Limits(max_connections=clients)
        headers = {"Authorization": f"Bearer {server.key}"}
        async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=30, limits=limits) as http:
            start = time.monotonic()
            await asyncio.gather(*(client(http, random.Random(n), start + seconds) for n in range(clients)))
            return time.monotonic() - start

    elapsed = asyncio.run(run())
    lat = np.asarray(latencies or [0.0]) * 1000
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "errors": errors,
    }


class Writer(threading.Thread):
    """POST /v1/prompts with 20 new prompts every `every` seconds until stopped; counts what was acknowledged."""

    def __init__(self, server: Server, texts: list[str], every: float):
        super().__init__(daemon=True)
        self.server, self.texts, self.every = server, texts, every
        self.stop, self.acknowledged, self.failed = threading.Event(), 0, 0
        self.latencies: list[float] = []

    def run(self) -> None:
        rng, sent = random.Random(1), 0
        headers = {"Authorization": f"Bearer {self.server.key}"}
        with httpx.Client(base_url=self.server.base, headers=headers, timeout=60) as http:
            while not self.stop.is_set():
                batch = [
                    {
                        "id": f"load-{self.server.port}-{sent + i}",
                        "text": f"{rng.choice(self.texts)} (variant {sent + i})",
                        "account_id": f"load-writer-{i % 7}",
                        "timestamp": 1795000000 + sent + i,
                    }
                    for i in range(20)
                ]
                start = time.perf_counter()
                try:
                    ok = http.post("/v1/prompts", json={"prompts": batch}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - start)
                sent += len(batch)
                self.acknowledged += len(batch) if ok else 0
                self.failed += 0 if ok else 1
                self.stop.wait(self.every)


def measure_http(
    index: Path, bodies: list[dict[str, Any]], workers: int, clients: int, seconds: float, every: float
) -> dict[str, Any]:
    use_wrk = _has_wrk()
    # each phase its own slice of the queries: none repeats a text an earlier phase sent
    n = len(bodies)
    phases = (bodies[: n // 8], bodies[n // 8 : n // 2], bodies[n // 2 :])  # warm-up, search, search + ingest
    files = []
    for part in phases:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
            handle.writelines(json.dumps(b) + "\n" for b in part)
        files.append(Path(handle.name))

    def drive(server: Server, duration: float, phase: int) -> dict[str, Any]:
        cpu = server.cpu_seconds()
        if use_wrk:
            found = drive_wrk(server, files[phase], clients, duration)
        else:
            found = drive_httpx(server, phases[phase], clients, duration)
        # Server CPU per request: steadier than requests/s when other work shares the cores.
        found["server_cpu_ms_per_request"] = round(1000 * (server.cpu_seconds() - cpu) / max(1, found["requests"]), 2)
        return found

    try:
        with Server(index, workers) as server:
            drive(server, min(5.0, seconds), 0)  # warm every worker: models, caches
            search_only = drive(server, seconds, 1)
            writer = Writer(server, [b["text"] for b in bodies], every)
            writer.start()
            with_ingest = drive(server, seconds, 2)
            writer.stop.set()
            writer.join()
            with_ingest["prompts_ingested"] = writer.acknowledged
            with_ingest["ingest_failures"] = writer.failed
            with_ingest["ingest_p99_ms"] = round(float(np.percentile(np.asarray(writer.latencies) * 1000, 99)), 1)
            peak = server.peak_rss_mib()
    finally:
        for file in files:
            file.unlink()
    return {
        "workers": workers,
        "client": "wrk" if use_wrk else "httpx",
        "search_only": search_only,
        "with_ingest": with_ingest,
        "server_peak_rss_mib": peak,
    }


def _has_wrk() -> bool:
    return subprocess.run(["sh", "-c", "command -v wrk"], capture_output=True).returncode == 0


def table(report: dict[str, Any]) -> str:
    engine = report["in_process"]["queries_per_s"]
    lines = [
        f"in-process batch search ({report['in_process']['batch']} per call, one process): "
        f"{engine} queries/s, {report['in_process']['cpu_ms_per_query']} CPU ms per query, "
        f"peak RSS {report['in_process']['peak_rss_mib']} MiB",
        "",
        "| workers | ingest | requests/s | p50 ms | p99 ms | errors | HTTP / in-process | server CPU ms per request "
        "| server peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["http"]:
        for label, r in (("no", run["search_only"]), ("every 0.5 s", run["with_ingest"])):
            ingest = label if label == "no" else f"{r['prompts_ingested']} prompts, {r['ingest_failures']} failed"
            lines.append(
                f"| {run['workers']} | {ingest} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
                f"{r['errors']} | {r['requests_per_s'] / engine:.0%} | {r['server_cpu_ms_per_request']} | "
                f"{run['server_peak_rss_mib']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--index", type=Path, help="an existing index directory")
    where.add_argument("--build", type=int, metavar="N", help="build (once) and use a bulk-path index of ~N prompts")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server worker counts to measure")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients [32]")
    parser.add_argument("--seconds", type=float, default=30, help="length of each measurement [30]")
    parser.add_argument("--ingest-every", type=float, default=0.5, help="seconds between ingest POSTs [0.5]")
    parser.add_argument(
        "--queries",
        type=int,
        default=10_000,
        help="distinct query texts, cycled [10000: more than one run sends, so no text repeats and "
        "what the server remembers (family matching's piece vectors) helps only as far as "
        "different prompts share pieces]",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "load.json")
    args = parser.parse_args()
    index = args.index or build_index(args.build, REPO / "bench" / "out")
    bodies = query_bodies(index, args.queries)
    report: dict[str, Any] = {"index": str(index), "clients": args.clients, "k": K, "cpus": os.cpu_count()}
    report["in_process"] = in_process(index, bodies, args.seconds)
    report["http"] = [
        measure_http(index, bodies, w, args.clients, args.seconds, args.ingest_every) for w in args.workers
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(table(report))


if __name__ == "__main__":
    main()
