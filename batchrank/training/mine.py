"""`batchrank mine`: hard negatives of a finished run as a training file, as sentence-transformers' mine_hard_negatives
picks them (training.mining) and lays them out (training.layouts), with the texts joined back (training.texts).

One streaming pass over the output (a batch of whole queries at a time) chooses each query's positives and
negatives; their texts come from the output or the input; the file is written as they come. Memory: one batch of
the output's ids and scores, the qrels' positives, and the texts' bounded buckets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import polars as pl

from batchrank.errors import InputDataError
from batchrank.planning.spill import scratch_directory
from batchrank.qrels import Qrels
from batchrank.results import open_finished
from batchrank.storage import StoragePath
from batchrank.training.files import TrainingFile, file_format
from batchrank.training.layouts import CHOSEN_SCHEMA, MINED_LAYOUTS, MinedLayout, mined_rows
from batchrank.training.mining import MiningCounts, MiningOptions, NegativeMiner
from batchrank.training.ranked import Positives, ranked_queries
from batchrank.training.scores import stored_score
from batchrank.training.texts import TextSource


@dataclass(frozen=True)
class MiningReport:
    destination: str
    layout: str
    rows: int
    counts: MiningCounts
    options: MiningOptions
    range_max: int
    window: int
    most_positives: int
    score: str  # what the output's scores are (probability, logit, similarity)

    def lines(self) -> list[str]:
        """What mining found, in words (stderr), like mine_hard_negatives' statistics."""
        counts, options = self.counts, self.options
        lines = [f"mined {counts.mined} of the output's {counts.queries} queries: {counts.positives} positives, "
                 f"{counts.negatives} negatives; scores: {self.score}",
                 f"negatives: {options.sampling_strategy} {options.num_negatives} of ranks "
                 f"{options.range_min + 1}..{self.range_max} of the candidates left (positives and filtered out) "
                 f"among each query's best {self.window} (range_max {self.range_max} + {self.most_positives}, the "
                 "most positives a query has in the qrels)"]
        if counts.without_positives:
            lines.append(f"{counts.without_positives} judged queries have no positive among their candidates; "
                         "they are left out")
        for name, skipped in (counts.skipped or {}).items():
            lines.append(f"skipped {skipped} candidates for the {name} of {getattr(options, name)}")
        if counts.short:
            lines.append(f"{counts.short} queries have fewer than {options.num_negatives} negatives; consider "
                         "range_max, range_min and the margins")
        lines.append(f"wrote {self.rows} rows ({self.layout}) to {self.destination}")
        return lines


def mine(output_dir: str | os.PathLike[str] | StoragePath, qrels: Qrels, destination: str | os.PathLike[str],
         options: MiningOptions | None = None, layout: MinedLayout = "triplet", with_scores: bool = False,
         min_relevance: int = 1) -> MiningReport:
    """Mine OUTPUT_DIR's hard negatives against `qrels` into `destination` (.parquet or .jsonl) in `layout`.

    Args:
        options: mine_hard_negatives' options (training.mining.MiningOptions; its defaults when None).
        layout: triplet, n-tuple, labeled-pair, labeled-list (sentence-transformers) or flag-embedding.
        with_scores: add the scores (mine_hard_negatives' output_scores; FlagEmbedding's pos/neg_scores).
        min_relevance: the lowest qrels grade that makes a document a positive.
    """
    options = options or MiningOptions()
    if layout not in MINED_LAYOUTS:
        raise InputDataError(f"--format {layout}: not one of {', '.join(MINED_LAYOUTS)}")
    if options.include_positives and layout != "n-tuple":
        raise InputDataError("--include-positives keeps each query's ranking whole only in --format n-tuple (the "
                             "format mine_hard_negatives switches to with it); add --format n-tuple")
    file_format(destination)
    out = open_finished(output_dir)
    positives = Positives.of(qrels, min_relevance)
    miner = NegativeMiner(options, positives.most_per_query)
    texts = TextSource(out)
    with scratch_directory("batchrank-mine-") as scratch, TrainingFile(destination) as training_file:
        chosen = (miner.select(frame) for frame in ranked_queries(out, positives, texts.columns))
        for frame in texts.joined(chosen, scratch):
            training_file.write(mined_rows(frame, layout, options.num_negatives, with_scores))
        if not miner.counts.mined:  # nothing is written: the file is not created
            raise InputDataError(
                f"none of the output's {miner.counts.queries} queries has a positive of qrels {qrels.path} (grade >= "
                f"{min_relevance}) among its candidates ({miner.counts.without_positives} of them are judged); "
                "check that the ids match (`batchrank eval` says how many queries are judged)")
        if not training_file.rows:
            training_file.write(mined_rows(pl.DataFrame(schema=CHOSEN_SCHEMA), layout, options.num_negatives,
                                           with_scores))
        rows = training_file.rows
    return MiningReport(str(destination), layout, rows, miner.counts, options, miner.range_max, miner.window,
                        positives.most_per_query, stored_score(out))
