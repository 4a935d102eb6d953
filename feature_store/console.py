"""What a person sees of a long command: numbered stages, each ending on one line with
its elapsed time, and a live bar with an ETA while a stage of countable steps runs.

Built on rich: on a terminal the bar redraws in place and disappears when the stage
ends; in a log (CI, a pipe) only the finished stages' lines are written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class StageProgress:
    """The running stage: ``advance`` after each step, ``note`` for its closing line."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task
        self.summary = ""

    def advance(self, step: str = "") -> None:
        """Count one step done; show `step` beside the bar when given."""
        fields = {"step": step} if step else {}
        self._progress.update(self._task, advance=1, **fields)

    def working_on(self, step: str) -> None:
        """Show `step` beside the bar without counting a step."""
        self._progress.update(self._task, step=step)

    def add_steps(self, count: int) -> None:
        """Add `count` steps to the stage's total."""
        total = self._progress.tasks[self._task].total or 0
        self._progress.update(self._task, total=total + count)

    def note(self, summary: str) -> None:
        """Set the `summary` shown on the stage's line when it ends."""
        self.summary = summary


class Stages:
    """``with stages.stage("Generate", steps=n) as s: ... s.advance()``; each stage prints
    ``[k/N] title  (summary)  12.3 s`` when it ends, ``FAILED`` if it raised."""

    def __init__(self, total: int, *, console: Console | None = None) -> None:
        self.total, self.done = total, 0
        self.console = console or Console(highlight=False)
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, title: str, *, steps: int | None = None) -> Iterator[StageProgress]:
        """The next numbered stage around the block, printing its line when it ends.
        `steps` None: a stage without a count (no ETA)."""
        self.done += 1
        label = f"[{self.done}/{self.total}] {title}"
        started = time.perf_counter()
        with _bar(self.console) as progress:
            task = progress.add_task(label, total=steps, step="")
            current = StageProgress(progress, task)
            try:
                yield current
            except BaseException:
                self._line(label, "FAILED", time.perf_counter() - started, style="bold red")
                raise
        self._line(label, current.summary, time.perf_counter() - started)

    def elapsed(self) -> float:
        """Seconds since these stages were created."""
        return time.perf_counter() - self.started

    def _line(self, label: str, summary: str, seconds: float, *, style: str = "") -> None:
        text = f"{label:<44} {summary:<52} {seconds:>7.1f} s"
        # one line per stage, also in a log whose width rich would guess as 80
        self.console.print(text.rstrip() if not style else f"[{style}]{text}[/]", soft_wrap=True)


def _bar(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("[dim]{task.fields[step]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a log gets the stage lines only
    )
