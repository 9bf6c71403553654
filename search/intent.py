"""Extraction intent: how strongly an instruction asks for what distillation harvests.

Distillers want the teacher's *process*, not just answers: full reasoning traces, step-by-step
derivations, graded answers with rationales, tool-use trajectories, fully explained and tested
code, expert answers across many fields, several ranked alternatives, self-critique. Each is
described below in a few plain English phrasings; an instruction's intent is its cosine to the
closest description in the family encoder's space. That space is multilingual, so a Japanese or German
request for a reasoning trace scores like the English one, and no keyword list is involved.

Raw cosines are mapped to [0, 1] by two points measured on benign traffic only
(`bench/calibrate_families.py`): the median benign wrapper maps to 0, the 99th percentile to 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .embedding import Encoder

# Each intent in a few plain phrasings (a description, not a keyword list): the closest one counts.
INTENTS: dict[str, tuple[str, ...]] = {
    "reasoning_trace": (
        "Before the final answer, write out your complete reasoning step by step, every intermediate step of your "
        "chain of thought.",
        "Think out loud and show all of your thinking, then give the answer.",
        "Explain your thought process in detail, one step after another.",
    ),
    "derivation": (
        "Show the full derivation and all of your working, one step at a time, then state the result.",
        "Solve it with a complete worked solution, numbered steps, and the method made explicit.",
        "Teach the method behind the answer so that it can be learned and repeated.",
    ),
    "grading": (
        "Grade the answer against a rubric, give a score for each criterion, and justify every score.",
        "Evaluate the response, rate its quality and explain each rating.",
    ),
    "self_critique": (
        "Answer, then critique your own answer, point out its errors and write an improved final version.",
        "Draft a response, review it for mistakes, and revise it.",
    ),
    "ranked_alternatives": (
        "Write several alternative answers of different quality and rank them, explaining the ranking.",
    ),
    "agent_trajectory": (
        "Act as an autonomous agent: plan the task, call tools, and record each thought, action and observation "
        "until done.",
        "Break the objective into steps and carry them out with the available tools, logging every action.",
    ),
    "explained_code": (
        "Write complete, production-quality code, explain every design decision and line, give its complexity and "
        "add unit tests.",
        "Solve this programming task with runnable code and a line-by-line explanation.",
    ),
    "expert_persona": (
        "You are a world-class expert in this field; answer with the depth, precision and justification that expert "
        "would give.",
        "Answer as a seasoned professional would, with authority and full detail.",
    ),
    "reference_answer": (
        "Produce an ideal, gold-standard reference answer with a full explanation, for a training dataset.",
        "Write the best possible model answer, as for an answer key or a collection of examples.",
    ),
    "justified_answer": (
        "Answer the question and explain in detail why your answer is correct, justifying each claim.",
        "Give the answer together with its rationale and the evidence behind it.",
    ),
}

# Calibrated on benign traffic only (`python bench/calibrate_families.py --seeds 1 2`, families
# suite at ~45k prompts; never the evaluation seed): the median and 99th percentile of benign
# clusters' raw cosines to their closest intent, in the multilingual USE space (latest run 0.1481,
# 0.4906; earlier 0.1525, 0.5046: the rounded points hold).
BENIGN_MEDIAN = 0.15
BENIGN_P99 = 0.50


@dataclass
class IntentScorer:
    """Scores instructions against the intent descriptions with one encoder."""

    encoder: Encoder
    low: float = BENIGN_MEDIAN
    high: float = BENIGN_P99

    def __post_init__(self) -> None:
        self._names = [name for name, phrasings in INTENTS.items() for _ in phrasings]
        self._prototypes = _unit(self.encoder.encode([text for phrasings in INTENTS.values() for text in phrasings]))

    def raw(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Each text's best cosine to an intent description (over the text and each of its
        sentences: one sentence of a long wrapper carries the ask), and that intent's name."""
        if not texts:
            return np.zeros(0), []
        pieces, owner = [], []
        for i, text in enumerate(texts):
            parts = [text, *(s for s in sentences(text) if s != text)][:MAX_PIECES]
            pieces += parts
            owner += [i] * len(parts)
        distinct = list(dict.fromkeys(pieces))  # clusters of one family, and common sentences, repeat
        row_of = {piece: row for row, piece in enumerate(distinct)}
        sims = (_unit(self.encoder.encode(distinct)) @ self._prototypes.T)[[row_of[p] for p in pieces]]
        best_raw = np.full(len(texts), -1.0)
        best_kind = np.zeros(len(texts), np.int64)
        for row, i in enumerate(owner):
            j = int(sims[row].argmax())
            if sims[row, j] > best_raw[i]:
                best_raw[i], best_kind[i] = float(sims[row, j]), j
        return best_raw, [self._names[j] for j in best_kind]

    def scores(self, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Calibrated intent in [0, 1] per text, and the closest intent's name."""
        raw, names = self.raw(texts)
        return self.calibrate(raw), names

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(raw, dtype=np.float64) - self.low) / max(self.high - self.low, 1e-6), 0.0, 1.0)


MAX_PIECES = 8
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")


def sentences(text: str) -> list[str]:
    """A text's sentences and lines (Latin and CJK sentence ends), empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and len(s.strip()) > 3]


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
