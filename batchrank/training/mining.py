"""Hard negatives from a query's reranked candidates, with the options of sentence-transformers'
`util.mine_hard_negatives` and its rules, so that the same options pick the same negatives.

Per query that has positives (judged relevant, grade >= min_relevance) among its candidates, as mine_hard_negatives
does it for a query's retrieved list:
  1. the window: the top `range_max + P` candidates by rank, P the most positives any query of the qrels has (it
     fetches that many so that removing a query's positives still leaves range_max);
  2. out of it: the positives (unless include_positives), candidates within `absolute_margin` of the query's
     lowest positive score (score + margin > it), above `positive - |positive| * relative_margin`, above
     max_score, below min_score;
  3. of what is left, in rank order, the first range_max, less the first range_min;
  4. "top": the first num_negatives of those; "random": num_negatives of positions sampled with
     `random.sample(range(max(left, num_negatives)), num_negatives)` from one `random.Random(seed)` drawn query
     after query in output order (mine_hard_negatives draws from Python's `random` in its dataset's order), the
     positions past the end dropped, best first.
The positives in rank order and the negatives come out as rows of one table per batch of whole queries: `q` (the
query's number in output order), `role` (POSITIVE or NEGATIVE), `slot` (its place among them) and `score`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import polars as pl

from batchrank.errors import InputDataError

POSITIVE, NEGATIVE = 0, 1
Sampling = Literal["top", "random"]
_FILTERS = ("absolute_margin", "relative_margin", "max_score", "min_score")


@dataclass(frozen=True)
class MiningOptions:
    """mine_hard_negatives' options that make sense for reranked candidate lists (same names, same defaults)."""

    num_negatives: int = 3
    range_min: int = 0
    range_max: int | None = None  # None: range_min + num_negatives + P, or + 10 * num_negatives with a filter
    max_score: float | None = None
    min_score: float | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    sampling_strategy: Sampling = "top"
    seed: int = 0
    include_positives: bool = False

    def window(self, max_positives: int) -> tuple[int, int]:
        """(range_max, how many top candidates a query's window holds), checked as mine_hard_negatives checks
        them; InputDataError naming the option otherwise."""
        if self.num_negatives < 1:
            raise InputDataError(f"--num-negatives {self.num_negatives}: must be at least 1")
        if self.range_min < 0:
            raise InputDataError(f"--range-min {self.range_min}: must be 0 or more")
        range_max = self.range_max
        if range_max is None:
            widened = any(getattr(self, name) is not None for name in ("absolute_margin", "relative_margin",
                                                                        "max_score"))
            range_max = self.range_min + self.num_negatives * (10 if widened else 1) + max_positives
        if self.range_min >= range_max:
            raise InputDataError(f"--range-min {self.range_min} must be smaller than --range-max {range_max}")
        if self.num_negatives > range_max - self.range_min:
            raise InputDataError(
                f"--num-negatives {self.num_negatives}: only {range_max - self.range_min} candidates remain after "
                f"skipping the first --range-min {self.range_min} of --range-max {range_max}; lower "
                "--num-negatives or --range-min, or raise --range-max")
        return range_max, range_max + max_positives


@dataclass
class MiningCounts:
    """What mining found, over every batch (printed at the end, like mine_hard_negatives' statistics)."""

    queries: int = 0  # in the output
    mined: int = 0  # with a positive among their candidates
    without_positives: int = 0  # judged, but no positive among their candidates
    positives: int = 0
    negatives: int = 0
    short: int = 0  # mined queries with fewer than num_negatives negatives
    skipped: dict[str, int] | None = None  # candidates each filter removed (in the order they apply)

    def add_skipped(self, name: str, count: int) -> None:
        self.skipped = self.skipped or {}
        self.skipped[name] = self.skipped.get(name, 0) + count


