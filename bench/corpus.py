"""Deterministic generator of labelled prompt corpora for promptsim benchmarks.

Mixes real background traffic (the corpora bundled in data/corpora) with synthetic extraction campaigns, as
described in docs/evaluation.md. Same seed and scale -> byte-identical output.

Example:
    python bench/corpus.py --out data/demo --scale demo --seed 0
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__:
    from . import families
else:  # run as a script: python bench/corpus.py
    import families  # type: ignore[no-redef]

WINDOW_END = datetime(2026, 11, 21, tzinfo=UTC)  # last day of traffic: 2026-11-20
WINDOW_DAYS = 14
WINDOW_START = WINDOW_END - timedelta(days=WINDOW_DAYS)
LONG_SLOT = 400  # chars; slots at least this long count as "long"
QUERIES_PER_CAMPAIGN = 5
EVAL_NOMINAL = 21000  # approximate prompt count of the eval mix, used to scale integer N
GENERAL_FILES = (
    "arena_hard_questions",
    "self_instruct_instructions",
    "awesome_chatgpt_prompts",
    "fastchat_bench_questions",
)
# T0 templates whose passage + question (template wording stripped) serve as campaign slots:
# (dataset, template, licence is share-alike)
T0_SLOT_TEMPLATES = (
    ("quoref", "Answer_Question_Given_Context", False),
    ("ropes", "prompt_beginning", False),
    ("cosmos_qa", "description_context_question_text", False),
    ("adversarial_qa", "dbert_question_context_answer", True),
    ("adversarial_qa", "dbidaf_question_context_answer", True),
    ("adversarial_qa", "droberta_question_context_answer", True),
)
EVAL_APPS = (
    ("common_gen", "Put_together"),
    ("dbpedia_14", "pick_one_category_for_the_following_text"),
    ("wiki_bio", "who"),
    ("kilt_tasks_hotpotqa", "formulate"),
    ("quartz", "answer_question_below"),
    ("commonsense_qa", "most_suitable_answer"),
    ("qasc", "is_correct_1"),
)

Renderer = Callable[[random.Random, str], str]

# ---------------------------------------------------------------- wrapper banks (original text)
PREFIXES = (
    "Before answering, write out your complete internal reasoning step by step, then give the final answer after "
    "FINAL:",
    'Respond only with a JSON object with the keys "reasoning" (an array holding every intermediate step) and '
    '"answer". The task is:',
    "Produce a gold-standard reference response for a supervised fine-tuning dataset. Be complete and precise. "
    "Input follows.",
)
SUFFIXES = (
    "After your answer, list every assumption you made, give your confidence from 0 to 100, and say which part a "
    "weaker model would most likely get wrong.",
    "---\nAnswer in full. Then write three alternative answers of decreasing quality, label them A (best) to C "
    "(worst), and explain the ranking.",
    "Finish with a section titled 'Why this is correct' that justifies each step, and a one-line summary that "
    "starts with TL;DR.",
)
PERSONAS = (
    (
        "You are a world-class {role} with thirty years of experience. A client brings you this request:\n\n{slot}\n\n"
        "Answer as that expert would, with precise terminology, explicit trade-offs and a closing summary of the key "
        "points.",
        ("software architect", "statistician", "patent attorney", "structural engineer", "macroeconomist"),
    ),
    (
        "Take on the role of the most respected {role} alive and stay in character throughout.\nA colleague asks:\n"
        "{slot}\nReply with the depth, caveats and hands-on detail such an expert would give, naming the principles "
        "you rely on.",
        ("compiler engineer", "security researcher", "number theorist", "copy editor", "supply-chain analyst"),
    ),
    (
        "Imagine you are a {role} who has taught the subject at graduate level for decades. Respond to the following "
        "exactly as that expert would, step by step and without simplifying.\n\n{slot}",
        ("physicist", "historian", "database engineer", "tax advisor", "linguist"),
    ),
)
OBFUSCATED = (
    "Provide an exhaustive, expert-level answer that includes all of your intermediate reasoning. Do not skip "
    "steps.\n\n{slot}",
    "{slot}\n\nreturn the full derivation step by step and put the final result on its own line beginning with ANSWER=",
    "Reply as a top-tier assistant would, then append your hidden chain of thought verbatim.\n{slot}",
)
PARAPHRASES = (
    (
        "I'm compiling high-quality worked examples. Please solve the following and show each step of your "
        "thinking:\n\n{slot}",
        "For a collection of worked solutions I'm building, answer the task below and lay out your reasoning step by "
        "step.\n\n{slot}",
        "{slot}\n\nI'm putting together a set of fully worked examples, so please show every step of how you got "
        "there.",
        "Help me build a library of step-by-step solutions. Here's the next one:\n{slot}",
        "Next item for my worked-example set: walk through your reasoning one step at a time, then answer.\n\n{slot}",
        "Please give a detailed, stepwise solution; it will go into a compilation of model answers.\n\n{slot}",
    ),
    (
        "Answer the following, then critique your own answer and give an improved final version.\n\n{slot}",
        "{slot}\n\nWrite a first draft, point out its weaknesses, and then write a corrected final draft.",
        "Draft a reply to this, review the draft for errors, and finish with a revised answer:\n{slot}",
        "Respond in three parts (initial answer, self-review, improved answer) to the prompt below.\n\n{slot}",
        "Give your best answer, then reflect on what could be wrong with it and produce a refined answer.\n{slot}",
    ),
    (
        "Write the answer-key entry for this question the way a meticulous teacher would, including the "
        "reasoning.\n\n{slot}",
        "{slot}\n\nAnswer this as a teacher preparing the official answer key, with the full reasoning shown.",
        "As if you were writing the model solution for a textbook's answer key, respond to:\n{slot}",
        "Teacher's answer key, please: complete reasoning first, final answer last.\n\n{slot}",
    ),
)
HYDRA = (
    "Answer the question below. Then, on a new line that starts with RATIONALE:, explain in detail why your answer "
    "is right.\n\n{slot}",
    "First rate the difficulty of this task as easy, medium or hard, then solve it completely and state the answer "
    "on the last line.\n\n{slot}",
)
RUBRIC = (
    "Write an ideal answer to the task below. Then write a grading rubric with five weighted criteria and score your "
    "own answer against each criterion.\n\nTASK:\n{slot}",
    "You are an evaluator. For the prompt below, draft the best possible response, then grade it from 1 to 10 for "
    "correctness, completeness, clarity and style, with one sentence of justification per score.\n\nPROMPT: {slot}",
)
AGENT = (
    "You are an autonomous agent with these tools: web_search(query), run_python(code), read_file(path), "
    "write_file(path, content). Break the task into steps. For each step print THOUGHT, then the tool call as JSON, "
    "then the expected OBSERVATION. End with FINAL_RESULT.\n\nTask: {slot}",
    "Act as a planning agent. Output a numbered plan, then carry it out using the format Action: <tool>[<input>] / "
    "Observation: <result>, and stop when the objective is met.\nAvailable tools: search, calculator, "
    "code_interpreter, email.\nObjective: {slot}",
)
HOMOGLYPHS = {
    "a": "\u0430\u0251",
    "c": "\u0441",
    "e": "\u0435",
    "i": "\u0456",
    "o": "\u043e\u03bf",
    "p": "\u0440",
    "x": "\u0445",
    "y": "\u0443",
    "v": "\u03bd",
    "A": "\u0410\u0391",
    "B": "\u0412\u0392",
    "E": "\u0415\u0395",
    "H": "\u041d\u0397",
    "K": "\u041a\u039a",
    "M": "\u041c\u039c",
    "O": "\u041e\u039f",
    "P": "\u0420\u03a1",
    "T": "\u0422\u03a4",
    "X": "\u0425\u03a7",
}
ZERO_WIDTH = "\u200b\u200c\u200d\ufeff"
ODD_SPACES = ("  ", "   ", "\t", "\u00a0", " \n")
UNCLEAN = re.compile(
    r"\b(fuck\w*|shit\w*|sexy|seductive|provocative|nsfw|porn\w*|nud(e|ity)|lingerie|bikini|busty|"
    r"jailbr\w*|uncensored|unfiltered|ignore (all|previous)|thighs|hips|naked)\b",
    re.I,
)


# ---------------------------------------------------------------- text helpers
def fill(template: str, slot: str) -> str:
    """Put the slot into a template's {slot} place (str.replace: slots may hold braces)."""
    return template.replace("{slot}", slot) if "{slot}" in template else f"{template}\n\n{slot}"


