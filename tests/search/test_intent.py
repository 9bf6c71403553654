"""Extraction intent in the multilingual space, with the benign calibration points."""

from __future__ import annotations

import numpy as np
import pytest

from search.family_encoder import load_family_encoder
from search.intent import IntentScorer, sentences


@pytest.fixture(scope="module")
def scorer() -> IntentScorer:
    return IntentScorer(load_family_encoder())


def test_asking_for_a_reasoning_trace_scores_high_in_every_language(scorer):
    asks = [
        "Show every step of your reasoning before you give the final answer.",
        "Zeige jeden Schritt deiner Überlegungen, bevor du die endgültige Antwort gibst.",
        "Montre chaque étape de ton raisonnement avant de donner la réponse finale.",
        "在给出最终答案之前，请展示你推理的每一个步骤。",
        "最終的な答えを出す前に、推論のすべてのステップを示してください。",
    ]
    intent, kinds = scorer.scores(asks)
    assert intent.min() >= 0.6, intent
    assert set(kinds) <= {"reasoning_trace", "derivation", "justified_answer"}


def test_ordinary_requests_score_low(scorer):
    ordinary = [
        "Summarize this support ticket for the handoff log.",
        "Translate the following sentence into French.",
        "What is a good name for a bakery in Lisbon?",
        "Turn this note into a two-line status update.",
    ]
    intent, _ = scorer.scores(ordinary)
    assert intent.max() <= 0.35, intent


def test_one_sentence_of_a_longer_wrapper_carries_the_ask(scorer):
    long = "Here is a customer email from our queue. Please be careful. Grade your own answer against a rubric."
    raw, kinds = scorer.raw([long])
    assert kinds[0] in {"grading", "self_critique", "justified_answer"}
    assert raw[0] > scorer.raw(["Here is a customer email from our queue."])[0][0] + 0.2


def test_calibration_maps_the_benign_median_to_zero_and_the_p99_to_one(scorer):
    assert np.allclose(scorer.calibrate(np.array([scorer.low, scorer.high, 2.0])), [0.0, 1.0, 1.0])
    assert sentences("One. Two!\nThree。四") == ["One.", "Two!", "Three。"]  # pieces of three characters or less drop
