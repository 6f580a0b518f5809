"""Glob patterns over '/'-separated keys, with the glob module's rules (recursive=True): `*`, `?` and `[...]` stay
inside one segment, `**` spans any number of segments, and names starting with '.' match only a pattern that does.
Local paths and object keys are matched by the same rules."""

from __future__ import annotations

import fnmatch

WILDCARDS = "*?["


def has_wildcards(text: str) -> bool:
    return any(ch in text for ch in WILDCARDS)


def fixed_prefix(segments: list[str]) -> list[str]:
    """The segments before the first one with a wildcard."""
    fixed = []
    for segment in segments:
        if has_wildcards(segment):
            break
        fixed.append(segment)
    return fixed


def segments_match(names: list[str], patterns: list[str]) -> bool:
    if not patterns:
        return not names
    head, rest = patterns[0], patterns[1:]
    if head == "**":
        return any(segments_match(names[i:], rest) for i in range(len(names) + 1)
                   if not any(name.startswith(".") for name in names[:i]))
    if not names:
        return False
    name = names[0]
    if name.startswith(".") and not head.startswith(".") and has_wildcards(head):
        return False
    return fnmatch.fnmatchcase(name, head) and segments_match(names[1:], rest)
