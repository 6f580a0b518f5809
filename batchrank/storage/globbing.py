"""Glob patterns over '/'-separated keys, with the glob module's rules (recursive=True): `*`, `?` and `[...]` stay
inside one segment, `**` spans any number of segments. Local paths and object keys are matched by the same rules.

Two rules of data directories on top (Hadoop, Spark and pyarrow's datasets keep them): names starting with '.' or
'_' (_SUCCESS, _metadata, _temporary/, .crc files) are hidden, matched only by a pattern segment that starts with the
same character (the glob module's rule for '.'); and a directory a glob matches stands for its data files, as an
input directory does: every DATA_SUFFIX file under it with no hidden name on the way (`data/date=*`).
"""

from __future__ import annotations

import fnmatch

WILDCARDS = "*?["
HIDDEN_PREFIXES = (".", "_")
DATA_SUFFIX = ".parquet"  # the files a directory of the input stands for


def has_wildcards(text: str) -> bool:
    return any(ch in text for ch in WILDCARDS)


def is_hidden(name: str) -> bool:
    return name.startswith(HIDDEN_PREFIXES)


def fixed_prefix(segments: list[str]) -> list[str]:
    """The segments before the first one with a wildcard."""
    fixed = []
    for segment in segments:
        if has_wildcards(segment):
            break
        fixed.append(segment)
    return fixed


def segments_match(names: list[str], patterns: list[str]) -> bool:
    """Whether a path (its segments) matches a pattern (its segments) itself."""
    if not patterns:
        return not names
    head, rest = patterns[0], patterns[1:]
    if head == "**":
        return any(segments_match(names[i:], rest) for i in range(len(names) + 1)
                   if not any(is_hidden(name) for name in names[:i]))
    if not names:
        return False
    name = names[0]
    if is_hidden(name) and not head.startswith(name[0]) and has_wildcards(head):
        return False
    return fnmatch.fnmatchcase(name, head) and segments_match(names[1:], rest)


def is_data_file(names: list[str]) -> bool:
    """Whether a file (its segments below a directory) is one of that directory's data files."""
    return bool(names) and names[-1].endswith(DATA_SUFFIX) and not any(is_hidden(name) for name in names)


def glob_picks(names: list[str], patterns: list[str]) -> bool:
    """Whether a glob picks the file at `names`: the pattern matches the file, or a directory above it whose data
    files include it. A pattern ending with '/' (an empty last segment) matches directories only, as in the glob
    module."""
    if patterns and patterns[-1] == "" and len(patterns) > 1:
        patterns, directories_only = patterns[:-1], True
    else:
        directories_only = False
    return (not directories_only and segments_match(names, patterns)) or any(
        segments_match(names[:depth], patterns) and is_data_file(names[depth:]) for depth in range(len(names)))
