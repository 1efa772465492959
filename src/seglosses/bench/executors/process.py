"""``process`` (``--workers N --executor process``): runs in N spawned processes.

Each worker process sets its torch threads (``--threads``) and loads a task's data once
(:func:`seglosses.bench.job.execute_in_worker`); only the driver writes to SQLite. A worker that
dies yields the exception, which the driver records as a failed run. No per-run progress bars.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Iterator, Sequence

from ..job import execute_in_worker
from .base import Executor, Outcome

__all__ = ["ProcessExecutor"]


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


class ProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes."""

    name = "process"

    def submit(self, jobs: Sequence[dict]) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.threads,),
        )
        self._pending = {self._pool.submit(execute_in_worker, job): job for job in jobs}

    def results(self) -> Iterator[Outcome]:
        while self._pending:
            finished, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                job = self._pending.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as exc:  # a crashed worker: the driver records the run as failed
                    outcome = exc
                yield job, outcome
        self._pool.shutdown(wait=True)

    def cancel(self) -> None:
        self._pending = {}
        self._pool.shutdown(wait=True, cancel_futures=True)
