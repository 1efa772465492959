"""``process`` (``--workers N --executor process``): runs in N spawned processes.

Each worker process sets its torch threads (``--threads``) and loads a task's data once
(:func:`seglosses.bench.job.execute_in_worker`); only the driver writes to SQLite. A worker that
dies yields the exception, which the driver records as a failed run. No per-run progress bars.

No orphans: every worker dies with the driver, even when the driver is killed with ``kill -9``
(:func:`seglosses.bench.executors.lifeline.die_with_parent`: ``PR_SET_PDEATHSIG`` on Linux and a
parent-pid watchdog thread on every POSIX system).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Iterator, Sequence

from ..job import execute_in_worker
from .base import Executor, Outcome
from .lifeline import die_with_parent

__all__ = ["ProcessExecutor"]


def _worker_init(threads: int, parent_pid: int, pdeathsig: bool) -> None:
    die_with_parent(parent_pid, pdeathsig=pdeathsig)  # first: no orphan even if torch's import is slow
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
            # workers are spawned by submit() below, i.e. by this thread: the kernel's parent-death
            # signal follows the spawning *thread*, so it is used only when that is the main thread
            initargs=(self.threads, os.getpid(), threading.current_thread() is threading.main_thread()),
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
