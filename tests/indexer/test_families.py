"""Campaign families end to end: every evasion class found, hard negatives left alone.

One small window (real prompts as slots and background, campaign wrappers written for this test,
not the benchmark's) is built and deduplicated once; the tests read its clusters. The family
encoder is the real multilingual USE; the index's own embeddings use the fake encoder, which
families do not read.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest

from indexer.campaigns import cluster_lines, nightly
from search.family_encoder import load_family_encoder
from search.index import PromptIndex
from search.intent import IntentScorer
from search.records import Prompt
from tests.conftest import FakeEncoder, background_texts

DAY, HOUR = 86_400.0, 3_600.0
T0 = 1_795_000_000.0

PREFIX = "Think carefully and lay out each step of your reasoning in order before you state the final answer."
SUFFIX = "When you are done, score your own answer out of ten for accuracy and defend that score in two sentences."
MIDDLE = "Relying only on the passage above, answer the question that follows and name the sentence you used."
MULTIPART = (
    "## Task\nGive an authoritative, expert answer.\n## Request\n",
    "\n## Rules\nNumbered reasoning, then a summary.",
)
SHORT = "Explain every step, then answer:"
POOL = (
    "Please go through your reasoning one step at a time and then answer.",
    "Lay out every step of your thinking, then give the answer.",
    "Write down each reasoning step in order before answering.",
    "Reason it out step by step, showing all the intermediate steps, then answer.",
    "Show me your full line of reasoning, step after step, and finish with the answer.",
)
TRANSLATED = {
    "en": "Act as a senior specialist: answer the question below in depth and justify every point you make.",
    "de": "Handle als erfahrener Spezialist: Beantworte die folgende Frage ausführlich und begründe jeden Punkt.",
    "fr": "Agis en spécialiste chevronné : réponds en profondeur à la question ci-dessous et justifie chaque point.",
    "zh": "请以资深专家的身份深入回答下面的问题，并为你提出的每一个观点给出理由。",
    "ja": "熟練した専門家として、次の質問に詳しく答え、述べるすべての論点に根拠を示してください。",
}
SYNONYMS = (
    "{Give|Provide|Write} a {full|thorough|complete} {account|explanation} of {how|why} you {reach|arrive at} "
    "your {answer|conclusion} for the {passage|text} below, {and then|then} {state|give} {it|the answer}."
)
BURST = "Answer as a domain expert and explain the reasoning behind each part of your answer:\n\n{slot}"
TEAM = "Turn this on-call note into a two-line status update for the platform channel:\n\n{slot}"
APPS = ("Title this passage in five words or fewer:\n\n{slot}", "List three named entities that appear here:\n\n{slot}")


class Window:
    """Prompts with ids, accounts and times, and which campaign or benign group each belongs to."""

    def __init__(self) -> None:
        self.rng = random.Random(11)
        self.prompts: list[Prompt] = []
        self.label: dict[str, str] = {}
        self.slots = iter(background_texts(3000))

    def add(self, text: str, account: str, t: float, label: str) -> None:
        pid = f"p{len(self.prompts):05d}"
        self.prompts.append(Prompt(pid, text, account, T0 + t))
        self.label[pid] = label

    def campaign(self, name: str, render, accounts: int = 20, per_account: int = 3, start: float = 2) -> None:
        for a in range(accounts):
            for _ in range(per_account):
                t = DAY * (start + 1.5 * self.rng.random())
                self.add(render(self.rng, next(self.slots)), f"{name}-{a}", t, name)


def _swap(rng: random.Random, template: str) -> str:
    import re

    picked = re.sub(r"\{([^{}]*\|[^{}]*)\}", lambda m: rng.choice(m.group(1).split("|")), template)
    noisy = []
    for ch in picked:  # Cyrillic look-alikes and zero-width spaces
        noisy.append({"a": "\u0430", "e": "\u0435", "o": "\u043e"}.get(ch, ch) if rng.random() < 0.2 else ch)
        if ch == " " and rng.random() < 0.3:
            noisy.append("\u200b")
    return "".join(noisy)


def build_window() -> Window:
    w = Window()
    for a in range(120):  # ordinary users: a few prompts each, over two weeks
        for _ in range(w.rng.choice((1, 2, 3, 5))):
            w.add(next(w.slots), f"user-{a}", DAY * 14 * w.rng.random(), "benign")
    w.campaign("prefix", lambda r, s: f"{PREFIX}\n\n{s}", start=1)
    w.campaign("suffix", lambda r, s: f"{s}\n\n{SUFFIX}", start=4)
    w.campaign("middle", lambda r, s: f"{s[: len(s) // 2]}\n\n{MIDDLE}\n\n{s[len(s) // 2 :]}", start=6)
    w.campaign("multipart", lambda r, s: f"{MULTIPART[0]}{s}{MULTIPART[1]}", start=8)
    w.campaign("structured", lambda r, s: _payload(r, s), start=10)
    w.campaign("short", lambda r, s: f"{SHORT} {s}", start=2)
    w.campaign("pool", lambda r, s: f"{r.choice(POOL)}\n\n{s}", start=5)
    w.campaign("translated", lambda r, s: f"{TRANSLATED[r.choice(sorted(TRANSLATED))]}\n\n{s}", start=7)
    w.campaign("synonyms", lambda r, s: f"{_swap(r, SYNONYMS)}\n\n{s}", start=9)
    for a in range(60):  # one prompt each from sixty fresh accounts inside six hours
        w.add(BURST.format(slot=next(w.slots)), f"burst-{a}", DAY * 11 + 6 * HOUR * w.rng.random(), "burst")
    for a in range(10):  # a team: long-lived accounts on one narrow template, every day
        for day in range(14):
            for _ in range(3):
                note = f"Host db-{w.rng.randint(1, 40)} {w.rng.choice(('paged', 'recovered', 'degraded'))} at {day}h."
                w.add(TEAM.format(slot=note), f"team-{a}", DAY * day + HOUR * w.rng.uniform(8, 18), "team")
    for a in range(40):  # ordinary users who append "think step by step" to some of their own questions
        for _ in range(w.rng.choice((1, 2))):
            w.add(f"{next(w.slots)} Think step by step.", f"cot-{a}", DAY * 14 * w.rng.random(), "cot_users")
    return w


def _payload(rng: random.Random, slot: str) -> str:
    fields = [
        ("instruction", "Answer the input with numbered reasoning steps."),
        ("input", slot),
        ("format", {"steps": "numbered", "answer": "final line"}),
        ("trace_id", f"{rng.getrandbits(40):x}"),
    ]
    rng.shuffle(fields)
    return json.dumps(dict(fields), indent=rng.choice((None, 2)))


CAMPAIGNS = (
    *("prefix", "suffix", "middle", "multipart", "structured", "short", "pool", "translated", "synonyms", "burst"),
)


@pytest.fixture(scope="module")
def deduped(tmp_path_factory):
    w = build_window()
    path = tmp_path_factory.mktemp("families") / "idx"
    encoder = FakeEncoder()
    with PromptIndex.open(path, encoder, writable=True, create=True) as index:
        index.upsert(w.prompts, index.signals([p.text for p in w.prompts]))
        index.checkpoint()
    with PromptIndex.open(path, encoder) as index:
        clusters, stats = nightly(index, family_encoder=load_family_encoder())
        lines = cluster_lines(index, clusters)
    return w, lines, stats, path


def _home(lines: list[dict], label: dict[str, str], name: str) -> tuple[dict | None, int]:
    """The cluster holding most of a group's prompts, and how many of them it holds."""
    best, held = None, 0
    for line in lines:
        n = sum(label[m] == name for m in line["members"])
        if n > held:
            best, held = line, n
    return best, held


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_each_class_lands_in_one_pure_flagged_cluster(deduped, name):
    w, lines, _, _ = deduped
    total = sum(v == name for v in w.label.values())
    home, held = _home(lines, w.label, name)
    assert home is not None and home["flagged"], (name, home and home["features"]["why"])
    assert held >= 0.9 * total, (name, held, total)
    purity = held / home["size"]
    assert purity >= 0.95, (name, Counter(w.label[m] for m in home["members"]).most_common(3))


