"""What a finished run's scores are (run.json's model.score), and the teacher score asked for, made from them.

A logit converts to its probability exactly (the sigmoid of a yes-no logit is P(yes), of a log-odds its
probability); a probability does not convert back once it saturates (1.0 for every margin above about 16.6 in
float32), so a run that stored probabilities gives no logits: it is scored again with model.score: logit.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from batchrank.errors import InputDataError
from batchrank.results import FinishedOutput

TeacherScore = Literal["logit", "probability"]


def stored_score(out: FinishedOutput) -> str:
    """probability, logit or similarity: run.json's model.score, or what an older run's settings imply."""
    model = out.run_info.get("model") or {}
    if model.get("score"):
        return str(model["score"])
    if model.get("kind") == "embedding":
        return "similarity"
    engine = ((out.run_info.get("spec") or {}).get("model") or {}).get("engine") or {}
    pooler = engine.get("pooler_config") if isinstance(engine, dict) else None
    if isinstance(pooler, dict) and pooler.get("use_activation") is False:
        return "logit"  # the undocumented switch an older run may have used
    return "probability"


def teacher_score(out: FinishedOutput, wanted: TeacherScore) -> tuple[pl.Expr, str]:
    """The expression that turns the stored `score` into the score asked for, and its name; InputDataError when
    the run's scores cannot give it."""
    stored = stored_score(out)
    if wanted == "logit":
        if stored == "probability":
            raise InputDataError(
                f"{out.root}: the run stored probabilities (model.score probability), which saturate at 1.0 and "
                "cannot give back the logits teacher labels take by default; score the job again with model.score: "
                "logit (into a new output.path: the parts differ), or pass --score probability")
        return pl.col("score"), stored  # a logit, or an embedding model's similarity (its raw score)
    if stored == "similarity":
        raise InputDataError(f"{out.root}: an embedding model's similarity is no probability; use --score logit, "
                             "which gives the similarity as stored")
    if stored == "logit":
        return 1.0 / (1.0 + (-pl.col("score")).exp()), "probability (the sigmoid of the stored logit)"
    return pl.col("score"), "probability"
