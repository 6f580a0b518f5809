"""Plain vLLM's rows from an earlier throughput report (--vllm-reference FILE): the anchor for a run that does not
score plain vLLM itself, e.g. batchrank on a dataset long enough for a minute of its scoring, against plain vLLM's
call sizes measured on the same kind of pairs in another device call. A reference row counts only for a dataset
made the same way (candidates a query, seed, passage words, max_model_len) and a model of the same architecture and
dtype; the first queries of a seed are the same pairs whatever the number of queries (synthetic.synthetic_pairs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchrank.bench.throughput_report import is_plain

MATCHED_DATASET_FIELDS = ("docs_per_query", "seed", "doc_words")
MATCHED_SETTINGS = ("dtype", "max_model_len")


class UnusableReference(ValueError):
    """A reference file that cannot serve: its path and what is wrong with it."""


def load_reference(path: str | Path) -> dict[str, Any]:
    """A finished throughput report (--out-json) with plain vLLM rows; UnusableReference naming the file otherwise."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UnusableReference(f"--vllm-reference {path}: cannot read it as JSON ({error})") from None
    if not isinstance(report, dict) or "runs" not in report:
        raise UnusableReference(f"--vllm-reference {path}: not a finished throughput report (no 'runs'; a report cut "
                             "short before its end has only 'partial' results)")
    if not any(is_plain(key) and not row.get("failed") and not key.startswith("reference:")
               for run in report["runs"].values() for key, row in run["systems"].items()):
        raise UnusableReference(f"--vllm-reference {path}: it has no plain vLLM row (its systems: "
                             f"{', '.join(report.get('systems_run', [])) or 'none'})")
    report["path"] = str(path)
    return report


def _mismatch(reference: dict[str, Any], name: str, stats: dict[str, Any], settings: dict[str, Any],
              floor: dict[str, Any]) -> str | None:
    """Why the reference's dataset `name` cannot stand for `stats`, or None when it can."""
    theirs = reference["datasets"][name]
    for field in MATCHED_DATASET_FIELDS:
        if theirs[field] != stats[field]:  # both as JSON gives them (doc_words: a list)
            return f"dataset {name}'s {field} is {theirs[field]}, this run's {stats[field]}"
    for field in MATCHED_SETTINGS:
        if reference["settings"][field] != settings[field]:
            return f"its {field} is {reference['settings'][field]}, this run's {settings[field]}"
    if reference["floor"]["non_embedding_parameters"] != floor["non_embedding_parameters"]:
        return (f"its model has {reference['floor']['non_embedding_parameters']:,} non-embedding parameters, this "
                f"run's {floor['non_embedding_parameters']:,} (another shape)")
    return None


def reference_rows(reference: dict[str, Any], stats: dict[str, Any], settings: dict[str, Any],
                   floor: dict[str, Any], model_dir: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Plain vLLM's rows (one call and each call size) of the reference dataset made like `stats`: the one of the
    same name, else the largest; and why none matched when the rows are empty. A row keeps its scores file (for
    the score agreement over the pairs both scored) only when it scored this very model directory and the file is
    still there."""
    names = sorted(reference["runs"], key=lambda n: (n != stats["name"], -reference["datasets"][n]["pairs"]))
    reasons = []
    for name in names:
        reason = _mismatch(reference, name, stats, settings, floor)
        if reason:
            reasons.append(reason)
            continue
        source = (f"{reference.get('title') or Path(reference['path']).name} ({reference['datasets'][name]['pairs']:,} "
                  f"pairs, {reference['gpu']}, {reference['date']})")
        rows = {key: {**row, "from": source} for key, row in reference["runs"][name]["systems"].items()
                if is_plain(key) and not key.startswith("reference:") and not row.get("failed")}
        for row in rows.values():
            if reference.get("model") != model_dir or not Path(row.get("scores_path", "")).is_file():
                row.pop("scores_path", None)
        if rows:
            return rows, ""
        reasons.append(f"dataset {name} has no plain vLLM row")
    return {}, "; ".join(reasons) or "it has no dataset"