@pytest.mark.parametrize("name", ("team", "cot_users"))
def test_hard_negatives_are_not_flagged(deduped, name):
    w, lines, _, _ = deduped
    flagged = {m for line in lines if line["flagged"] for m in line["members"]}
    assert not any(w.label[m] == name for m in flagged), name
    if name == "team":  # the team's template is clustered all the same, and seen to be uncoordinated
        home, held = _home(lines, w.label, "team")
        assert held >= 0.9 * 420 and not home["flagged"]
        assert home["features"]["score_parts"]["coordination"] < 0.2 < home["features"]["score_parts"]["repetition"]


def test_the_same_instruction_in_five_languages_is_one_family_with_alike_intent(deduped):
    w, lines, _, _ = deduped
    home, held = _home(lines, w.label, "translated")
    texts = {p.id: p.text for p in w.prompts}
    languages = {lang for lang, text in TRANSLATED.items() for m in home["members"] if texts[m].startswith(text)}
    assert languages == set(TRANSLATED) and held == home["size"]
    scorer = IntentScorer(load_family_encoder())
    intent, _ = scorer.scores(list(TRANSLATED.values()))
    assert intent.min() >= 0.5 and intent.max() - intent.min() <= 0.35, dict(zip(TRANSLATED, intent.round(2)))


