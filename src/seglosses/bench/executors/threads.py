"""``thread`` (``--workers N``, the default): N runs at once in threads of the driver's process.

Each run uses one torch CPU thread (``--threads``), so N runs keep N cores busy; torch releases
the GIL inside its kernels. Model initialisation is serialised (a lock around seeding and
building, :func:`seglosses.bench.train.train_run`), so results do not depend on N. Only the
driver's thread writes to SQLite, as each run completes. On cancel, every running run stops at
its next iteration (:class:`~seglosses.bench.executors.base.Cancelled`) and nothing of it is
yielded.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Iterator, Sequence

from ..job import execute_run
from .base import Bars, Cancelled, Executor, Outcome

__all__ = ["ThreadExecutor"]


class ThreadExecutor(Executor):
    """A thread pool of ``workers`` threads, per-run progress bars."""

    name = "thread"

    def submit(self, jobs: Sequence[dict]) -> None:
        self._stop = threading.Event()
        self._bars = Bars(self.progress, self.workers)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="seglosses-run")
        self._pending = {self._pool.submit(self._work, job): job for job in jobs}

    def _work(self, job: dict) -> dict:
        if self._stop.is_set():
            raise Cancelled()
        slot, progress = self._bars.open(job)

        def checked(i, info):
            if self._stop.is_set():  # the driver was interrupted: abandon this run (nothing is written)
                raise Cancelled()
            progress(i, info)

        try:
            return execute_run(job, self.datasets[job["task"]], checked)
        finally:
            self._bars.close(slot)

    def results(self) -> Iterator[Outcome]:
        while self._pending:
            finished, _ = wait(list(self._pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                yield self._pending.pop(fut), fut.result()
        self._pool.shutdown(wait=True)
        self._bars.close_all()

    def cancel(self) -> None:
        self._stop.set()
        self._pending = {}
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._bars.close_all()
