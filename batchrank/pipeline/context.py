"""What any worker needs to read, score and write any chunk of a job (sent whole to Ray actors)."""

from __future__ import annotations

from dataclasses import dataclass

from batchrank.io.input import InputFiles
from batchrank.output.layout import OutputLayout
from batchrank.output.manifest import Manifest
from batchrank.scoring.base import ModelFacts
from batchrank.spec import JobSpec


@dataclass(frozen=True)
class JobContext:
    spec: JobSpec
    files: InputFiles
    manifest: Manifest
    layout: OutputLayout
    model: ModelFacts
