"""The kill loop: SIGKILL promptsim at random instants on every write path; nothing acknowledged may be lost.

Shared by tests/api/test_crashloop.py (a short run that can fail) and bench/crashloop.py (the long,
measured one). It lives in the package, as promptsim/testing.py does, because tests and benchmarks
share helpers through promptsim/ and never import each other; `import promptsim` does not load it,
and it drives promptsim only from outside (the CLI in subprocesses, the HTTP API of a `promptsim
serve` subprocess), plus read-only looks at the index directory between operations.

How. One `promptsim serve` on a fresh index, a searcher thread posting /v1/search all along, and
a driver that runs one write at a time, picked from a weighted mix of the write paths:
api_ingest (POST /v1/prompts), cli_ingest (`promptsim ingest`), api_delete (DELETE
/v1/prompts/{id}), cli_delete (`promptsim delete`), purge (`promptsim purge`), dedup (`promptsim
dedup`), snapshot (`promptsim snapshot create` or POST /v1/snapshots), restore (`promptsim
snapshot restore --force` or POST /v1/snapshots/{name}/restore) and verdict (POST
/v1/clusters/{id}/verdict). With probability kill_rate a run is SIGKILLed at a random instant
within that path's usual duration: the server for an HTTP write, the CLI process for a CLI one.
A killed server is restarted at once and the time to /readyz is measured.

What it checks. An oracle follows every id: present once an ingest was acknowledged (HTTP 200,
exit 0), absent once a delete or purge was, unknown while a write of it was killed (resolved by
the next look, since a dead writer's outcome is fixed). A restore sets the oracle to the state its
snapshot was taken in, minus every erasure logged since (indexer/erasure.py). After every killed
CLI run, every few operations and at the end it opens the index read-only and checks: every
acknowledged prompt present, every acknowledged delete absent, no id never sent, no id twice,
store = FAISS = LSHs = signature table (PromptIndex.verify, the `structures_agree` of the old
crash loop), the current clusters exactly those of the last dedup run (its stats count them; the
run is one transaction), families.npz naming current clusters only, every acknowledged verdict
kept, and after a killed restore the index either as before or as restored. Search errors count
as expected only when the request overlapped a time the server was down.

What it does not. One writer at a time (the lock-contention paths, 503 IndexLocked, are left to
tests/api/test_service.py), no power loss (SIGKILL keeps what reached the page cache: fsync
ordering is not exercised), no multi-worker server, no Ray engine, and the disk-full and read-only
cases are tests of their own (tests/api/test_disk_faults.py).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PATHS = ("api_ingest", "cli_ingest", "api_delete", "cli_delete", "purge", "dedup", "snapshot", "restore", "verdict")
DEFAULT_MIX = {
    "api_ingest": 4,
    "cli_ingest": 2,
    "api_delete": 2,
    "cli_delete": 1,
    "purge": 1,
    "dedup": 1,
    "snapshot": 1,
    "restore": 1,
    "verdict": 2,
}
PRESENT, ABSENT, MAYBE = "present", "absent", "maybe"
OLD = 1_580_000_000  # 2020: "old" prompts, which a purge --older-than 1000d removes
NEW = 1_795_000_000  # Nov 2026: everything else
PURGE_AGE = "1000d"
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()
# a third of the traffic shares this wrapper, so every dedup run leaves clusters for verdicts to land on
# (random words alone never cluster: the verdict path was never drawn)
TEMPLATE = "Summarize this support ticket for the on-call engineer, then list the next three steps and who owns each:"
TEMPLATED_SHARE = 1 / 3
CLI = [sys.executable, "-c", "from api.cli import main; main()"]


def parse_mix(text: str) -> dict[str, int]:
    """'api_ingest=4,restore=1' -> weights (paths not named get 0); '' -> DEFAULT_MIX."""
    if not text.strip():
        return dict(DEFAULT_MIX)
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in PATHS:
            raise ValueError(f"unknown write path {name!r}; choose from {', '.join(PATHS)}")
        mix[name.strip()] = int(weight or 1)
    return mix


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


class Server:
    """`promptsim serve` in a subprocess that can be killed and started again; remembers when it was down."""

    def __init__(self, index_dir: Path, log: Path):
        self.index_dir, self.log = index_dir, log
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.down: list[list[float]] = []  # [from, to] (to = inf while down)
        self._lock = threading.Lock()

    def start(self, timeout: float = 180.0) -> float:
        """Start it and wait for /readyz; returns the seconds that took."""
        began = time.monotonic()
        with self._lock:
            if not self.down or self.down[-1][1] != float("inf"):
                self.down.append([began, float("inf")])
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [*CLI, "serve", "--index", str(self.index_dir), "--port", str(self.port)]
                    + ["--anonymous-rate", "100000"],
                    env=_env(),
                    stdout=log,
                    stderr=log,
                )
        while time.monotonic() - began < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"promptsim serve exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    with self._lock:
                        self.down[-1][1] = time.monotonic()
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"promptsim serve was not ready within {timeout:.0f} s; see {self.log}")

    def kill(self) -> bool:
        """SIGKILL it (True if it was running)."""
        with self._lock:
            if self.proc is None or self.proc.poll() is not None:
                return False
            self.down.append([time.monotonic(), float("inf")])
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return True

    def stop(self) -> None:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()

    def was_down(self, start: float, end: float) -> bool:
        """Whether [start, end] overlaps a time the server was down or starting."""
        with self._lock:
            return any(a <= end and b >= start for a, b in self.down)


@dataclass
class Searcher:
    """Posts /v1/search all along and sorts the outcomes: answered, failed while down, failed otherwise."""

    server: Server
    key: str
    seed: int
    counts: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(self.seed)
        with httpx.Client(timeout=30) as client:
            while not self.stop.wait(0.25):
                start = time.monotonic()
                problem = ""
                try:
                    response = client.post(
                        f"{self.server.base}/v1/search",
                        json={"text": " ".join(rng.choices(WORDS, k=10)), "k": 5},
                        headers={"Authorization": f"Bearer {self.key}"},
                    )
                    if response.status_code == 200:
                        self.counts["ok"] += 1
                        continue
                    problem = f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as err:
                    problem = f"{type(err).__name__}: {err}"
                if self.server.was_down(start, time.monotonic()):
                    self.counts["expected_errors"] += 1
                else:
                    self.counts["unexpected_errors"] += 1
                    if len(self.unexpected) < 20:
                        self.unexpected.append(problem)


@dataclass
class Snapshot:
    path: Path
    state: dict[str, str]
    api: bool  # in DIR/snapshots, so the API can restore it


@dataclass
class PathStats:
    runs: int = 0
    kills: int = 0
    acknowledged: int = 0  # prompts (ingest, delete, purge), verdicts, or runs (dedup, snapshot, restore)
    lost: int = 0  # acknowledged and then found violated


class KillLoop:
    """One run of the loop against index_dir (created here); see the module docstring."""

    def __init__(
        self,
        work: Path,
        *,
        seed: int = 0,
        mix: dict[str, int] | None = None,
        kill_rate: float = 0.6,
        check_every: int = 5,
        batch: int = 20,
        model: str | None = None,
        log: Callable[[str], None] = lambda line: None,
    ):
        self.work, self.index_dir = work, work / "idx"
        self.rng = random.Random(seed)
        self.seed = seed
        self.mix = mix or dict(DEFAULT_MIX)
        self.kill_rate, self.check_every, self.batch = kill_rate, check_every, batch
        self.model = model
        self.log = log
        self.state: dict[str, str] = {}
        self.old: set[str] = set()
        self.delete_tried: set[str] = set()
        self.delete_acked: set[str] = set()
        self.purge_tried = self.purge_acked = False
        self.acked_by: dict[str, str] = {}  # id -> the path whose acknowledgement the oracle relies on
        self.verdicts: dict[int, str] = {}  # acknowledged verdict id -> cluster id
        self.snapshots: list[Snapshot] = []
        self.stats = {name: PathStats() for name in PATHS}
        self.duration: dict[str, float] = {}
        self.restarts: list[float] = []
        self.failures: list[str] = []
        self.checks = 0
        self.opens: list[float] = []  # seconds to open the index (recovery: replay, a pending restore) per check
        self.loads: list[float] = []  # the 1-minute load average at each restart: the machine is shared
        self.agree = True
        self.duplicates = self.phantoms = 0
        self.restore_outcomes: Counter[str] = Counter()
        self.n = 0

    # -- setup -------------------------------------------------------------------------------

    def setup(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "snaps").mkdir(exist_ok=True)
        rows = self._rows(40, old=False) + self._rows(10, old=True)
        source = self._jsonl(rows, "seed")
        extra = ["--model", self.model] if self.model else []
        self._cli(["ingest", str(source), "--index", str(self.index_dir), "--json", *extra], check=True)
        for r in rows:
            self.state[r["id"]] = PRESENT
            self.acked_by[r["id"]] = "seed"
        from api.keys import KeyStore

        keys = KeyStore(self.index_dir / "keys.json")
        self.key = keys.create(f"killloop-{time.time_ns()}", ["read", "write", "admin", "triage"], rate=100_000)
        self.search_key = keys.create(f"killloop-search-{time.time_ns()}", ["read"], rate=100_000)
        self.server = Server(self.index_dir, self.work / "serve.log")
        self.searcher = Searcher(self.server, self.search_key, self.seed)

    def _rows(self, n: int, *, old: bool) -> list[dict[str, Any]]:
        rows = []
        for _ in range(n):
            pid = f"k{self.seed}-{self.n}"
            self.n += 1
            rows.append(
                {
                    "id": pid,
                    "text": self._text(pid),
                    "account_id": f"acct-{self.rng.randrange(6)}",
                    "timestamp": (OLD if old else NEW) + self.n,
                }
            )
            if old:
                self.old.add(pid)
        return rows

    def _text(self, pid: str) -> str:
        words = " ".join(self.rng.choices(WORDS, k=12))
        return f"{TEMPLATE} ticket {pid}: {words}" if self.rng.random() < TEMPLATED_SHARE else f"prompt {pid}: {words}"

    def _jsonl(self, rows: list[dict[str, Any]], name: str) -> Path:
        path = self.work / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    # -- running -----------------------------------------------------------------------------

    def run(self, seconds: float) -> dict[str, Any]:
        self.setup()
        self.restarts.append(self.server.start())
        thread = threading.Thread(target=self.searcher.run, daemon=True)
        thread.start()
        began = time.monotonic()
        names = [n for n in PATHS if self.mix.get(n, 0) > 0]
        weights = [self.mix[n] for n in names]
        ops = 0
        try:
            while time.monotonic() - began < seconds:
                name = self.rng.choices(names, weights)[0]
                killed = getattr(self, f"_op_{name}")()
                ops += 1
                if killed:
                    self.stats[name].kills += 1
                if self.server.proc is None or self.server.proc.poll() is not None:
                    self.restarts.append(self.server.start())
                    self.loads.append(os.getloadavg()[0])
                if killed or ops % self.check_every == 0:
                    self.check(f"after {name} #{self.stats[name].runs}{' (killed)' if killed else ''}")
        finally:
            self.searcher.stop.set()
            thread.join()
            self.server.stop()
        self.check("at the end")
        return self.report(time.monotonic() - began)

    def _kill_at(self, name: str) -> float | None:
        """A random instant (a share of the path's usual duration) for this run's kill, or None (no kill).

        A path's first run is never killed: it measures how long the path takes."""
        return None if name not in self.duration or self.rng.random() >= self.kill_rate else self.rng.random()

    def _timed(self, name: str, seconds: float) -> None:
        old = self.duration.get(name)
        self.duration[name] = seconds if old is None else 0.7 * old + 0.3 * seconds

    def _http(self, name: str, method: str, path: str, body: Any = None) -> tuple[httpx.Response | None, bool]:
        """One HTTP write; maybe SIGKILL the server at a random instant while it runs. (response, killed)."""
        self.stats[name].runs += 1
        at = self._kill_at(f"{name}:http")
        result: list[httpx.Response | None] = [None]

        def send() -> None:
            try:
                result[0] = httpx.request(
                    method,
                    f"{self.server.base}{path}",
                    json=body,
                    headers={"Authorization": f"Bearer {self.key}"},
                    timeout=120,
                )
            except httpx.HTTPError:
                pass

        start = time.monotonic()
        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        killed = False
        if at is not None:
            thread.join(at * 1.2 * self.duration[f"{name}:http"])
            if thread.is_alive():
                killed = self.server.kill()
        thread.join()
        if not killed:
            self._timed(f"{name}:http", time.monotonic() - start)
        return result[0], killed

    def _cli(self, args: list[str], *, name: str | None = None, check: bool = False) -> tuple[int | None, bool, str]:
        """One CLI run, maybe SIGKILLed at a random instant (late-weighted: its start is imports); (rc, killed, out)."""
        at = None if name is None else self._kill_at(f"{name}:cli")
        if name is not None:
            self.stats[name].runs += 1
        start = time.monotonic()
        with open(self.work / "cli.out", "wb") as out:
            proc = subprocess.Popen([*CLI, *args], env=_env(), stdout=out, stderr=subprocess.STDOUT)
            killed = False
            if at is not None and name is not None:
                try:
                    proc.wait((0.3 + 0.8 * at) * self.duration[f"{name}:cli"])
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    killed = True
            proc.wait()
        text = (self.work / "cli.out").read_text(errors="replace")
        if not killed and name is not None:
            self._timed(f"{name}:cli", time.monotonic() - start)
        if check and proc.returncode != 0:
            raise RuntimeError(f"promptsim {' '.join(args)} failed: {text[-2000:]}")
        return (None if killed else proc.returncode), killed, text

    def _present(self, k: int) -> list[str]:
        ids = [i for i, s in self.state.items() if s == PRESENT]
        return self.rng.sample(ids, min(k, len(ids)))

    def _ingested(self, name: str, rows: list[dict[str, Any]], acked: bool) -> None:
        for r in rows:
            self.state[r["id"]] = PRESENT if acked else MAYBE
            if acked:
                self.acked_by[r["id"]] = name
        if acked:
            self.stats[name].acknowledged += len(rows)

    def _deleted(self, name: str, ids: list[str], acked: bool) -> None:
        self.delete_tried.update(ids)
        for i in ids:
            self.state[i] = ABSENT if acked else MAYBE
        if acked:
            self.delete_acked.update(ids)
            self.acked_by.update((i, name) for i in ids)
            self.stats[name].acknowledged += len(ids)

    def _op_api_ingest(self) -> bool:
        rows = self._rows(self.batch, old=self.rng.random() < 0.2)
        response, killed = self._http("api_ingest", "POST", "/v1/prompts", {"prompts": rows})
        self._ingested("api_ingest", rows, response is not None and response.status_code == 200)
        return killed

    def _op_cli_ingest(self) -> bool:
        rows = self._rows(3 * self.batch, old=self.rng.random() < 0.2)
        source = self._jsonl(rows, "batch")
        rc, killed, _ = self._cli(["ingest", str(source), "--index", str(self.index_dir), "--json"], name="cli_ingest")
        self._ingested("cli_ingest", rows, rc == 0)
        return killed

    def _op_api_delete(self) -> bool:
        victims = self._present(1)
        if not victims:
            return False
        response, killed = self._http("api_delete", "DELETE", f"/v1/prompts/{victims[0]}")
        self._deleted("api_delete", victims, response is not None and response.status_code == 200)
        return killed

    def _op_cli_delete(self) -> bool:
        victims = self._present(3)
        if not victims:
            return False
        args = ["delete", "--index", str(self.index_dir), *(a for v in victims for a in ("--id", v))]
        rc, killed, _ = self._cli(args, name="cli_delete")
        self._deleted("cli_delete", victims, rc == 0)
        return killed

    def _op_purge(self) -> bool:
        self.purge_tried = True
        old = [i for i in self.old if self.state[i] != ABSENT]
        for i in old:
            self.state[i] = MAYBE
        rc, killed, _ = self._cli(["purge", "--index", str(self.index_dir), "--older-than", PURGE_AGE], name="purge")
        if rc == 0:
            self.purge_acked = True
            for i in old:
                self.state[i] = ABSENT
                self.acked_by[i] = "purge"
            self.stats["purge"].acknowledged += 1
        return killed

    def _op_dedup(self) -> bool:
        out = self.work / "clusters.jsonl"
        rc, killed, _ = self._cli(["dedup", "--index", str(self.index_dir), "--out", str(out)], name="dedup")
        self.stats["dedup"].acknowledged += rc == 0
        return killed

    def _op_snapshot(self) -> bool:
        self.check("before a snapshot")  # the oracle knows every id's state exactly: the snapshot holds that
        state = dict(self.state)
        folder = self.index_dir / "snapshots"
        before = set(folder.glob("*.snapshot")) if folder.is_dir() else set()
        if self.rng.random() < 0.5:
            response, killed = self._http("snapshot", "POST", "/v1/snapshots")
            ok = response is not None and response.status_code == 200
            made = [(p, True) for p in (set(folder.glob("*.snapshot")) if folder.is_dir() else set()) - before]
        else:
            out = self.work / "snaps" / f"s{self.stats['snapshot'].runs}.snapshot"
            rc, killed, _ = self._cli(
                ["snapshot", "create", "--index", str(self.index_dir), "--out", str(out)], name="snapshot"
            )
            ok = rc == 0
            made = [(out, False)] if out.exists() else []
        self.stats["snapshot"].acknowledged += ok
        if ok and not made:
            self._fail("an acknowledged snapshot left no file")
        # A file there, even from a killed run, was renamed into place whole: it must restore right.
        self.snapshots += [Snapshot(p, state, api) for p, api in made]
        return killed

    def _restored(self, snapshot: Snapshot) -> dict[str, str]:
        """What the oracle expects after restoring snapshot: its state, minus every erasure since."""
        out = {}
        for pid in self.state:
            s = snapshot.state.get(pid, ABSENT)
            if pid in self.delete_acked:
                s = ABSENT
            elif pid in self.delete_tried and s != ABSENT:
                s = MAYBE
            if pid in self.old and self.purge_acked:
                s = ABSENT
            elif pid in self.old and self.purge_tried and s != ABSENT:
                s = MAYBE
            out[pid] = s
        return out

    def _op_restore(self) -> bool:
        if not self.snapshots:
            return False
        snapshot = self.rng.choice(self.snapshots)
        self.check("before a restore")
        restored = self._restored(snapshot)
        if snapshot.api and self.rng.random() < 0.5:
            response, killed = self._http("restore", "POST", f"/v1/snapshots/{snapshot.path.name}/restore")
            ok = response is not None and response.status_code == 200
        else:
            args = ["snapshot", "restore", str(snapshot.path), "--index", str(self.index_dir), "--force"]
            rc, killed, _ = self._cli(args, name="restore")
            ok = rc == 0
        if ok:
            self.state = restored
            self.stats["restore"].acknowledged += 1
            self.restore_outcomes["acknowledged"] += 1
        elif killed:
            self._pending_restore = restored
        return killed

    def _op_verdict(self) -> bool:
        clusters = self._cluster_ids()
        if not clusters:
            return False
        cluster = self.rng.choice(clusters)
        verdict = "confirmed" if self.rng.random() < 0.3 else "dismissed"
        body = {"verdict": verdict, "note": f"kill loop {self.stats['verdict'].runs}"}
        response, killed = self._http("verdict", "POST", f"/v1/clusters/{cluster}/verdict", body)
        if response is not None and response.status_code == 201:
            self.verdicts[int(response.json()["verdict_id"])] = cluster
            self.stats["verdict"].acknowledged += 1
        elif response is not None and response.status_code not in (404, 503):
            self._fail(f"verdict on {cluster}: HTTP {response.status_code} {response.text[:200]}")
        return killed

    # -- checking ----------------------------------------------------------------------------

    _pending_restore: dict[str, str] | None = None

    def _fail(self, problem: str) -> None:
        self.log(f"FAIL {problem}")
        if len(self.failures) < 50:
            self.failures.append(problem)

    def _db(self, name: str) -> sqlite3.Connection | None:
        path = self.index_dir / name
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) if path.exists() else None

    def _cluster_ids(self) -> list[str]:
        db = self._db("prompts.sqlite")
        if db is None:
            return []
        try:
            return [r[0] for r in db.execute("SELECT cluster_id FROM clusters")]
        except sqlite3.OperationalError:  # no dedup run yet
            return []
        finally:
            db.close()

    def check(self, label: str) -> None:
        """Open the index read-only and hold it against the oracle; unknowns become what is there."""
        from search.index import PromptIndex

        self.checks += 1
        began = time.monotonic()
        with PromptIndex.open(self.index_dir, None) as index:  # finishes a restore a kill interrupted
            self.opens.append(time.monotonic() - began)
            verify = index.verify()
            stored = set(index.store.ids_of(index.store.rows_matching()).values())
        if self._pending_restore is not None:
            restored, self._pending_restore = self._pending_restore, None
            if _fits(restored, stored):
                self.state, outcome = restored, "killed, then restored"
            elif _fits(self.state, stored):
                outcome = "killed, left as before"
            else:
                outcome = "killed, half restored"
                self._fail(f"{label}: a killed restore left neither the old nor the restored prompts")
            self.restore_outcomes[outcome] += 1
        problems = []
        if not verify["consistent"]:
            self.agree = False
            problems.append(f"store, FAISS and LSHs disagree: {verify}")
        if verify["duplicate_ids"]:
            self.duplicates = max(self.duplicates, int(verify["duplicate_ids"]))
            problems.append(f"{verify['duplicate_ids']} duplicate ids")
        phantoms = stored - set(self.state)
        if phantoms:
            self.phantoms = max(self.phantoms, len(phantoms))
            problems.append(f"{len(phantoms)} ids never sent, e.g. {sorted(phantoms)[:3]}")
        lost = [i for i, s in self.state.items() if s == PRESENT and i not in stored]
        back = [i for i, s in self.state.items() if s == ABSENT and i in stored]
        for pid in lost + back:
            path = self.acked_by.get(pid, "seed")
            if path in self.stats:
                self.stats[path].lost += 1
        if lost:
            problems.append(f"{len(lost)} acknowledged prompts missing, e.g. {lost[:3]}")
        if back:
            problems.append(f"{len(back)} acknowledged deletes undone, e.g. {back[:3]}")
        problems += self._check_clusters() + self._check_verdicts()
        for problem in problems:
            self._fail(f"{label}: {problem}")
        self.state = {i: (PRESENT if i in stored else ABSENT) for i in self.state}  # the facts, from now on

    def _check_clusters(self) -> list[str]:
        db = self._db("prompts.sqlite")
        if db is None:
            return []
        try:
            last = db.execute("SELECT stats FROM dedup_runs ORDER BY run DESC LIMIT 1").fetchone()
            current = {r[0] for r in db.execute("SELECT cluster_id FROM clusters")}
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()
        problems = []
        made = None if last is None else json.loads(last[0]).get("clusters")
        if made is not None and made != len(current):
            problems.append(f"dedup half state: {len(current)} clusters, the last run made {made}")
        from search.family_index import FamilyIndex

        families = FamilyIndex.load(self.index_dir)
        if families is not None and not set(map(str, families.cluster_ids)) <= current:
            stale = set(map(str, families.cluster_ids)) - current
            problems.append(f"families.npz names {len(stale)} clusters the last dedup run did not make")
        return problems

    def _check_verdicts(self) -> list[str]:
        if not self.verdicts:
            return []
        db = self._db("triage.sqlite")
        kept = set() if db is None else {int(r[0]) for r in db.execute("SELECT verdict_id FROM verdicts")}
        if db is not None:
            db.close()
        lost = set(self.verdicts) - kept
        self.stats["verdict"].lost = len(lost)
        return [f"{len(lost)} acknowledged verdicts missing: {sorted(lost)[:5]}"] if lost else []

    # -- reporting ---------------------------------------------------------------------------

    def report(self, seconds: float) -> dict[str, Any]:
        restarts = sorted(self.restarts[1:])  # the first start is not a restart
        kills = sum(s.kills for s in self.stats.values())
        present = sum(s == PRESENT for s in self.state.values())
        return {
            "seconds": round(seconds, 1),
            "kills": kills,
            "restarts": len(restarts),
            "restart_seconds": {
                "max": round(max(restarts, default=0.0), 2),
                "p99": round(_quantile(restarts, 0.99), 2),
                "median": round(_quantile(restarts, 0.5), 2),
                "over_10s": sum(r > 10 for r in restarts),
            },
            "paths": {n: vars(s) for n, s in self.stats.items() if s.runs},
            "prompts": {
                "sent": len(self.state),
                "present_at_end": present,
                "acknowledged_missing": sum(s.lost for n, s in self.stats.items() if n in ("api_ingest", "cli_ingest")),
                "acknowledged_deletes_undone": sum(
                    s.lost for n, s in self.stats.items() if n in ("api_delete", "cli_delete", "purge")
                ),
                "never_sent_present": self.phantoms,
                "duplicate_ids": self.duplicates,
            },
            "verdicts": {"acknowledged": len(self.verdicts), "missing": self.stats["verdict"].lost},
            "restores": dict(self.restore_outcomes),
            "snapshots_restorable": len(self.snapshots),
            "structures_agree": self.agree,
            "checks": self.checks,
            "index_open_seconds": {
                "max": round(max(self.opens, default=0.0), 2),
                "median": round(_quantile(self.opens, 0.5), 2),
            },
            "load_average_at_restarts": {
                "max": round(max(self.loads, default=0.0), 1),
                "median": round(_quantile(self.loads, 0.5), 1),
            },
            "debris": _debris(self.index_dir, self.work / "snaps"),
            "searches": {
                "ok": self.searcher.counts["ok"],
                "expected_errors": self.searcher.counts["expected_errors"],
                "unexpected_errors": self.searcher.counts["unexpected_errors"],
                "unexpected_examples": self.searcher.unexpected[:5],
            },
            "failures": self.failures,
            "passed": not self.failures and not self.searcher.counts["unexpected_errors"],
        }


