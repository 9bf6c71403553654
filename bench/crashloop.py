"""Crash loop: ingest through the API while the server is SIGKILLed at random moments and restarted.

The driver posts batches of prompts with ids it never reuses and records which batches the
server acknowledged (HTTP 200). A killer thread SIGKILLs the server at random times, so
kills land mid-request, mid-commit and mid-checkpoint; the driver restarts it and goes on.
At the end: every acknowledged prompt is present, no prompt appears that was never sent,
none twice, and the store, FAISS and both LSHs hold the same rows.

Example:
    python bench/crashloop.py --minutes 5          # builds a small index first, prints the report
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CLI = [sys.executable, "-c", "from api.cli import main; main()"]


class Server:
    """`promptsim serve` in a subprocess that can be killed and started again."""

    def __init__(self, index_dir: Path):
        self.index_dir = index_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.ready = threading.Event()  # kills land only on a server that finished starting

    def start(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        with self.lock:
            self.proc = subprocess.Popen(
                [*CLI, "serve", "--index", str(self.index_dir), "--port", str(self.port), "--anonymous-rate", "100000"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    self.ready.set()
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def kill(self) -> bool:
        if not self.ready.is_set():
            return False
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                return False
            self.ready.clear()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            return True

    def stop(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(timeout=60)


def crash_loop(
    index_dir: Path, seconds: float, *, batch: int = 20, seed: int = 0, kill_after: tuple[float, float] = (1.0, 4.0)
) -> dict[str, Any]:
    """Run the loop for `seconds` against an existing index; returns the verified report."""
    from api.keys import KeyStore
    from search.index import PromptIndex

    with PromptIndex.open(index_dir, None) as index:
        before = set(index.store.ids_of(index.store.rows_matching()).values())
    key = KeyStore(index_dir / "keys.json").create(f"crashloop-{time.time_ns()}", ["read", "write"], rate=100_000)
    rng = random.Random(seed)
    server = Server(index_dir)
    server.start()
    kills, stop = [0], threading.Event()

    def killer() -> None:
        while not stop.wait(rng.uniform(*kill_after)):
            kills[0] += server.kill()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    sent, acked, restarts, n = set(), set(), 0, 0
    deadline = time.time() + seconds
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november".split()
    while time.time() < deadline:
        ids = [f"crash-{seed}-{n + i}" for i in range(batch)]
        rows = [
            {
                "id": pid,
                "text": f"prompt {pid}: " + " ".join(rng.choices(words, k=12)),
                "account_id": f"crash-{i % 5}",
                "timestamp": 1795000000 + n + i,
            }
            for i, pid in enumerate(ids)
        ]
        n += batch
        sent.update(ids)
        try:
            response = httpx.post(
                f"{server.base}/v1/prompts",
                json={"prompts": rows},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            if response.status_code == 200:
                acked.update(ids)
        except httpx.HTTPError:
            pass
        if server.proc is None or server.proc.poll() is not None:
            server.start()
            restarts += 1
    stop.set()
    thread.join()
    server.stop()
    with PromptIndex.open(index_dir, None) as index:
        check = index.verify()
        stored = set(index.store.ids_of(index.store.rows_matching()).values())
    missing, invented = acked - stored, stored - sent - before
    return {
        "seconds": seconds,
        "kills": kills[0],
        "restarts": restarts,
        "batches_sent": n // batch,
        "prompts_sent": len(sent),
        "prompts_acknowledged": len(acked),
        "prompts_checked": len(stored),
        "acknowledged_missing": len(missing),
        "never_sent_present": len(invented),
        "duplicate_ids": check["duplicate_ids"],
        "structures_agree": check["consistent"],
        "store": check["store"],
        "vectors": check["vectors"],
        "signatures": check["signatures"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--index", type=Path, help="an existing index [default: a fresh small one]")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "crashloop.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index or Path(tmp) / "idx"
        if args.index is None:
            seed_file = Path(tmp) / "seed.jsonl"
            seed_file.write_text(
                json.dumps({"id": "seed", "text": "a first prompt", "account_id": "a", "timestamp": 1795000000}) + "\n"
            )
            subprocess.run(
                [*CLI, "ingest", str(seed_file), "--index", str(index_dir)],
                check=True,
                capture_output=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
        report = crash_loop(index_dir, args.minutes * 60)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