class NegativeMiner:
    """Picks positives and negatives of the batches of whole queries handed to it, in output order."""

    def __init__(self, options: MiningOptions, max_positives: int):
        self.options = options
        self.range_max, self.window = options.window(max_positives)
        self.rng = random.Random(options.seed)
        self.counts = MiningCounts()

    def select(self, ranked: pl.DataFrame) -> pl.DataFrame:
        """`ranked`: whole queries with q (their number), rank, score, is_positive and judged (the query is in the
        qrels), plus any columns to carry; returns the chosen rows with role, slot and those columns, ordered by q,
        role, slot."""
        options = self.options
        self.counts.queries += ranked["q"].n_unique()
        judged = ranked.filter(pl.col("judged"))["q"].n_unique()
        # The per-query facts come from the positives alone, and only the window is sorted: a few rows a query.
        positives = ranked.filter(pl.col("is_positive")).sort("q", "rank").with_columns(
            role=pl.lit(POSITIVE, pl.Int8), slot=pl.int_range(pl.len()).over("q"))
        mined = positives.group_by("q").agg(lowest_positive=pl.col("score").min()).sort("q")
        self.counts.mined += mined.height
        self.counts.without_positives += judged - mined.height
        self.counts.positives += positives.height
        window = ranked.filter(pl.col("rank") <= self.window).join(mined, on="q").sort("q", "rank")
        window = window.with_columns(valid=self._filtered(window))
        left = window.with_columns(left=pl.col("valid").cast(pl.Int64).cum_sum().over("q")).filter(
            pl.col("valid") & pl.col("left").is_between(options.range_min + 1, self.range_max)).drop("valid")
        chosen = self._sample(left, mined["q"]).sort("q", "rank")
        negatives = chosen.with_columns(role=pl.lit(NEGATIVE, pl.Int8), slot=pl.int_range(pl.len()).over("q"))
        self.counts.negatives += negatives.height
        full = negatives.group_by("q").len().filter(pl.col("len") >= options.num_negatives).height
        self.counts.short += mined.height - full
        columns = [c for c in positives.columns if c not in ("is_positive", "judged")]
        return pl.concat([positives.select(columns), negatives.select(columns)]).sort("q", "role", "slot")

    def _filtered(self, window: pl.DataFrame) -> pl.Series:
        """Which window rows stay candidates; counts what each filter removes, as mine_hard_negatives counts."""
        options = self.options
        valid = pl.repeat(True, window.height, eager=True) if options.include_positives else ~window["is_positive"]
        score, lowest = window["score"], window["lowest_positive"]
        removals = {
            "absolute_margin": lambda m: score + m > lowest,
            "relative_margin": lambda m: score > lowest - lowest.abs() * m,
            "max_score": lambda bound: score > bound,
            "min_score": lambda bound: score < bound,
        }
        for name in _FILTERS:
            value = getattr(options, name)
            if value is None:
                continue
            removed = removals[name](value) & valid
            self.counts.add_skipped(name, int(removed.sum()))
            valid = valid & ~removed
        return valid

    def _sample(self, left: pl.DataFrame, queries: pl.Series) -> pl.DataFrame:
        """The negatives of each query: its first num_negatives, or a seeded sample of positions, best first."""
        wanted = self.options.num_negatives
        position = pl.col("left") - self.options.range_min  # 1, 2, ... in rank order
        if self.options.sampling_strategy == "top":
            return left.filter(position <= wanted)
        sizes = dict(left.group_by("q").len().iter_rows())
        picked_q, picked_position = [], []
        for q in queries.to_list():  # every mined query draws, as each of mine_hard_negatives' queries does
            available = sizes.get(q, 0)
            for index in self.rng.sample(range(max(available, wanted)), k=wanted):
                if index < available:
                    picked_q.append(q)
                    picked_position.append(index + 1)
        picks = pl.DataFrame({"q": picked_q, "picked": picked_position},
                             schema={"q": left.schema["q"], "picked": pl.Int64})
        return left.with_columns(picked=position.cast(pl.Int64)).join(picks, on=["q", "picked"], how="semi") \
            .drop("picked")
