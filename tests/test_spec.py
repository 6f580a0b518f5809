"""Job specs: unknown keys, overrides, environment values, safe YAML, clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchrank.errors import SpecError
from batchrank.spec import load_spec

BASE = """
input:
  path: data/pairs.parquet
model:
  path: /models/m
output:
  path: out/x
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_defaults_and_identity_column_mapping(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BASE))
    assert spec.input.column("document") == "document"
    assert spec.run.executor == "auto" and spec.run.chunk_size == 2000
    assert spec.model.kind is None and spec.prompt.template is None


def test_unknown_key_is_an_error_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"model\.temprature: unknown key"):
        load_spec(write(tmp_path, BASE.replace("  path: /models/m", "  path: /models/m\n  temprature: 1")))


def test_unknown_column_mapping_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"input\.columns.*unknown key\(s\) \['passage'\]"):
        load_spec(write(tmp_path, BASE.replace("  path: data/pairs.parquet", "  path: p\n  columns: {passage: x}")))


def test_set_overrides_any_field_with_yaml_typed_values(tmp_path: Path) -> None:
    spec = load_spec(
        write(tmp_path, BASE),
        ["run.chunk_size=500", "model.engine.max_num_seqs=64", "output.keep_columns=[a, b]", "prompt.template=sep"],
    )
    assert spec.run.chunk_size == 500
    assert spec.model.engine == {"max_num_seqs": 64}
    assert spec.output.keep_columns == ["a", "b"]
    assert spec.prompt.template == "sep"


def test_bad_override_value_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"run\.chunk_size"):
        load_spec(write(tmp_path, BASE), ["run.chunk_size=lots"])
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        load_spec(write(tmp_path, BASE), ["run.chunk_size"])


def test_environment_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELS", "/srv/models")
    text = BASE.replace("/models/m", "${MODELS}/qwen").replace("out/x", "${OUT_ROOT:-/tmp/o}/x")
    spec = load_spec(write(tmp_path, text))
    assert spec.model.path == "/srv/models/qwen"
    assert spec.output.path == "/tmp/o/x"


def test_an_empty_variable_takes_the_default_as_in_the_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Schedulers pass options they were not given as empty variables: `${X:-d}` then means d, `${X-d}` the empty
    value, exactly as `sh -c 'echo ${X:-d} ${X-d}'` prints."""
    monkeypatch.setenv("OUT_ROOT", "")
    text = BASE.replace("out/x", "${OUT_ROOT:-/tmp/o}/x").replace("/models/m", "/models/${OUT_ROOT-unset}m")
    spec = load_spec(write(tmp_path, text))
    assert spec.output.path == "/tmp/o/x" and spec.model.path == "/models/m"
    monkeypatch.delenv("OUT_ROOT")
    assert load_spec(write(tmp_path, text)).model.path == "/models/unsetm"


def test_missing_environment_variable_names_it_and_the_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"model\.path: environment variable \$\{NOT_SET_ANYWHERE\} is not set"):
        load_spec(write(tmp_path, BASE.replace("/models/m", "${NOT_SET_ANYWHERE}")))


def test_yaml_object_tags_are_refused(tmp_path: Path) -> None:
    evil = BASE + "extra: !!python/object/apply:os.system ['touch pwned']\n"
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(write(tmp_path, evil))
    assert not Path("pwned").exists()


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="job spec not found"):
        load_spec(tmp_path / "nope.yaml")


def test_keep_columns_may_not_name_output_columns(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"output\.keep_columns.*'score'"):
        load_spec(write(tmp_path, BASE), ["output.keep_columns=[score]"])


def test_a_mapping_built_in_python_is_a_spec_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_spec(dict): what a pipeline task builds in code, with the YAML's overrides and ${ENV} values; the caller's
    dict is left as it was."""
    monkeypatch.setenv("MODELS", "/models")
    tree = {"input": {"path": "data/pairs.parquet"}, "model": {"path": "${MODELS}/m"}, "output": {"path": "out/x"}}
    before = repr(tree)
    spec = load_spec(tree, ["run.chunk_size=500", "output.keep_columns=[bm25_rank]"])
    assert spec.model.path == "/models/m" and spec.run.chunk_size == 500 and spec.output.keep_columns == ["bm25_rank"]
    assert repr(tree) == before, "the caller's mapping is not changed"
    assert load_spec(tree) == load_spec(write(tmp_path, BASE.replace("/models/m", "${MODELS}/m")))
    with pytest.raises(SpecError, match=r"^job spec \(a mapping\): invalid job spec: model\.temprature: unknown key"):
        load_spec({**tree, "model": {"path": "/m", "temprature": 1}})
    with pytest.raises(SpecError, match=r"load_spec takes a path to a YAML job spec or a mapping, not list"):
        load_spec([tree])  # type: ignore[arg-type]


@pytest.mark.parametrize(("override", "message"), [
    ("run.chunk_sise=500", "run.chunk_sise: unknown key; did you mean chunk_size?"),
    ("run.worker_resources.num_gpu=1", "run.worker_resources.num_gpu: unknown key; did you mean num_gpus?"),
    ("eval.qrel=q.txt", "eval.qrel: unknown key; did you mean qrels?"),
    ("outptu.path=x", "outptu: unknown key; did you mean output?"),
    ("model.kindd=embedding", "model.kindd: unknown key; did you mean kind?"),
    ("run.zzz=1", "run.zzz: unknown key"),  # nothing close: no guess
])
def test_unknown_spec_keys_get_the_closest_known_key(tmp_path: Path, override: str, message: str) -> None:
    # Issue 25, item 5: engine keys had a "did you mean", spec keys none.
    from conftest import run_cli

    result = run_cli("validate", str(write(tmp_path, BASE)), "--set", override)
    assert result.exit_code == 2
    assert message in result.stderr
    assert ("did you mean" in result.stderr) is ("did you mean" in message)


def test_ray_bounds_are_checked_with_the_field_named(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BASE), ["run.max_lost_workers=10", "run.worker_start_timeout=30"])
    assert spec.run.max_lost_workers == 10 and spec.run.worker_start_timeout == 30
    assert load_spec(write(tmp_path, BASE)).run.max_lost_workers == "auto"
    with pytest.raises(SpecError, match="run.max_lost_workers.*must be 0 or more, or auto"):
        load_spec(write(tmp_path, BASE), ["run.max_lost_workers=-1"])
    with pytest.raises(SpecError, match="run.worker_start_timeout"):
        load_spec(write(tmp_path, BASE), ["run.worker_start_timeout=0"])