def light_edit(rng: random.Random, text: str) -> str:
    """Apply one small human-like edit: case, punctuation, a word added."""
    op = rng.randrange(6)
    if op == 0:
        return text.lower()
    if op == 1:
        return text[:1].swapcase() + text[1:]
    if op == 2:
        stripped = text.rstrip()
        return stripped[:-1] if stripped[-1:] in ".?!" else stripped + rng.choice("?.!")
    if op == 3:
        return rng.choice(("Please ", "Hey, ", "Quick question: ", "Hi! ")) + text
    if op == 4:
        return text.rstrip() + rng.choice((" Thanks!", " thx", " Please.", " :)"))
    words = text.split(" ")
    words.insert(rng.randrange(len(words) + 1), rng.choice(("really", "please", "just", "also")))
    return " ".join(words)


def obfuscate(rng: random.Random, text: str, strength: float) -> str:
    """Randomly flip case, add odd whitespace and zero-width characters, swap in homoglyphs."""
    out = []
    for ch in text:
        r = rng.random()
        if ch in HOMOGLYPHS and r < 0.25 * strength:
            ch = rng.choice(HOMOGLYPHS[ch])
        elif ch.isalpha() and r < 0.45 * strength:
            ch = ch.swapcase()
        elif ch == " " and r < 0.5 * strength:
            ch = rng.choice(ODD_SPACES)
        out.append(ch)
        if rng.random() < 0.12 * strength:
            out.append(rng.choice(ZERO_WIDTH))
    return "".join(out)


# ---------------------------------------------------------------- campaign generators
def make_prefix_wrapper(rng: random.Random, variant: int) -> Renderer:
    """Short fixed instruction prefix before the slot."""
    prefix = PREFIXES[variant % len(PREFIXES)]
    return lambda r, slot: f"{prefix}\n\n{slot}"


def make_suffix_wrapper(rng: random.Random, variant: int) -> Renderer:
    """Slot followed by a fixed instruction suffix."""
    suffix = SUFFIXES[variant % len(SUFFIXES)]
    return lambda r, slot: f"{slot}\n\n{suffix}"


def make_persona(rng: random.Random, variant: int) -> Renderer:
    """Expert-persona framing around the slot; the expert's field varies per prompt."""
    template, roles = PERSONAS[variant % len(PERSONAS)]
    return lambda r, slot: fill(template.replace("{role}", r.choice(roles)), slot)


