"""Scorers: the interface (base.py), the vLLM scorers by model kind, the factory that checks a model and builds
them, and the plain-transformers reference the tests compare against."""

from __future__ import annotations

from batchrank.scoring.base import ScorerFactory


def default_scorer_factory(keep_engine: bool = False) -> ScorerFactory:
    """Scorers on an in-process vLLM engine (the one place a job's default scorer is named)."""
    from batchrank.scoring.factory import VllmScorerFactory

    return VllmScorerFactory(keep_engine=keep_engine)
