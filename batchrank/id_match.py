"""How the output's ids meet the qrels' ids: what keeps `batchrank eval` from printing numbers that measure an id
mismatch instead of a ranking.

Metrics count only where query ids and doc ids meet. When they meet nowhere (qrels of another collection, `d0103`
against `D0103`, zero-padded against not, integer against text ids), every metric is 0.0000 and looks like a result.
So, over the output read a batch of whole queries at a time (IdMatcher.add), then at the end (IdMatcher.finish):
  - no judged query in the output is refused (exit 2), with examples of both sides' query ids;
  - judged documents that meet too few of the output's documents are refused too: fewer than MIN_MET_SHARE of the
    smaller of the two sets of (query, doc) pairs of the judged queries (the qrels' and the output's). The smaller,
    because either side may be small on its own: a deep pool judges hundreds of documents a query, of which a
    reranked top 100 holds a fraction, while MS MARCO judges about one document a query among 1,000 candidates;
  - a partial overlap is warned about, with counts and examples: output queries without judgments, qrels queries
    not in the output, judged queries none of whose judged documents are in the output (they score 0), and ids
    that would meet if spelled alike (spelling_key: case, whitespace, leading zeros).
Ids are compared as strings, as qrels hold them; examples are printed with repr(), so that 'Q07 ' shows its space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from batchrank.errors import InputDataError
from batchrank.qrels import Qrels

MIN_MET_SHARE = 0.05  # below it, eval refuses: the numbers would measure the ids
LOW_MET_SHARE = 0.5  # below it, eval warns
EXAMPLES = 3
ID_HINT = "check the ids on both sides (zero padding, case, whitespace, integer against text)"


def spelling_key(ids: pl.Expr) -> pl.Expr:
    """An id without whitespace and control characters, lowercased, without the leading zeros of its digit runs:
    two ids with one key are probably one id spelled two ways ('D 0103', 'd103' and 'D0103')."""
    return (ids.str.replace_all(r"[\s\p{Cc}]", "").str.to_lowercase()
            .str.replace_all(r"(^|[^0-9])0+([0-9])", "${1}${2}"))


@dataclass(frozen=True)
class QueryExample:
    """One judged query's documents on both sides, for a message."""

    query_id: str
    output_docs: list[str]  # the best ranked first
    qrels_docs: list[str]  # the most relevant first

    def describe(self) -> str:
        def shown(ids: list[str]) -> str:
            return ", ".join(map(repr, ids[:EXAMPLES])) + (", ..." if len(ids) > EXAMPLES else "")

        return (f"query {self.query_id!r}: output doc ids {shown(self.output_docs)}; "
                f"qrels doc ids {shown(self.qrels_docs)}")


def _smallest(values: list[Any], count: int = EXAMPLES, key: Any = None) -> list[Any]:
    return sorted(values, key=key)[:count]


def _examples(values: list[str]) -> str:
    return ", ".join(map(repr, values)) + (", ..." if len(values) >= EXAMPLES else "")


