"""How far two systems' scores of the same pairs are apart: score agreement, Kendall's tau and ranking drift."""

from __future__ import annotations

import math
from typing import Any


def score_agreement(left: Any, right: Any) -> dict[str, Any]:
    """Max and mean |difference| of two (query_id, doc_id, score) frames over the pairs they share."""
    import numpy as np

    joined = left.join(right, on=["query_id", "doc_id"], how="inner", suffix="_b")
    diff = np.abs(joined["score"].to_numpy() - joined["score_b"].to_numpy())
    finite = len(diff) > 0 and bool(np.isfinite(diff).all())
    return {"pairs_compared": len(diff), "all_finite": finite,
            "max_abs_diff": float(diff.max()) if finite else float("nan"),
            "mean_abs_diff": float(diff.mean()) if finite else float("nan")}


def kendall_tau_b(x: Any, y: Any) -> float:
    """Kendall's tau-b of two score vectors (ties counted as neither concordant nor discordant); nan when either
    is constant. O(n^2) memory: fine for a query's candidates (1,000 -> 1M pairs)."""
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    upper = np.triu_indices(n, k=1)
    dx, dy = np.sign(np.subtract.outer(x, x)[upper]), np.sign(np.subtract.outer(y, y)[upper])
    pairs = n * (n - 1) / 2
    untied_x, untied_y = pairs - np.count_nonzero(dx == 0), pairs - np.count_nonzero(dy == 0)
    if untied_x == 0 or untied_y == 0:
        return float("nan")
    return float(np.sum(dx * dy) / math.sqrt(untied_x * untied_y))


def ranking_drift(reference: Any, other: Any, k: int = 10) -> dict[str, Any]:
    """How far `other`'s scores move from `reference`'s on the same pairs (e.g. FP8 against bf16): max and mean
    |difference|, the share of queries whose top-k set changes, and the mean Kendall's tau-b of each query's order."""
    import numpy as np

    joined = reference.join(other, on=["query_id", "doc_id"], how="inner", suffix="_b").sort("query_id", "doc_id")
    changed, taus = 0, []
    for (_,), group in joined.group_by(["query_id"], maintain_order=True):
        doc = group["doc_id"]
        top_a = set(doc.gather(np.lexsort((doc.to_numpy(), -group["score"].to_numpy()))[:k]).to_list())
        top_b = set(doc.gather(np.lexsort((doc.to_numpy(), -group["score_b"].to_numpy()))[:k]).to_list())
        changed += top_a != top_b
        if len(group) > 1:
            taus.append(kendall_tau_b(group["score"].to_numpy(), group["score_b"].to_numpy()))
    queries = joined["query_id"].n_unique()
    result = score_agreement(reference, other)
    finite_taus = [t for t in taus if not math.isnan(t)]
    result.update(queries=queries, k=k, top_k_changed_share=changed / queries if queries else float("nan"),
                  mean_kendall_tau=float(np.mean(finite_taus)) if finite_taus else float("nan"),
                  min_kendall_tau=float(np.min(finite_taus)) if finite_taus else float("nan"))
    return result
