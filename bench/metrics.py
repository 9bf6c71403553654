"""The detection metrics of docs/evaluation.md, computed from clusters and search results."""

from __future__ import annotations

from collections import Counter, defaultdict
from math import comb
from typing import Any

# The metrics of docs/evaluation.md that the benchmarks print, in this order.
HEADLINE_METRICS = (
    "campaigns_detected",
    "campaign_account_recall",
    "benign_account_fpr",
    "benign_accounts_flagged",
    "popular_groups_flagged",
    "app_groups_flagged",
    "jailbreak_groups_flagged",
    "team_groups_flagged",
    "cot_users_groups_flagged",
    "passage_app_groups_flagged",
    "pairwise_precision",
    "pairwise_recall",
    "pairwise_f1",
    "sibling_precision_at_20",
    "sibling_accounts_at_20",
)


def campaign_type(label: str, truth: dict) -> str:
    return truth["campaigns"][label.split(":", 1)[1]]["type"]


def cluster_metrics(clusters: list[dict], truth: dict) -> dict[str, Any]:
    """Campaigns detected, account recall, benign account FPR, benign groups flagged, pairwise P/R/F1."""
    labels: dict[str, str] = truth["prompts"]
    flagged_ids = {pid for c in clusters if c["flagged"] for pid in c["members"]}
    campaigns = {name: [pid for pid, lab in labels.items() if lab == f"campaign:{name}"] for name in truth["campaigns"]}
    detected = {}
    for name, prompts in campaigns.items():
        in_flagged = [p for p in prompts if p in flagged_ids]
        touching = [
            c for c in clusters if c["flagged"] and any(labels.get(m) == f"campaign:{name}" for m in c["members"])
        ]
        members = [m for c in touching for m in c["members"]]
        purity = sum(labels.get(m) == f"campaign:{name}" for m in members) / len(members) if members else 0.0
        detected[name] = len(in_flagged) >= 0.5 * len(prompts) and purity >= 0.8
    flagged_accounts = {truth["prompt_accounts"][pid] for pid in flagged_ids}
    camp_accounts = {a for a, info in truth["accounts"].items() if info["campaign"]}
    benign_accounts = {a for a, info in truth["accounts"].items() if not info["campaign"]}
    groups = truth.get("benign_groups", {})
    group_flags = {name: any(p in flagged_ids for p in g["prompts"]) for name, g in groups.items()}
    pairs = pairwise(clusters, labels)
    pair_by_type = pairwise_by_type(clusters, labels, truth)
    by_type: dict[str, dict[str, Any]] = defaultdict(lambda: {"campaigns": 0, "detected": 0, "accounts": 0, "found": 0})
    for name in campaigns:
        kind = truth["campaigns"][name]["type"]
        by_type[kind]["campaigns"] += 1
        by_type[kind]["detected"] += int(detected[name])
        accs = {a for a, info in truth["accounts"].items() if info["campaign"] == name}
        by_type[kind]["accounts"] += len(accs)
        by_type[kind]["found"] += len(accs & flagged_accounts)
    return {
        "campaigns_detected": sum(detected.values()),
        "campaigns": len(campaigns),
        "missed": sorted(n for n, ok in detected.items() if not ok),
        "campaign_account_recall": round(len(camp_accounts & flagged_accounts) / max(len(camp_accounts), 1), 4),
        "benign_account_fpr": round(len(benign_accounts & flagged_accounts) / max(len(benign_accounts), 1), 5),
        "benign_accounts_flagged": len(benign_accounts & flagged_accounts),
        "popular_groups_flagged": sum(v for k, v in group_flags.items() if groups[k]["kind"] == "popular"),
        "app_groups_flagged": sum(v for k, v in group_flags.items() if groups[k]["kind"] == "app"),
        "jailbreak_groups_flagged": sum(v for k, v in group_flags.items() if groups[k]["kind"] == "jailbreak"),
        "team_groups_flagged": sum(v for k, v in group_flags.items() if groups[k]["kind"] == "team"),
        "cot_users_groups_flagged": sum(v for k, v in group_flags.items() if groups[k]["kind"] == "cot_users"),
        "passage_app_groups_flagged": sum(v for k, v in group_flags.items() if groups[k]["kind"] == "passage_app"),
        "benign_accounts_flagged_by_kind": dict(
            Counter(truth["accounts"][a]["kind"] for a in benign_accounts & flagged_accounts)
        ),
        **pairs,
        "by_type": {
            k: {
                "detected": f"{v['detected']}/{v['campaigns']}",
                "account_recall": round(v["found"] / max(v["accounts"], 1), 3),
                "pairwise_f1": pair_by_type.get(k, 0.0),
            }
            for k, v in sorted(by_type.items())
        },
    }


def pairwise(clusters: list[dict], labels: dict[str, str]) -> dict[str, float]:
    """Pairwise precision/recall/F1 over pairs that involve a campaign prompt."""
    predicted = correct = 0
    for c in clusters:
        counts = Counter(labels.get(m, "benign") for m in c["members"])
        benign = counts.pop("benign", 0)
        predicted += comb(len(c["members"]), 2) - comb(benign, 2)
        correct += sum(comb(n, 2) for n in counts.values())
    truth_pairs = sum(comb(n, 2) for lab, n in Counter(labels.values()).items() if lab != "benign")
    precision = correct / predicted if predicted else 0.0
    recall = correct / truth_pairs if truth_pairs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"pairwise_precision": round(precision, 4), "pairwise_recall": round(recall, 4), "pairwise_f1": round(f1, 4)}


def pairwise_by_type(clusters: list[dict], labels: dict[str, str], truth: dict) -> dict[str, float]:
    """Pairwise F1 per campaign type: pairs that involve a campaign prompt of that type."""
    out = {}
    for kind in sorted({c["type"] for c in truth["campaigns"].values()}):
        names = {f"campaign:{n}" for n, c in truth["campaigns"].items() if c["type"] == kind}
        only = {pid: (lab if lab in names else "benign") for pid, lab in labels.items()}
        out[kind] = pairwise(clusters, only)["pairwise_f1"]
    return out


def sibling_metrics(results: list[tuple[str, list[dict]]], truth: dict) -> dict[str, Any]:
    """Sibling precision@20 (out of min(20, campaign size)) and distinct accounts among them."""
    labels, sizes = truth["prompts"], Counter(truth["prompts"].values())
    precisions, accounts = [], []
    per_type: dict[str, list[float]] = defaultdict(list)
    for campaign, hits in results:
        label = f"campaign:{campaign}"
        good = [h for h in hits[:20] if labels.get(h["id"]) == label]
        p = len(good) / min(20, sizes[label])
        precisions.append(p)
        accounts.append(len({h["account_id"] for h in good}))
        per_type[truth["campaigns"][campaign]["type"]].append(p)
    mean = sum(precisions) / max(len(precisions), 1)
    return {
        "sibling_precision_at_20": round(mean, 4),
        "sibling_accounts_at_20": round(sum(accounts) / max(len(accounts), 1), 2),
        "sibling_precision_by_type": {k: round(sum(v) / len(v), 3) for k, v in sorted(per_type.items())},
    }