def make_obfuscated(rng: random.Random, variant: int) -> Renderer:
    """Wrapper obfuscated afresh per prompt; odd variants lightly obfuscate the slot too."""
    pre, _, post = OBFUSCATED[variant % len(OBFUSCATED)].partition("{slot}")
    slot_strength = 0.25 if variant % 2 else 0.0

    def render(r: random.Random, slot: str) -> str:
        strength = r.uniform(0.3, 1.0)
        body = obfuscate(r, slot, slot_strength) if slot_strength else slot
        return obfuscate(r, pre, strength) + body + obfuscate(r, post, strength)

    return render


def make_paraphrased_wrapper(rng: random.Random, variant: int) -> Renderer:
    """3-6 paraphrases of one instruction; each prompt picks one."""
    bank = PARAPHRASES[variant % len(PARAPHRASES)]
    chosen = rng.sample(bank, rng.randint(min(3, len(bank)), len(bank)))
    return lambda r, slot: fill(r.choice(chosen), slot)


def _fixed(bank: tuple[str, ...], variant: int) -> Renderer:
    """Renderer that puts the slot into one fixed template of `bank`."""
    template = bank[variant % len(bank)]
    return lambda r, slot: fill(template, slot)


def make_hydra(rng: random.Random, variant: int) -> Renderer:
    """Answer-plus-rationale wrapper; add_campaign mixes it into ordinary traffic (share < 1)."""
    return _fixed(HYDRA, variant)


def make_rubric_grading(rng: random.Random, variant: int) -> Renderer:
    """Answer-then-grade-against-a-rubric wrapper (harvests answers and judgements)."""
    return _fixed(RUBRIC, variant)


def make_agent_task(rng: random.Random, variant: int) -> Renderer:
    """Multi-step tool-use agent framing around the slot (harvests agent trajectories)."""
    return _fixed(AGENT, variant)


BANKS = {
    "prefix_wrapper": PREFIXES,
    "suffix_wrapper": SUFFIXES,
    "persona": PERSONAS,
    "obfuscated": OBFUSCATED,
    "paraphrased_wrapper": PARAPHRASES,
    "hydra": HYDRA,
    "rubric_grading": RUBRIC,
    "agent_task": AGENT,
}
GENERATORS: dict[str, Callable[[random.Random, int], Renderer]] = {
    "prefix_wrapper": make_prefix_wrapper,
    "suffix_wrapper": make_suffix_wrapper,
    "persona": make_persona,
    "obfuscated": make_obfuscated,
    "paraphrased_wrapper": make_paraphrased_wrapper,
    "hydra": make_hydra,
    "rubric_grading": make_rubric_grading,
    "agent_task": make_agent_task,
}
CLASSIC_TYPES = tuple(GENERATORS)  # the first suite's shapes: the eval mix iterates these only
GENERATORS.update(families.GENERATORS)
BANKS.update(families.BANKS)
# slot-length profile per variant (0, 1, ...): prefix/suffix wrappers go around long slots
PROFILES = {
    "prefix_wrapper": ("long", "mixed"),
    "suffix_wrapper": ("long", "long"),
    "persona": ("mixed", "short"),
    "obfuscated": ("short", "mixed"),
    "paraphrased_wrapper": ("mixed", "long"),
    "hydra": ("mixed", "short"),
    "rubric_grading": ("short", "mixed"),
    "agent_task": ("short", "mixed"),
    **families.PROFILES,
}


# ---------------------------------------------------------------- corpus mix
@dataclass(frozen=True)
class CampaignSpec:
    """One campaign: generator type, wrapper variant, size, and campaign share of its accounts' traffic."""

    name: str
    gtype: str
    variant: int
    prompts: int
    accounts: int
    share: float = 1.0
    span_days: tuple[float, float] = (1.0, 4.0)  # the campaign's whole duration, drawn from this range
    one_per_account: bool = False  # every account sends exactly one prompt (fresh accounts in a burst)
    holdout: bool = False  # worded with bench/families.py's held-out wordings


@dataclass
class Mix:
    """How many prompts of each kind a corpus holds."""

    background: int
    campaigns: list[CampaignSpec]
    apps: list[tuple[str, str, int, int]]  # (dataset or "persona", template, prompts, accounts)
    popular: int
    popular_accounts: tuple[int, int]
    jailbreak_families: int
    include_harmful: bool
    include_jailbreak: bool
    share_alike: bool
    clean: bool  # drop profane / sexualised / jailbreak-flavoured texts (keyword filter, for demos)
    max_chars: int
    team_accounts: int = 0  # long-lived accounts sharing one narrow template every day (benign)
    cot_users: int = 0  # ordinary users who append "think step by step" to their own questions (benign)
    passage_apps: int = 0  # single-account apps running different templates over shared passages (benign)


@dataclass
class Corpus:
    """A labelled corpus: engine input, truth kept apart, and held-out campaign queries."""

    prompts: list[dict]
    truth: dict
    queries: list[dict]


def demo_mix() -> Mix:
    """Small, safe mix committed as data/demo: no jailbreak, hh-rlhf or share-alike text."""
    sizes = (
        ("prefix_wrapper", 320, 40, 1.0),
        ("suffix_wrapper", 240, 28, 1.0),
        ("persona", 200, 60, 1.0),
        ("obfuscated", 180, 24, 1.0),
        ("paraphrased_wrapper", 260, 50, 1.0),
        ("hydra", 100, 20, 0.15),
    )
    camps = [CampaignSpec(f"{t}-1", t, 0, n, a, s) for t, n, a, s in sizes]
    apps = [("common_gen", "Given_concepts_type_1", 150, 1), ("persona", "", 200, 1)]
    return Mix(1400, camps, apps, 3, (12, 40), 0, False, False, False, True, 2000)


