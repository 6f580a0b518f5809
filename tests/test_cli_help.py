"""What `batchrank --help` tells a new user: the commands and every exit code (issue 25, item 5: they were in
`status --help` only)."""

from __future__ import annotations

from conftest import run_cli


def test_top_level_help_lists_the_exit_codes() -> None:
    result = run_cli("--help")
    assert result.exit_code == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "Exit codes:" in lines
    for start in ("0    done", "1    a failure while running: fix the cause if any, rerun the same command",
                  "2    a problem to fix first: the spec, input, model, qrels or ids", "130  interrupted",
                  "`status` has its own: 0 complete, 3 running, 4 failed, 5 stopped, 2 not an output"):
        assert any(line.startswith(start) for line in lines), start
    status = run_cli("status", "--help").stdout
    assert "3 running, 4 failed" in status.replace("\n", " ")