def _debris(*folders: Path) -> list[str]:
    """What killed runs left behind: temporary files and folders (they hold copies of prompts)."""
    found = []
    for folder in folders:
        for sub in (folder, folder / "snapshots"):
            if sub.is_dir():
                found += [
                    str(p) for p in sub.iterdir() if p.name.startswith((".", "tmp")) and p.name != ".keys.json.lock"
                ]
    return sorted(found)


def _fits(expected: dict[str, str], stored: set[str]) -> bool:
    return all((s != PRESENT or i in stored) and (s != ABSENT or i not in stored) for i, s in expected.items())


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(report: dict[str, Any]) -> str:
    """The report as a readable table."""
    lines = [f"{'write path':<12} {'runs':>5} {'kills':>6} {'acked':>7} {'lost':>5}"]
    for name, s in report["paths"].items():
        lines.append(f"{name:<12} {s['runs']:>5} {s['kills']:>6} {s['acknowledged']:>7} {s['lost']:>5}")
    p, r, q = report["prompts"], report["restart_seconds"], report["searches"]
    lines += [
        f"{'total':<12} {sum(s['runs'] for s in report['paths'].values()):>5} {report['kills']:>6}",
        "",
        f"prompts sent {p['sent']}, present at the end {p['present_at_end']}, acknowledged missing "
        f"{p['acknowledged_missing']}, acknowledged deletes undone {p['acknowledged_deletes_undone']}, "
        f"never sent {p['never_sent_present']}, duplicates {p['duplicate_ids']}",
        f"verdicts acknowledged {report['verdicts']['acknowledged']}, missing {report['verdicts']['missing']}; "
        f"restores {report['restores']}",
        f"store = FAISS = LSHs in all {report['checks']} checks: {report['structures_agree']}",
        f"restarts {report['restarts']}: restart -> /readyz max {r['max']} s, p99 {r['p99']} s, "
        f"median {r['median']} s, over 10 s: {r['over_10s']} (load average at restarts: median "
        f"{report['load_average_at_restarts']['median']}, max {report['load_average_at_restarts']['max']}); "
        f"index open (recovery) max {report['index_open_seconds']['max']} s",
        f"left behind by killed runs: {len(report['debris'])}" + "".join(f"\n  {d}" for d in report["debris"][:5]),
        f"searches ok {q['ok']}, failed while the server was down {q['expected_errors']}, "
        f"failed otherwise {q['unexpected_errors']}",
        f"failures: {len(report['failures'])}" + "".join(f"\n  {f}" for f in report["failures"][:10]),
        "PASSED" if report["passed"] else "FAILED",
    ]
    return "\n".join(lines)
