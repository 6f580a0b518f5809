"""The process environment a job may change and must give back: a caller's process (a notebook, a scheduler's worker
running many jobs) is left as it was after each job.

vLLM, torch and batchrank set environment variables for the engine core they start (vLLM's CPU platform about 25,
LD_PRELOAD among them; importing vLLM a few more); the engine core inherits them when it starts, and the caller
never needs them. `scoped_environment` puts every variable set, changed or removed inside it back as it was;
`ImportedEnvironment` remembers what importing a library set, so that a later engine start in the same process can
have it again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scoped_environment() -> Iterator[None]:
    """Everything set, changed or removed in os.environ inside the block is put back afterwards."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        for name, value in before.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


class ImportedEnvironment:
    """The variables a library's import set (captured once, at the import), to set again where they are needed."""

    def __init__(self) -> None:
        self.variables: dict[str, str] | None = None

    @contextmanager
    def capture(self, module: str) -> Iterator[None]:
        """Record what the block sets if it is where `module` is first imported (an import before it, outside
        batchrank, left its variables in the environment for good: nothing to record)."""
        first = module not in sys.modules
        before = dict(os.environ)
        try:
            yield
        finally:
            if first and self.variables is None:
                self.variables = {k: v for k, v in os.environ.items() if before.get(k) != v}

    def apply(self) -> None:
        for name, value in (self.variables or {}).items():
            os.environ.setdefault(name, value)