def test_families_that_share_only_slots_stay_apart(tmp_path):
    """Two campaigns wrap the same passages in different instructions: two clusters, never one."""
    w = Window()
    passages = background_texts(3000)[-60:]
    first = "Using the passage, write three exam questions with model answers and the reasoning for each."
    second = "Rewrite this passage as a numbered chain of reasoning that leads to its main conclusion."
    for a in range(60):
        for n, text in enumerate((first, second)):
            w.add(f"{text}\n\n{passages[a]}", f"c{n}-{a % 15}", DAY * (2 + n * 3 + w.rng.random()), f"c{n}")
    for a in range(80):
        w.add(next(w.slots), f"user-{a}", DAY * 14 * w.rng.random(), "benign")
    encoder = FakeEncoder()
    with PromptIndex.open(tmp_path / "idx", encoder, writable=True, create=True) as index:
        index.upsert(w.prompts, index.signals([p.text for p in w.prompts]))
        index.checkpoint()
        clusters, _ = nightly(index, family_encoder=load_family_encoder())
        lines = cluster_lines(index, clusters)
    for name in ("c0", "c1"):
        home, held = _home(lines, w.label, name)
        assert held == 60 and home["size"] == 60, (name, Counter(w.label[m] for m in home["members"]))


def test_search_finds_the_family_of_a_translated_rewording(deduped):
    from search.engine import SearchEngine

    w, lines, _, path = deduped
    home, _ = _home(lines, w.label, "translated")
    query = "Ты опытный специалист: подробно ответь на вопрос ниже и обоснуй каждый свой тезис.\n\nWhy is the sky blue?"
    with PromptIndex.open(path, FakeEncoder()) as index:
        result = SearchEngine(index).similar(query, k=10)
    assert result.family is not None and result.family.cluster_id == home["cluster_id"]
    assert all(w.label[h.id] == "translated" for h in result.hits) and len(result.hits) == 10
    assert all(h.family is not None and 0 < h.family <= 1 for h in result.hits)


def test_stats_count_families(deduped):
    _, _, stats, path = deduped
    assert stats["edges"]["families"] >= len(CAMPAIGNS) and stats["edges"]["family_members"] > 0
    assert (path / "families.npz").stat().st_mode & 0o777 == 0o600
    assert np.isfinite(stats["seconds"]["families"])
