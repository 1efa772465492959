"""``local``: runs one after another in the driver's thread (``--workers 1``, or a single job)."""

from __future__ import annotations

from typing import Iterator, List, Sequence

from ..job import execute_run
from .base import Bars, Executor, Outcome

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Runs jobs in order, in this thread, with one progress bar per run."""

    name = "local"

    def submit(self, jobs: Sequence[dict]) -> None:
        self._jobs: List[dict] = list(jobs)
        self._bars = Bars(self.progress, self.workers)

    def results(self) -> Iterator[Outcome]:
        try:
            for job in self._jobs:
                if self.on_start is not None:
                    self.on_start(job)
                slot, progress = self._bars.open(job)
                try:
                    result = execute_run(job, self.datasets[job["task"]], progress)
                finally:
                    self._bars.close(slot)
                yield job, result
        finally:
            self._bars.close_all()

    def cancel(self) -> None:
        self._jobs = []
        self._bars.close_all()