@dataclass(frozen=True)
class IdMatch:
    """How the output's ids met the qrels' ids (what IdMatcher.finish found; eval.json keeps it)."""

    qrels_path: str
    queries_in_output: int
    queries_judged: int
    qrels_queries_not_in_output: int
    judged_docs: int  # qrels (query, doc) pairs of the judged queries
    output_docs: int  # output rows of the judged queries
    judged_docs_in_output: int  # pairs on both sides
    queries_without_judged_docs: int  # judged queries none of whose judged documents are in the output
    unjudged_examples: list[str] = field(default_factory=list)  # output query ids without judgments
    missing_examples: list[str] = field(default_factory=list)  # qrels query ids not in the output
    query_spellings: list[tuple[str, str]] = field(default_factory=list)  # (qrels id, output id), not in the output
    unmet_examples: list[QueryExample] = field(default_factory=list)  # judged queries without a judged document
    doc_spellings: int = 0  # judged documents that meet an output document only under another spelling
    doc_spelling_examples: list[tuple[str, str, str]] = field(default_factory=list)  # (query, qrels doc, output doc)

    @property
    def queries_without_judgments(self) -> int:
        return self.queries_in_output - self.queries_judged

    def to_json(self) -> dict[str, Any]:
        return {"judged_docs": self.judged_docs, "output_docs_of_judged_queries": self.output_docs,
                "judged_docs_in_output": self.judged_docs_in_output,
                "queries_without_judged_docs": self.queries_without_judged_docs,
                "judged_docs_spelled_otherwise": self.doc_spellings}

    def describe(self) -> str:
        """One line for the metrics table."""
        return f"judged documents in the output: {self.judged_docs_in_output} of {self.judged_docs}"

    def warnings(self) -> list[str]:
        """Every partial mismatch, with counts and examples."""
        notes = []
        if self.queries_without_judgments:
            notes.append(f"{self.queries_without_judgments} output queries have no judgments and are not in the "
                         f"averages (e.g. {_examples(self.unjudged_examples)})")
        if self.qrels_queries_not_in_output:
            note = (f"qrels {self.qrels_path} judges {self.qrels_queries_not_in_output} queries that are not in the "
                    f"output; they are ignored (e.g. {_examples(self.missing_examples)})")
            if self.query_spellings:
                pairs = ", ".join(f"qrels {q!r} vs output {o!r}" for q, o in self.query_spellings[:EXAMPLES])
                note += f"; {len(self.query_spellings)} of them match an output query id spelled otherwise: {pairs}"
            notes.append(note)
        if self.queries_without_judged_docs:
            notes.append(f"{self.queries_without_judged_docs} of {self.queries_judged} judged queries have none of "
                         "their judged documents in the output, so they score 0 (the first stage missed them, or "
                         f"the doc ids are spelled otherwise): "
                         + "; ".join(example.describe() for example in self.unmet_examples))
        if self.doc_spellings:
            pairs = ", ".join(f"query {q!r}: qrels {d!r} vs output {o!r}" for q, d, o in self.doc_spelling_examples)
            notes.append(f"{self.doc_spellings} judged documents are in the output only under another spelling (case, "
                         f"whitespace, leading zeros) and count as not retrieved: {pairs}; {ID_HINT}")
        smaller = min(self.judged_docs, self.output_docs)
        if smaller and self.judged_docs_in_output < LOW_MET_SHARE * smaller:
            notes.append(f"the qrels and the output share only {self.judged_docs_in_output} (query, doc) pairs of "
                         f"the judged queries: {self.judged_docs_in_output / self.judged_docs:.1%} of the "
                         f"{self.judged_docs} judged, {self.judged_docs_in_output / self.output_docs:.1%} of the "
                         f"output's {self.output_docs}; {ID_HINT}")
        return notes


