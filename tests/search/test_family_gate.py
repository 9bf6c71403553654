"""The family gate: a token table's approximation of USE, and which query pieces it lets through."""

from __future__ import annotations

import numpy as np

from search.family_encoder import UniversalSentenceEncoder
from search.family_gate import GATE, TokenTable, head, learning_pieces, token_rows
from tests.conftest import background_texts


def test_the_two_halves_of_the_forward_pass_give_the_wheels_own_vectors():
    encoder = UniversalSentenceEncoder(processes=1)
    model = encoder.use_model
    pieces = learning_pieces(background_texts(40))[:60]
    group = [model._tokenizer.encode(p, add_bos=True, add_eos=True) for p in pieces]
    _, rows = token_rows(model._model, group)
    lens = np.asarray([len(g) for g in group])
    sums = np.add.reduceat(rows, np.concatenate(([0], np.cumsum(lens)[:-1])))
    assert np.allclose(head(model._model, sums, lens), encoder.encode(pieces), atol=1e-4)


def test_a_table_learned_on_prompts_approximates_unseen_sentences_of_the_same_traffic():
    encoder = UniversalSentenceEncoder(processes=1)
    texts = background_texts(1_200)
    table = TokenTable.learn(encoder.use_model, learning_pieces(texts[:800]))
    held_out = learning_pieces(texts[800:])[:300]
    approximate, unseen = table.approximate(encoder.use_model, held_out)
    cosines = np.sum(approximate * encoder.encode(held_out), axis=1)
    known = unseen <= 0.1
    assert known.mean() > 0.5 and np.median(cosines[known]) > 0.85


def test_the_gate_lets_through_a_rewording_of_a_form_and_stops_unrelated_sentences():
    encoder = UniversalSentenceEncoder(processes=1)
    model = encoder.use_model
    table = TokenTable.learn(model, learning_pieces(background_texts(800)))
    forms = encoder.encode(["Explain your reasoning step by step and show every intermediate step."])
    pieces = ["Show every intermediate step and explain your reasoning step by step.", *background_texts(200)[-100:]]
    keep = table.could_match(model, pieces, forms)
    real = (encoder.encode(pieces) @ forms.T).max(axis=1)
    assert keep[0] and not (real[~keep] >= GATE + 0.2).any()
    assert keep.mean() < 0.5  # most ordinary sentences are never encoded
    unseen_script = "これは表が一度も見たことのない言語の文です。"
    assert table.could_match(model, [unseen_script], forms)[0]  # too much unseen: encoded whatever it scores
