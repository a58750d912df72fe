"""The launcher's progress view: one line per event with the study's counts and an ETA.

A line per event, not a redrawn screen, so the view reads the same in a terminal, in
``nohup`` output and in a SLURM job's log::

    [14:02:11] 12/31 done, 2 running, 17 queued, 0 failed, ETA 3 min 40 s | finished train@...
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from mtunet.scaleout.estimate import format_seconds


@dataclass
class ProgressView:
    """Counts of the launch's stages and the line that shows them.

    Attributes:
        total: Stages the launch may run (the stale ones).
        done: Finished and recorded, or found up to date when their turn came.
        running: Started on a node.
        failed: Failed after their retries, or not run because an input failed.
        stream: Where the lines go.
    """

    total: int
    done: int = 0
    running: int = 0
    failed: int = 0
    stream: TextIO = field(default=sys.stdout)

    @property
    def queued(self) -> int:
        """Stages neither done, running nor failed: waiting for inputs or resources."""
        return max(0, self.total - self.done - self.running - self.failed)

    def line(self, message: str, eta_seconds: float | None, eta_partial: bool = False) -> str:
        """The status line for ``message``."""
        eta = "ETA ?" if eta_seconds is None else f"ETA {format_seconds(eta_seconds)}"
        if eta_seconds is not None and eta_partial:
            eta = f"ETA > {format_seconds(eta_seconds)}"
        return (
            f"[{time.strftime('%H:%M:%S')}] {self.done}/{self.total} done, {self.running} "
            f"running, {self.queued} queued, {self.failed} failed, {eta} | {message}"
        )

    def show(self, message: str, eta_seconds: float | None = None, partial: bool = False) -> None:
        """Print the status line for ``message``."""
        print(self.line(message, eta_seconds, partial), file=self.stream, flush=True)