class IdMatcher:
    """Follows how the output's ids meet the qrels' as the output is read, a batch of whole queries at a time; every
    figure and example is the same however the output is split into batches (examples: the smallest ids)."""

    def __init__(self, qrels: Qrels):
        self.qrels = qrels
        self.qrels_ids = qrels.frame["query_id"].unique()
        self.qrels_keys = pl.DataFrame({"qrels_id": self.qrels_ids}).with_columns(key=spelling_key(pl.col("qrels_id")))
        self.queries_in_output = 0
        self.judged: set[str] = set()
        self.lowest_output_ids: list[str] = []
        self.unjudged_examples: list[str] = []
        self.spelled: dict[str, str] = {}  # qrels query id -> an output query id with its spelling key
        self.output_docs = self.met = self.unmet_queries = self.doc_spellings = 0
        self.unmet_examples: list[QueryExample] = []
        self.judged_examples: list[QueryExample] = []  # for a refusal where every judged query met something
        self.doc_spelling_examples: list[tuple[str, str, str]] = []

    def add(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Note one batch of output rows (query_id, doc_id as strings, rank; whole queries); returns its rows of
        judged queries."""
        ids = frame["query_id"].unique()
        self.queries_in_output += ids.len()
        self.lowest_output_ids = _smallest([*self.lowest_output_ids, *ids.sort().head(EXAMPLES).to_list()])
        judged = ids.is_in(self.qrels_ids.implode())
        self.unjudged_examples = _smallest([*self.unjudged_examples,
                                            *ids.filter(~judged).sort().head(EXAMPLES).to_list()])
        judged_ids = ids.filter(judged)
        self.judged.update(judged_ids.to_list())
        self._note_query_spellings(ids)
        rows = frame.filter(pl.col("query_id").is_in(judged_ids.implode()))
        if rows.height:
            self._note_documents(rows, judged_ids)
        return rows

    def _note_query_spellings(self, ids: pl.Series) -> None:
        keys = pl.DataFrame({"output_id": ids}).with_columns(key=spelling_key(pl.col("output_id")))
        near = self.qrels_keys.join(keys, on="key").filter(pl.col("qrels_id") != pl.col("output_id"))
        for qrels_id, output_id in near.select("qrels_id", "output_id").iter_rows():
            self.spelled.setdefault(qrels_id, output_id)

    def _note_documents(self, rows: pl.DataFrame, judged_ids: pl.Series) -> None:
        judgments = self.qrels.frame.filter(pl.col("query_id").is_in(judged_ids.implode()))
        self.output_docs += rows.height
        met = rows.join(judgments, on=["query_id", "doc_id"], how="semi")
        self.met += met.height
        unmet_ids = judged_ids.filter(~judged_ids.is_in(met["query_id"].unique().implode()))
        self.unmet_queries += unmet_ids.len()
        self.unmet_examples = self._merge_examples(self.unmet_examples, unmet_ids, rows, judgments)
        self.judged_examples = self._merge_examples(self.judged_examples, judged_ids, rows, judgments)
        missed = judgments.join(rows, on=["query_id", "doc_id"], how="anti")
        if missed.height:
            self._note_doc_spellings(missed, rows)

    @staticmethod
    def _merge_examples(examples: list[QueryExample], query_ids: pl.Series, rows: pl.DataFrame,
                        judgments: pl.DataFrame) -> list[QueryExample]:
        new = []
        for query_id in query_ids.sort().head(EXAMPLES).to_list():
            if len(examples) == EXAMPLES and query_id > examples[-1].query_id:
                break  # no smaller id than the examples kept: nothing to look up
            output = rows.filter(pl.col("query_id") == query_id).sort("rank")["doc_id"].head(EXAMPLES + 1)
            judged = judgments.filter(pl.col("query_id") == query_id).sort(["relevance", "doc_id"],
                                                                            descending=[True, False])
            new.append(QueryExample(query_id, output.to_list(), judged["doc_id"].head(EXAMPLES + 1).to_list()))
        return _smallest([*examples, *new], key=lambda example: example.query_id)

    def _note_doc_spellings(self, missed: pl.DataFrame, rows: pl.DataFrame) -> None:
        """Judged documents not in the output that an output document of the same query matches by spelling key."""
        candidates = rows.filter(pl.col("query_id").is_in(missed["query_id"].unique().implode())).select(
            "query_id", output_doc="doc_id", key=spelling_key(pl.col("doc_id")))
        near = (missed.select("query_id", "doc_id", key=spelling_key(pl.col("doc_id")))
                .join(candidates, on=["query_id", "key"])
                .unique(["query_id", "doc_id"], keep="first").sort("query_id", "doc_id"))
        self.doc_spellings += near.height
        self.doc_spelling_examples = _smallest(
            [*self.doc_spelling_examples, *near.head(EXAMPLES).select("query_id", "doc_id", "output_doc").iter_rows()])

    def finish(self) -> IdMatch:
        """What was found; raises InputDataError when the ids do not meet enough for a metric to mean anything."""
        path = self.qrels.path
        if not self.judged:
            spellings = sorted(self.spelled.items())[:EXAMPLES]
            hint = "".join(f"; {q!r} in the qrels matches output query id {o!r} spelled otherwise"
                           for q, o in spellings[:1])
            raise InputDataError(
                f"qrels {path} judges none of the output's {self.queries_in_output} queries (output query ids "
                f"look like {self.lowest_output_ids}, the qrels' like {self.qrels_ids.sort().head(EXAMPLES).to_list()})"
                f"{hint}; {ID_HINT}"
            )
        judged_docs = self.qrels.frame.filter(pl.col("query_id").is_in(list(self.judged))).height
        smaller = min(judged_docs, self.output_docs)
        if self.met < MIN_MET_SHARE * smaller:
            self._refuse(judged_docs)
        missing = sorted(set(self.qrels_ids.to_list()) - self.judged)
        return IdMatch(
            path, self.queries_in_output, len(self.judged), len(missing), judged_docs, self.output_docs, self.met,
            self.unmet_queries, self.unjudged_examples, missing[:EXAMPLES],
            sorted((q, o) for q, o in self.spelled.items() if q not in self.judged), self.unmet_examples,
            self.doc_spellings, self.doc_spelling_examples,
        )

    def _refuse(self, judged_docs: int) -> None:
        met = "none" if not self.met else f"only {self.met} ({self.met / judged_docs:.1%})"
        examples = "; ".join(example.describe() for example in (self.unmet_examples or self.judged_examples))
        spelled = ""
        if self.doc_spelling_examples:
            query_id, doc_id, output_doc = self.doc_spelling_examples[0]
            spelled = (f". {self.doc_spellings} judged documents match an output document spelled otherwise, e.g. "
                       f"query {query_id!r}: qrels {doc_id!r} vs output {output_doc!r}")
        raise InputDataError(
            f"qrels {self.qrels.path}: {met} of the {judged_docs} judged documents of the {len(self.judged)} judged "
            f"queries are in the output, which holds {self.output_docs} documents of these queries: metrics would "
            f"measure an id mismatch, not the ranking (the least eval accepts is {MIN_MET_SHARE:.0%} of the smaller "
            f"side). E.g. {examples}{spelled}; {ID_HINT}"
        )