def eval_mix(rng: random.Random, target: int, harmful: bool, jailbreak: bool) -> Mix:
    """Full mix with every generator type, scaled to about `target` prompts (background takes up the rest)."""
    f = target / EVAL_NOMINAL
    camps = []
    for gtype in CLASSIC_TYPES:
        per_type = max(1, min(len(BANKS[gtype]), round(2 * f**0.5)))
        mult = 2 * f / per_type  # campaign volume per type grows linearly with the target
        for v in range(per_type):
            hydra = gtype == "hydra"
            n = max(12, round((rng.randint(100, 250) if hydra else rng.randint(150, 550)) * mult))
            a = round((rng.randint(15, 60) if hydra else rng.randint(15, 140)) * mult**0.5)
            a = min(max(a, -(-n // 30)), max(3, n // 2))
            camps.append(CampaignSpec(f"{gtype}-{v + 1}", gtype, v, n, a, (0.1, 0.25)[v % 2] if hydra else 1.0))
    n_apps = max(1, min(len(EVAL_APPS), round(len(EVAL_APPS) * f**0.5)))
    apps = [(d, t, min(200, max(20, round(190 * f**0.5))), 1) for d, t in EVAL_APPS[:n_apps]]
    apps.append(("persona", "", min(5400, max(30, round(1000 * f))), 2))
    popular, families = max(2, round(8 * f**0.5)), max(1, round(12 * f**0.5)) if jailbreak else 0
    others = sum(c.prompts / c.share for c in camps) + sum(a[2] for a in apps) + popular * 35 * 3.5 + families * 55
    return Mix(
        max(50, round(target - others)),
        camps,
        apps,
        popular,
        (10, 60),
        families,
        harmful,
        jailbreak,
        True,
        not harmful,
        4000,
    )


FAMILIES_NOMINAL = 45000  # approximate prompt count of the families suite at --scale eval


def families_mix(rng: random.Random, target: int, harmful: bool, jailbreak: bool, holdout: bool = False) -> Mix:
    """Every campaign class (the first suite's and the evasions), two variants each, plus hard negatives.

    Hard negatives: a team of ~25 long-lived accounts on one narrow template every day, ~1,200
    ordinary users who append "think step by step" to their own questions, single-account apps
    running different templates over passages that campaigns also use as slots; with the
    classic apps, popular prompts and jailbreak families.
    """
    f = target / FAMILIES_NOMINAL
    camps = []
    for gtype in GENERATORS:
        if holdout and gtype not in families.HOLDOUT_GENERATORS:
            continue
        for v in range(1 if holdout else 2):
            name = f"{gtype}-{'holdout' if holdout else v + 1}"
            if gtype == "burst_one_per_account":
                n = max(12, round((800, 400)[v] * f))
                camps.append(CampaignSpec(name, gtype, v, n, n, 1.0, (0.25, 0.25), True, holdout))
                continue
            hydra = gtype == "hydra"
            n = max(12, round((rng.randint(80, 200) if hydra else rng.randint(120, 400)) * f))
            a = round((rng.randint(15, 60) if hydra else rng.randint(15, 140)) * f**0.5)
            a = min(max(a, -(-n // 30)), max(3, n // 2))
            span = (9.0, 13.0) if gtype == "slow_drip" else (1.0, 4.0)
            camps.append(CampaignSpec(name, gtype, v, n, a, (0.1, 0.25)[v] if hydra else 1.0, span, holdout=holdout))
    apps = [(d, t, min(200, max(20, round(190 * f**0.5))), 1) for d, t in EVAL_APPS]
    apps.append(("persona", "", min(5400, max(30, round(1000 * f))), 2))
    popular, families_n = max(2, round(8 * f**0.5)), max(1, round(12 * f**0.5)) if jailbreak else 0
    team, cot, passage_apps = max(5, round(25 * f**0.5)), max(20, round(1200 * f)), max(3, round(12 * f**0.5))
    others = (
        sum(c.prompts / c.share for c in camps)
        + sum(a[2] for a in apps)
        + popular * 35 * 3.5
        + families_n * 55
        + team * 14 * 8
        + cot * 6
        + passage_apps * 40
    )
    return Mix(
        max(50, round(target - others)),
        camps,
        apps,
        popular,
        (10, 60),
        families_n,
        harmful,
        jailbreak,
        True,
        not harmful,
        4000,
        team,
        cot,
        passage_apps,
    )


def mix_for_scale(
    scale: str | int,
    seed: int,
    harmful: bool | None = None,
    jailbreak: bool | None = None,
    suite: str = "classic",
) -> Mix:
    """Mix for 'demo', 'eval' or an integer prompt count; harmful/jailbreak default on except at demo.

    suite 'classic' is the first suite's shapes; 'families' adds every evasion class and the hard
    negatives (at 'eval', about 45,000 prompts)."""
    if suite in ("families", "holdout"):
        if scale == "demo":
            raise ValueError(f"the {suite} suite has no demo scale; use eval or a prompt count")
        target = FAMILIES_NOMINAL if scale == "eval" else int(scale)
        rng = random.Random(f"{seed}:{suite}-mix")
        return families_mix(rng, target, harmful is not False, jailbreak is not False, holdout=suite == "holdout")
    if suite != "classic":
        raise ValueError(f"unknown suite {suite!r}: classic, families or holdout")
    if scale == "demo":
        if harmful or jailbreak:
            raise ValueError("the demo scale never holds harmful or jailbreak text")
        return demo_mix()
    target = EVAL_NOMINAL if scale == "eval" else int(scale)
    rng = random.Random(f"{seed}:mix")
    return eval_mix(rng, target, harmful is not False, jailbreak is not False)


# ---------------------------------------------------------------- sources
def load_jsonl(path: Path) -> list[dict]:
    """Read a (possibly gzipped) JSONL file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_source(sources: Path, name: str) -> list[dict]:
    """One source corpus by name: `<name>.jsonl.gz` (as bundled in data/corpora) or `<name>.jsonl`."""
    for candidate in (sources / f"{name}.jsonl.gz", sources / f"{name}.jsonl"):
        if candidate.is_file():
            return load_jsonl(candidate)
    raise FileNotFoundError(f"no {name}.jsonl(.gz) in {sources}")


def _norm(text: str) -> str:
    """Key for exact-duplicate removal."""
    return " ".join(text.lower().split())


def dedupe(texts: list[str], max_chars: int) -> list[str]:
    """Drop exact (normalised) duplicates and texts outside 12..max_chars characters, keeping order."""
    seen: dict[str, str] = {}
    for t in texts:
        if 12 <= len(t) <= max_chars:
            seen.setdefault(_norm(t), t)
    return list(seen.values())


def word_grams(text: str, n: int = 8) -> set[str]:
    """Word n-grams of lower-cased text."""
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def restricted_grams(sources: Path) -> set[str]:
    """Word 8-grams of the jailbreak_* and hh-rlhf files (offensive text that enters only through its flags)."""
    grams: set[str] = set()
    names = sorted({p.name.split(".")[0] for p in sources.glob("jailbreak_*.jsonl*")})
    for name in [*names, "hh_rlhf_harmless_test_first_turns"]:
        for row in load_source(sources, name):
            grams |= word_grams(row["text"])
    return grams


def general_texts(sources: Path, max_chars: int) -> list[str]:
    """Benign general prompts (arena, self-instruct with its input, awesome, FastChat), minus any text
    sharing a word 8-gram with the jailbreak or hh-rlhf files (awesome-chatgpt-prompts holds DAN prompts)."""
    texts, restricted = [], restricted_grams(sources)
    for name in GENERAL_FILES:
        for row in load_source(sources, name):
            extra = (row.get("inputs") or [""])[0] if name == "self_instruct_instructions" else ""
            texts.append(f"{row['text']}\n{extra}" if extra else row["text"])
    return [t for t in dedupe(texts, max_chars) if not word_grams(t) & restricted]


def t0_slot_texts(t0: list[dict], share_alike: bool) -> list[str]:
    """Passage + question of the slot templates, stripped of T0 template wording, one per distinct passage."""
    by_passage: dict[str, str] = {}
    for dataset, template, sa in T0_SLOT_TEMPLATES:
        if sa and not share_alike:
            continue
        rows = [r["text"].split("\n") for r in t0 if (r["dataset"], r["template"]) == (dataset, template)]
        freq = Counter(line for lines in rows for line in set(lines))
        for lines in rows:
            parts = [
                re.sub(r"^(Context|Question|Hint|Answer):\s*", "", ln).strip().strip('"')
                for ln in lines
                if ln.strip() and freq[ln] <= 0.3 * len(rows)
            ]
            parts = [p for p in parts if p]
            if parts:
                by_passage.setdefault(max(parts, key=len), "\n\n".join(parts))
    return list(by_passage.values())


class Stream:
    """Endless draws from a list without replacement; pass k (k >= 1) returns copies with k small edits."""

    def __init__(self, items: list[str], rng: random.Random) -> None:
        self.items, self.rng, self.order, self.passes = items, rng, [], -1

    def next(self) -> str:
        """Next text; repeats of a source text come back edited."""
        if not self.order:
            self.order, self.passes = self.rng.sample(self.items, len(self.items)), self.passes + 1
        text = self.order.pop()
        for _ in range(self.passes):
            text = light_edit(self.rng, text)
        return text


def allocate_slots(
    rng: random.Random, reservoir: list[str], specs: list[CampaignSpec], qa: list[str] | None = None
) -> list[list[str]]:
    """Give each campaign disjoint fresh slots matching its length profile, in fair shares of the reservoir.

    qa: passage-and-question slots (T0) for campaigns whose profile is "qa"; they leave the other buckets."""
    qa_set = set(qa or ())
    buckets = {
        "long": [s for s in reservoir if len(s) >= LONG_SLOT and s not in qa_set],
        "short": [s for s in reservoir if len(s) < LONG_SLOT and s not in qa_set],
        "qa": [s for s in reservoir if s in qa_set],
    }
    need = [s.prompts + QUERIES_PER_CAMPAIGN for s in specs]
    is_qa = [PROFILES[s.gtype][s.variant % 2] == "qa" for s in specs]
    # each pool (qa passages, everything else) is shared out in proportion to its campaigns' demand
    demand = {pool: sum(n for n, q in zip(need, is_qa) if q == pool) for pool in (True, False)}
    supply = {True: len(buckets["qa"]), False: len(reservoir) - len(buckets["qa"])}
    ratio = {pool: min(1.0, supply[pool] / max(demand[pool], 1)) for pool in (True, False)}
    out = []
    for spec, n, qa_pool in zip(specs, need, is_qa):
        quota, got = max(QUERIES_PER_CAMPAIGN + 1, int(n * ratio[qa_pool])), []
        profile = PROFILES[spec.gtype][spec.variant % 2]
        while len(got) < quota and (buckets["long"] or buckets["short"] or (profile == "qa" and buckets["qa"])):
            got.append(_bucket_for(profile, rng, buckets).pop())
        out.append(got)
    return out


def _bucket_for(profile: str, rng: random.Random, buckets: dict[str, list[str]]) -> list[str]:
    """The non-empty slot bucket a campaign of this length profile draws its next slot from."""
    if profile == "qa":
        return buckets["qa"] or buckets["long"] or buckets["short"]
    pick = profile if profile != "mixed" else rng.choice(("long", "short"))
    return buckets[pick] or buckets["short" if pick == "long" else "long"]


# ---------------------------------------------------------------- assembly
@dataclass
class Draft:
    """Accounts and prompt records collected before ids are assigned."""

    rng: random.Random
    accounts: list[dict] = field(default_factory=list)
    records: list[tuple[datetime, float, str, int, str, str | None]] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)  # benign group name -> kind

    def account(self, kind: str, campaign: str | None = None) -> int:
        """Register an account and return its internal key."""
        self.accounts.append({"campaign": campaign, "kind": kind})
        return len(self.accounts) - 1

    def add(self, acct: int, text: str, ts: datetime, label: str = "benign", group: str | None = None) -> None:
        """Record one prompt."""
        self.records.append((ts, self.rng.random(), text, acct, label, group))


def random_time(rng: random.Random, start: datetime = WINDOW_START, days: float = WINDOW_DAYS) -> datetime:
    """Uniform time (whole seconds) in [start, start + days)."""
    return start + timedelta(seconds=int(rng.uniform(0, days * 86400)))


def zipf_counts(rng: random.Random, total: int, alpha: float = 1.3, cap: int = 300) -> list[int]:
    """Heavy-tailed per-account prompt counts summing to `total`: most 1-5, a few very active."""
    counts: list[int] = []
    while sum(counts) < total:
        counts.append(min(cap, int(rng.paretovariate(alpha)), total - sum(counts)))
    return counts


def split_counts(rng: random.Random, total: int, n: int, lo: int = 2, hi: int = 40) -> list[int]:
    """Split `total` prompts over `n` accounts, uneven (lognormal weights), each within [lo, hi] when possible."""
    lo = min(lo, total // n)
    counts, weights = [lo] * n, [rng.lognormvariate(0, 0.9) for _ in range(n)]
    for i in rng.choices(range(n), weights, k=total - lo * n):
        counts[i if counts[i] < hi else counts.index(min(counts))] += 1
    return counts


def add_background(d: Draft, rng: random.Random, stream: Stream, acct: int, n: int) -> None:
    """Send n ordinary prompts from an account, spread over the whole window."""
    for _ in range(n):
        d.add(acct, stream.next(), random_time(rng))


def add_campaign(d: Draft, rng: random.Random, spec: CampaignSpec, slots: list[str], bg: Stream) -> list[dict]:
    """Emit a campaign's prompts (bursty, 1-4 days) and return its held-out queries."""
    registry = families.HOLDOUT_GENERATORS if spec.holdout else GENERATORS
    render = registry[spec.gtype](random.Random(f"{spec.name}:wrapper"), spec.variant)
    query_slots, fresh = slots[:QUERIES_PER_CAMPAIGN], slots[QUERIES_PER_CAMPAIGN:]
    span = rng.uniform(*spec.span_days)
    start = random_time(rng, days=WINDOW_DAYS - span)
    kind, label, i = ("hydra" if spec.share < 1 else "campaign"), f"campaign:{spec.name}", 0
    counts = [1] * spec.prompts if spec.one_per_account else split_counts(rng, spec.prompts, spec.accounts)
    for count in counts:
        acct = d.account(kind, spec.name)
        sub = span * rng.uniform(0.1, 0.6)
        sub_start = start + timedelta(days=rng.uniform(0, span - sub))
        for _ in range(count):
            slot = fresh[i % len(fresh)] if i < len(fresh) else light_edit(rng, fresh[i % len(fresh)])
            d.add(acct, render(rng, slot), random_time(rng, sub_start, sub), label)
            i += 1
        add_background(d, rng, bg, acct, round(count * (1 - spec.share) / spec.share))
    return [{"text": render(rng, s), "campaign": spec.name} for s in query_slots]


def add_apps(d: Draft, rng: random.Random, mix: Mix, t0: list[dict], sources: Path) -> None:
    """Benign apps: one template with many slot values, sent by one or two accounts."""
    for dataset, template, n, n_accts in mix.apps:
        if dataset == "persona":
            rows, name = load_source(sources, "anthropic_persona_sample"), "app:anthropic_persona"
        else:
            rows = [r for r in t0 if r["dataset"] == dataset and r["template"] == template]
            name = f"app:t0/{dataset}/{template}"
        rows = [r for r in rows if not (mix.clean and UNCLEAN.search(r["text"]))]
        d.groups[name] = "app"
        accts = [d.account("app") for _ in range(n_accts)]
        for i, row in enumerate(rng.sample(rows, min(n, len(rows)))):
            d.add(accts[i % n_accts], row["text"], random_time(rng), group=name)


def add_popular(d: Draft, rng: random.Random, mix: Mix, texts: list[str], bg: Stream) -> None:
    """Popular prompts: copied, with small edits, by many unrelated accounts that otherwise send diverse prompts."""
    for g, base in enumerate(texts):
        name = f"popular:{g + 1}"
        d.groups[name] = "popular"
        for k in range(rng.randint(*mix.popular_accounts)):
            acct, text = d.account("popular"), base
            for _ in range(rng.choice((0, 1, 1, 2)) if k else 0):
                text = light_edit(rng, text)
            d.add(acct, text, random_time(rng), group=name)
            add_background(d, rng, bg, acct, rng.randint(1, 4))


def add_jailbreaks(d: Draft, rng: random.Random, mix: Mix, sources: Path, bg: Stream) -> None:
    """Real jailbreak families (jailbreak_llms 2023-12-25 communities), passed around between accounts."""
    families: dict[int, list[str]] = {}
    for row in load_source(sources, "jailbreak_llms_2023_12_25"):
        if row.get("community_id") is not None and len(row["text"]) <= 8000:
            families.setdefault(int(row["community_id"]), []).append(row["text"])
    eligible = sorted(c for c, texts in families.items() if len(dedupe(texts, 8000)) >= 5)
    for cid in rng.sample(eligible, min(mix.jailbreak_families, len(eligible))):
        name = f"jailbreak:community-{cid}"
        d.groups[name] = "jailbreak"
        for text in dedupe(families[cid], 8000)[:30]:
            for copy in range(rng.choice((1, 1, 2))):
                acct = d.account("jailbreak")
                d.add(acct, light_edit(rng, text) if copy else text, random_time(rng), group=name)
                add_background(d, rng, bg, acct, rng.randint(0, 4))


def add_team(d: Draft, rng: random.Random, mix: Mix, bg: Stream) -> None:
    """A team of long-lived accounts sending one narrow template (support-ticket handoffs) all day, every day."""
    name = "team:support-handoff"
    d.groups[name] = "team"
    for _ in range(mix.team_accounts):
        acct, rate = d.account("team"), rng.uniform(4, 12)
        for day in range(WINDOW_DAYS):
            for _ in range(max(0, round(rng.gauss(rate, rate / 3)))):
                text = families.TEAM_TEMPLATE.format(
                    number=rng.randint(10_000, 99_999),
                    channel=rng.choice(families._CHANNELS),
                    ticket=families.support_ticket(rng),
                )
                when = WINDOW_START + timedelta(days=day, seconds=int(rng.uniform(7, 19) * 3600))
                d.add(acct, text, when, group=name)
        add_background(d, rng, bg, acct, rng.randint(2, 12))


def add_cot_users(d: Draft, rng: random.Random, mix: Mix, bg: Stream) -> None:
    """Ordinary users who append "think step by step" (their own way) to some of their own questions."""
    name = "cot_users:step-by-step"
    d.groups[name] = "cot_users"
    for _ in range(mix.cot_users):
        acct = d.account("cot_user")
        suffix = rng.choice(families.COT_SUFFIXES)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            text = f"{bg.next().rstrip()}{rng.choice((' ', chr(10), chr(10) * 2))}{suffix}"
            d.add(acct, text, random_time(rng), group=name)
        add_background(d, rng, bg, acct, rng.randint(0, 8))


def add_passage_apps(d: Draft, rng: random.Random, mix: Mix, t0: list[dict], campaign_slots: list[str]) -> None:
    """Single-account apps, each running another template of the QA datasets over the passages that
    campaigns also use as slots (so passages recur across accounts under different templates)."""
    slot_templates = {(ds, t) for ds, t, _ in T0_SLOT_TEMPLATES}
    datasets = {ds for ds, _, _ in T0_SLOT_TEMPLATES}
    passages = [max(slot.split("\n\n"), key=len)[:160] for slot in campaign_slots]
    by_template: dict[tuple[str, str], list[dict]] = {}
    for row in t0:
        key = (row["dataset"], row["template"])
        allowed = mix.share_alike or "SA" not in row.get("dataset_license", "")
        if row["dataset"] in datasets and key not in slot_templates and allowed:
            by_template.setdefault(key, []).append(row)
    shared = {key: [r for r in rows if any(p in r["text"] for p in passages if p)] for key, rows in by_template.items()}
    ranked = sorted(by_template, key=lambda k: (-len(shared[k]), k))[: mix.passage_apps]
    for dataset, template in ranked:
        name = f"passage_app:t0/{dataset}/{template}"
        d.groups[name] = "passage_app"
        acct, rows = d.account("app"), shared[(dataset, template)][:40]
        rest = [r for r in by_template[(dataset, template)] if r not in rows]
        for row in rows + rng.sample(rest, max(0, min(len(rest), 40 - len(rows)))):
            d.add(acct, row["text"], random_time(rng), group=name)


def finalize(d: Draft, rng: random.Random, queries: list[dict], specs: list[CampaignSpec]) -> Corpus:
    """Sort by time, assign ids, and build the truth."""
    order = rng.sample(range(len(d.accounts)), len(d.accounts))
    acct_ids = {key: f"acct-{i:04d}" for i, key in enumerate(order)}
    prompts, labels, groups = [], {}, {name: {"kind": kind, "prompts": []} for name, kind in d.groups.items()}
    for i, (ts, _, text, acct, label, group) in enumerate(sorted(d.records, key=lambda r: r[:2])):
        pid = f"p{i:06d}"
        prompts.append(
            {"id": pid, "text": text, "account_id": acct_ids[acct], "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ")}
        )
        labels[pid] = label
        if group:
            groups[group]["prompts"].append(pid)
    accounts = {acct_ids[k]: d.accounts[k] for k in sorted(order, key=lambda k: acct_ids[k])}
    campaigns = {
        s.name: {
            "type": s.gtype,
            "accounts": sum(a["campaign"] == s.name for a in d.accounts),
            "prompts": sum(v == f"campaign:{s.name}" for v in labels.values()),
        }
        for s in specs
    }
    seen = {p["text"] for p in prompts}
    queries = [{"id": f"q{i:04d}", **q} for i, q in enumerate(q for q in queries if q["text"] not in seen)]
    truth = {"prompts": labels, "accounts": accounts, "campaigns": campaigns, "benign_groups": groups}
    return Corpus(prompts, truth, queries)


def build_corpus(
    sources_dir: str | Path,
    seed: int = 0,
    scale: str | int = "demo",
    include_harmful: bool | None = None,
    include_jailbreak: bool | None = None,
    suite: str = "classic",
) -> Corpus:
    """Build a labelled corpus; same arguments -> same corpus. Harmful/jailbreak text is off at demo scale."""
    sources, mix = Path(sources_dir), mix_for_scale(scale, seed, include_harmful, include_jailbreak, suite)
    rng = random.Random(f"{seed}:pool")
    t0 = load_source(sources, "t0_templated_prompts")
    general = [t for t in general_texts(sources, mix.max_chars) if not (mix.clean and UNCLEAN.search(t))]
    general = rng.sample(general, len(general))
    popular = [t for t in general if 80 <= len(t) <= 600][: mix.popular]
    general = [t for t in general if t not in popular]
    demand = sum(s.prompts for s in mix.campaigns) + QUERIES_PER_CAMPAIGN * len(mix.campaigns)
    slots_t0 = [t for t in t0_slot_texts(t0, mix.share_alike) if not (mix.clean and UNCLEAN.search(t))]
    k = int(len(general) * min(0.45, max(0.3, (demand - len(slots_t0)) / len(general))))
    reservoir = rng.sample(general[:k] + slots_t0, k + len(slots_t0))
    bg_items = general[k:]
    wants_qa = any(PROFILES[c.gtype][c.variant % 2] == "qa" for c in mix.campaigns)
    slots = allocate_slots(rng, reservoir, mix.campaigns, slots_t0 if wants_qa else None)
    if mix.include_harmful:
        bg_items += [r["text"] for r in load_source(sources, "hh_rlhf_harmless_test_first_turns")]
    d = Draft(random.Random(f"{seed}:ties"))
    bg = Stream(bg_items, random.Random(f"{seed}:background"))
    traffic = random.Random(f"{seed}:traffic")
    for n in zipf_counts(traffic, mix.background):
        add_background(d, traffic, bg, d.account("background"), n)
    add_apps(d, random.Random(f"{seed}:apps"), mix, t0, sources)
    add_popular(d, random.Random(f"{seed}:popular"), mix, popular, bg)
    if mix.include_jailbreak:
        add_jailbreaks(d, random.Random(f"{seed}:jailbreak"), mix, sources, bg)
    if mix.team_accounts:
        add_team(d, random.Random(f"{seed}:team"), mix, bg)
    if mix.cot_users:
        add_cot_users(d, random.Random(f"{seed}:cot-users"), mix, bg)
    if mix.passage_apps:
        qa_slots = [t for c, got in zip(mix.campaigns, slots) if PROFILES[c.gtype][c.variant % 2] == "qa" for t in got]
        add_passage_apps(d, random.Random(f"{seed}:passage-apps"), mix, t0, qa_slots)
    queries = []
    for spec, got in zip(mix.campaigns, slots):
        queries += add_campaign(d, random.Random(f"{seed}:{spec.name}"), spec, got, bg)
    return finalize(d, random.Random(f"{seed}:ids"), queries, mix.campaigns)


def write_corpus(corpus: Corpus, out_dir: str | Path) -> None:
    """Write prompts.jsonl, truth.json and queries.jsonl into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("prompts.jsonl", corpus.prompts), ("queries.jsonl", corpus.queries)):
        with open(out / name, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with open(out / "truth.json", "w", encoding="utf-8") as fh:
        json.dump(corpus.truth, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


def default_sources() -> Path:
    """The source corpora bundled with the repository (data/corpora), or $PROMPTSIM_SOURCES."""
    env = os.environ.get("PROMPTSIM_SOURCES")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data" / "corpora"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(
        description="Generate a labelled prompt corpus (prompts, truth, queries).",
        epilog="example: python bench/corpus.py --out data/demo --scale demo --seed 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    ap.add_argument("--scale", default="demo", help="demo (~4k, safe) | eval (~21k) | N (about N prompts, eval mix)")
    ap.add_argument(
        "--suite",
        default="classic",
        choices=("classic", "families", "holdout"),
        help="classic: the first suite's campaign shapes; families: every evasion class and the hard negatives "
        "(eval: ~45k prompts); holdout: the families mix with one campaign per class in wordings never tuned on",
    )
    ap.add_argument(
        "--sources",
        default=None,
        help="folder of source corpora (default: $PROMPTSIM_SOURCES, else data/corpora in the repository)",
    )
    ap.add_argument(
        "--include-harmful",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="hh-rlhf first turns in background (default: on except at demo)",
    )
    ap.add_argument(
        "--include-jailbreak",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="real jailbreak families (default: on except at demo)",
    )
    args = ap.parse_args(argv)
    if args.scale not in ("demo", "eval") and not (args.scale.isdigit() and int(args.scale) > 0):
        ap.error("--scale must be demo, eval or a positive integer")
    began = time.time()
    try:
        corpus = build_corpus(
            args.sources or default_sources(),
            args.seed,
            args.scale,
            args.include_harmful,
            args.include_jailbreak,
            args.suite,
        )
    except (ValueError, FileNotFoundError) as exc:
        ap.error(str(exc))
    write_corpus(corpus, args.out)
    print(
        f"wrote {len(corpus.prompts)} prompts, {len(corpus.truth['accounts'])} accounts, "
        f"{len(corpus.queries)} queries to {args.out} in {time.time() - began:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
