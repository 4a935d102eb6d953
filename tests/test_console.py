"""The stage lines a long command prints (feature_store.console)."""

import io

import pytest
from rich.console import Console

from feature_store.console import Stages


def _stages(total: int) -> tuple[Stages, io.StringIO]:
    out = io.StringIO()
    return Stages(total, console=Console(file=out, width=140, highlight=False)), out


def test_each_stage_ends_on_one_numbered_line_with_its_note_and_seconds():
    stages, out = _stages(2)
    with stages.stage("Generate", steps=3) as stage:
        for step in ("a", "b", "c"):
            stage.advance(step)
        stage.note("3 things made")
    with stages.stage("Report"):
        pass
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[1/2] Generate")
    assert "3 things made" in lines[0]
    assert lines[0].endswith(" s")
    assert lines[1].startswith("[2/2] Report")


def test_a_stage_that_raises_is_marked_failed_and_the_error_goes_on():
    stages, out = _stages(1)
    with pytest.raises(RuntimeError, match="boom"), stages.stage("Train"):
        raise RuntimeError("boom")
    (line,) = out.getvalue().splitlines()
    assert line.startswith("[1/1] Train")
    assert "FAILED" in line


def test_steps_can_be_added_while_the_stage_runs():
    stages, _ = _stages(1)
    with stages.stage("Daily DAG", steps=2) as stage:
        stage.add_steps(3)
        progress_total = stage._progress.tasks[stage._task].total  # noqa: SLF001
    assert progress_total == 5
