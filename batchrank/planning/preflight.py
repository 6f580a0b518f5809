"""Everything about a job that can be checked before its output directory is touched or a model is loaded."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from batchrank import storage
from batchrank.errors import SpecError
from batchrank.io.input import InputFiles, open_input
from batchrank.output.layout import OutputLayout
from batchrank.prompts import check_template
from batchrank.qrels import Qrels, read_qrels
from batchrank.scoring.base import ModelFacts, ScorerFactory
from batchrank.spec import JobSpec
from batchrank.storage import StoragePath
from batchrank.storage.globbing import has_wildcards

log = logging.getLogger("batchrank")


@dataclass(frozen=True)
class Checked:
    """A job whose spec, input files, model and qrels have passed every check that needs no row and no engine."""

    spec: JobSpec
    files: InputFiles
    model: ModelFacts
    qrels: Qrels | None


def check_output_outside_input(spec: JobSpec) -> None:
    """An output directory whose files the input would pick up would feed the job's own parts back in as input."""
    source, output = spec.input.path, StoragePath.of(spec.output.path)
    if has_wildcards(source.partition("://")[2] if StoragePath.is_uri(source) else source):
        written = OutputLayout(output).written_examples()
        inside = output.is_relative_to(storage.glob_base(source)) and any(path.matches(source) for path in written)
    else:  # a file, or a directory (prefix) whose every .parquet is input
        inside = output.is_relative_to(StoragePath.of(source))
    if inside:
        raise SpecError(
            f"output.path {spec.output.path} lies inside input.path {spec.input.path}; the job's own output "
            "would be read as input. Choose an output.path outside it"
        )


def check_job(spec: JobSpec, factory: ScorerFactory) -> Checked:
    """Spec, input files (schema), model and qrels, in the order a user fixes them; nothing is written."""
    if spec.prompt.template:  # a custom template is checked before anything is read or written
        check_template(spec.prompt.template)
    check_output_outside_input(spec)
    # A bad qrels file stops the job here, before hours of scoring, not after.
    qrels = read_qrels(spec.eval.qrels) if spec.eval.qrels else None
    files = open_input(spec.input, spec.output.keep_columns)
    model = factory.inspect(spec)
    for warning in model.warnings:
        log.warning("%s", warning)
    return Checked(spec, files, model, qrels)
