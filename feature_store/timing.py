"""Seconds per named stage of a job: what its run record shows and the benchmarks report."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class Stopwatch:
    """``with watch.stage("fit"): ...`` adds the block's wall time to ``seconds["fit"]``
    (a stage entered twice sums). Spark is lazy: a stage holds the work of the actions
    inside its block, not of the frames merely defined there."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the block's wall time to ``seconds[name]``, also when it raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
