"""The family gate (search/family_gate.py), measured on deduplicated corpora: what it lets through, what it misses.

For each corpus directory (prompts.jsonl beside idx/, an index a dedup run left families.npz in,
as bench/evaluate.py and bench/calibrate_families.py leave them), the token table is learned as a
dedup run learns it (search/family_gate.py: learning_pieces over a seeded sample of the prompts),
then for --queries other prompts of the corpus, every piece search embeds is scored both ways:
- pass share: the pieces the gate lets through (encoded for real); the rest are never encoded;
- real hits: pieces whose real cosine to some form reaches MATCH_THRESHOLD; missed: those the gate
  stopped; the lowest approximate cosine among the hits (the gate must sit under it);
- queries whose family match differs with the gate (must be 0);
- CPU ms a query of FamilyIndex.match, one query at a time, without and with the gate.
Calibrate GATE on seeds that are not the evaluation's (0 and 3); report on those.

Example:
    python bench/family_gate.py bench/out/eval-families-eval-1-static-minilm bench/out/eval-families-eval-2-static-minilm
    python bench/family_gate.py --gate 0.35 0.4 0.45 --queries 1000 DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from search.family_encoder import UniversalSentenceEncoder  # noqa: E402
from search.family_gate import GATE, LEARN_PROMPTS, UNSEEN_SHARE, TokenTable, learning_pieces  # noqa: E402
from search.family_index import MATCH_THRESHOLD, FamilyIndex, query_pieces  # noqa: E402


def measure(corpus: Path, queries: int, gates: list[float]) -> dict[str, object]:
    families = FamilyIndex.load(corpus / "idx")
    if families is None:
        raise SystemExit(f"{corpus}/idx has no families.npz: run promptsim dedup on it first")
    texts = [json.loads(line)["text"] for line in open(corpus / "prompts.jsonl", encoding="utf-8")]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    learn_from = [texts[i] for i in order[:LEARN_PROMPTS]]
    asked = [texts[i] for i in order[LEARN_PROMPTS : LEARN_PROMPTS + queries]]
    encoder = UniversalSentenceEncoder(processes=1)
    model = encoder.use_model
    started = time.process_time()
    table = TokenTable.learn(model, learning_pieces(learn_from))
    learn_s = time.process_time() - started
    pieces, _ = query_pieces(asked, families.vocabulary)
    forms = families.form_vectors
    real = (encoder.encode(pieces) @ forms.T).max(axis=1)
    approximate, unseen = table.approximate(model, pieces)
    close = (approximate @ forms.T).max(axis=1)
    hits = real >= MATCH_THRESHOLD
    report: dict[str, object] = {
        "corpus": str(corpus),
        "forms": len(forms),
        "table_tokens": len(table.tokens),
        "learn_cpu_s": round(learn_s, 1),
        "queries": len(asked),
        "pieces": len(pieces),
        "real_hits": int(hits.sum()),
        "lowest_approximate_cosine_of_a_hit": round(float(close[hits].min()), 4) if hits.any() else None,
        "gates": {},
    }
    for gate in gates:
        passed = (close >= gate) | (unseen > UNSEEN_SHARE)
        report["gates"][str(gate)] = {  # type: ignore[index]
            "pass_share": round(float(passed.mean()), 4),
            "missed_hits": int((hits & ~passed).sum()),
        }
    without = replace(families, gate=None)
    gated = replace(families, gate=table)
    report["match_cpu_ms"] = {name: _cpu_ms(f, asked, encoder) for name, f in (("all", without), ("gated", gated))}
    differ = sum(_key(a) != _key(b) for a, b in zip(without.match(asked, encoder), gated.match(asked, encoder)))
    report["queries_matched_differently"] = differ
    return report


def _cpu_ms(families: FamilyIndex, texts: list[str], encoder: UniversalSentenceEncoder) -> float:
    started = time.process_time()
    for text in texts:
        families.match([text], encoder)
    return round((time.process_time() - started) / len(texts) * 1000, 2)


def _key(match: object) -> tuple[str, float] | None:
    return None if match is None else (match.cluster_id, round(match.similarity, 4))  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="+", type=Path, help="corpus directories (prompts.jsonl, idx/)")
    parser.add_argument("--queries", type=int, default=2_000, help="prompts asked of each corpus")
    parser.add_argument("--gate", type=float, nargs="+", default=[0.35, GATE, 0.45, 0.5], help="gates to report")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    with threadpool_limits(limits=1, user_api="blas"):  # as a served worker runs it
        reports = [measure(c, args.queries, args.gate) for c in args.corpora]
    for r in reports:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
