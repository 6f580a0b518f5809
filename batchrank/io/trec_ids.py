"""Ids that a TREC run or qrels file cannot hold, counted and sampled a batch at a time; and ids and texts made
printable for a terminal.

trec_eval, ir_measures and every other TREC reader split a line on whitespace, so an id holding a space, a tab or a
newline breaks the line's fields, and a control character (NUL, ESC) is no part of a word to any of them; an empty
id leaves a field out. Such ids score fine and survive Parquet and JSON lines, so they are found where they enter:
`validate` and `run` warn about them before scoring (planning/row_pass.py), the preview prints them escaped,
and `export --format trec` refuses them with their count (export.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

UNSAFE_PATTERN = r"[\s\p{Cc}]"  # Unicode whitespace (what Python's str.split splits on) and control characters
ID_COLUMNS = ("query_id", "doc_id")
EXAMPLES = 3
DISTINCT_CAP = 10_000  # distinct unsafe ids counted exactly up to here ("more than" beyond: memory stays small)
# C0 and C1 control characters as Python spells them in a string literal: '\t', '\n', '\x00', '\x1b', ...
_ESCAPES = {code: repr(chr(code))[1:-1] for code in [*range(0x20), *range(0x7F, 0xA0)]}

Locate = Callable[[int], tuple[Any, int]]  # a global row number -> (file, row inside it)


def unsafe_mask(ids: pl.Series) -> pl.Series:
    """True where an id is empty or holds whitespace or a control character; null and integer ids are never unsafe
    (a null is the row checks' business, an integer prints as digits)."""
    if ids.dtype.is_integer() or ids.dtype == pl.Null:
        return pl.Series(ids.name, [False] * ids.len(), dtype=pl.Boolean)
    text = ids.cast(pl.String)
    return (text.str.contains(UNSAFE_PATTERN) | (text == "")).fill_null(False)


def is_unsafe(value: Any) -> bool:
    """The same test for one id."""
    return bool(unsafe_mask(pl.Series([value]))[0])


def shown_id(value: Any) -> str:
    """An id as a terminal line can show it: as it is, or quoted and escaped (repr) when it is unsafe."""
    return repr(value) if isinstance(value, str) and is_unsafe(value) else str(value)


def printable(text: str) -> str:
    """Text with its control characters (tab, newline, NUL, ESC, ...) escaped, so that one row stays one line."""
    return text.translate(_ESCAPES)


@dataclass
class UnsafeIds:
    """The unsafe ids of one column: rows, distinct ids (exact up to DISTINCT_CAP) and the first few, in row order."""

    column: str
    rows: int = 0
    distinct: set[str] = field(default_factory=set)
    capped: bool = False
    examples: list[tuple[int, str]] = field(default_factory=list)  # (global row, id)

    def describe(self, locate: Locate | None = None) -> str:
        """E.g. query_id in 12 rows (1 distinct: 'Q\\t02' at in.parquet row 12)."""
        count = f"more than {DISTINCT_CAP}" if self.capped else str(len(self.distinct))
        examples = ", ".join(_example(value, row, locate) for row, value in self.examples)
        return f"{self.column} in {self.rows} row{'s' if self.rows != 1 else ''} ({count} distinct: {examples})"


def _example(value: str, row: int, locate: Locate | None) -> str:
    if locate is None:
        return repr(value)
    path, inside = locate(row)
    return f"{value!r} at {path} row {inside}"


@dataclass
class UnsafeIdTally:
    """Unsafe ids over every batch of a pass, per id column."""

    found: dict[str, UnsafeIds] = field(default_factory=dict)

    def add(self, offset: int, batch: pl.DataFrame, keep: pl.Series | None = None) -> None:
        """Count the unsafe ids of a batch whose first row is global row `offset` (only rows where `keep` is true:
        a row the row checks reject is reported as that)."""
        for column in ID_COLUMNS:
            if column not in batch.columns:
                continue
            mask = unsafe_mask(batch[column])
            if keep is not None:
                mask = mask & keep
            count = int(mask.sum())
            if count:
                self._note(column, offset, batch[column].filter(mask).cast(pl.String), mask.arg_true(), count)

    def _note(self, column: str, offset: int, ids: pl.Series, rows: pl.Series, count: int) -> None:
        entry = self.found.setdefault(column, UnsafeIds(column))
        entry.rows += count
        # Distinct ids and examples only until they are complete (an input whose every id is bad pays for one batch).
        if not entry.capped:
            unique = ids.unique()
            if unique.len() <= DISTINCT_CAP:
                entry.distinct.update(unique.to_list())
            entry.capped = unique.len() > DISTINCT_CAP or len(entry.distinct) > DISTINCT_CAP
        if len(entry.examples) < EXAMPLES:
            firsts = pl.DataFrame({"row": rows.cast(pl.Int64) + offset, "id": ids}).filter(
                pl.col("id").is_first_distinct())
            known = {value for _, value in entry.examples}
            for row, value in firsts.head(EXAMPLES + len(known)).iter_rows():
                if len(entry.examples) < EXAMPLES and value not in known:
                    entry.examples.append((row, value))

    @property
    def rows(self) -> int:
        return sum(entry.rows for entry in self.found.values())

    def describe(self, locate: Locate | None = None) -> str:
        """Each column's count and examples, joined: '' when every id is safe."""
        return "; ".join(entry.describe(locate) for entry in self.found.values())

    def warnings(self, locate: Locate | None = None) -> list[str]:
        """What `validate` and `run` say before scoring: one line, or none when every id is safe."""
        if not self.found:
            return []
        return [f"ids with whitespace or control characters, which a TREC run or qrels file cannot hold: "
                f"{self.describe(locate)}. They are scored as they are, but `batchrank export --format trec` "
                "refuses them: clean the ids in the input, or export --format jsonl"]
