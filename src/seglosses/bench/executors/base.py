"""The executor protocol (:class:`Executor`) and the per-run progress bars (:class:`Bars`)."""

from __future__ import annotations

import threading
from typing import Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Executor", "Outcome", "Bars", "Cancelled"]

#: What an executor yields per job: ``(job, result)`` with the dict of
#: :func:`seglosses.bench.job.execute_run`, or ``(job, exception)`` when the worker failed
#: outside ``execute_run`` (a crashed process, a lost node); the driver records the latter as a
#: failed run (:func:`seglosses.bench.job.failed_result`).
Outcome = Tuple[dict, Union[dict, Exception]]


class Cancelled(BaseException):
    """Raised inside a worker thread to abandon its run when the grid is interrupted."""


class Executor:
    """Where runs execute. Subclasses implement :meth:`submit`, :meth:`results` and
    :meth:`cancel`; the driver (:func:`seglosses.bench.runner.run_bench`) calls :meth:`run`.

    Parameters (keyword-only, the same for every executor; an executor ignores what it does
    not need):

    workers : int
        Runs at the same time.
    threads : int
        Torch CPU threads per run (set in each worker process; in-process executors share the
        driver's setting).
    datasets : mapping
        ``task name -> Dataset`` already loaded by the driver (in-process executors use them;
        out-of-process ones load the job's ``loader`` spec instead).
    progress : bool
        Show per-run progress bars where the executor can.
    on_start : callable, optional
        ``on_start(job)``, called in the driver's thread when a job starts, where the executor
        knows it (the in-process executor: the grid bar's label).
    """

    #: the ``--executor`` name
    name = ""
    #: run through this executor even with one worker or one job (else the driver runs those
    #: in-process with ``local``); Ray sets it: the user asked for a cluster or its GPUs
    always = False

    @classmethod
    def options(cls, cfg) -> dict:
        """Executor-specific keyword arguments read from the bench config (none by default)."""
        return {}

    def __init__(
        self,
        *,
        workers: int = 1,
        threads: int = 1,
        datasets: Optional[Mapping[str, object]] = None,
        progress: bool = True,
        on_start: Optional[Callable[[dict], None]] = None,
    ):
        self.workers = max(1, int(workers))
        self.threads = max(1, int(threads or 1))
        self.datasets = dict(datasets or {})
        self.progress = progress
        self.on_start = on_start

    def submit(self, jobs: Sequence[dict]) -> None:
        """Queue every job (nothing needs to run before :meth:`results` is iterated)."""
        raise NotImplementedError

    def results(self) -> Iterator[Outcome]:
        """Yield one :data:`Outcome` per submitted job, in completion order."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop: abandon running jobs where possible, drop queued ones, release workers.
        Nothing of an abandoned run is yielded (so nothing of it is written)."""
        raise NotImplementedError

    def run(self, jobs: Sequence[dict]) -> Iterator[Outcome]:
        """``submit(jobs)``, then yield :meth:`results`; :meth:`cancel` when the caller stops
        early (an exception, Ctrl-C, closing the generator)."""
        self.submit(jobs)
        complete = False
        try:
            yield from self.results()
            complete = True
        finally:
            if not complete:
                self.cancel()


class Bars:
    """Per-run tqdm bars (iterations, loss, ETA), one screen line per concurrent run."""

    def __init__(self, enabled: bool, slots: int):
        self.enabled, self.free = enabled, list(range(1, slots + 1))
        self.open_bars: Dict[int, object] = {}
        self.lock = threading.Lock()

    def open(self, job: dict):
        """``(slot, progress)``: a bar for ``job`` and the ``progress(i, info)`` callback of
        :func:`seglosses.bench.train.train_run` that advances it."""
        from tqdm.auto import tqdm

        with self.lock:
            slot = self.free.pop(0) if self.free else 1
            bar = tqdm(
                total=job["train"]["iterations"],
                desc=f"{job['task']}:{job['loss']['name']}",
                unit="it",
                leave=False,
                disable=not self.enabled,
                dynamic_ncols=True,
                position=slot,
            )
            self.open_bars[slot] = bar

        def progress(i, info, bar=bar):
            bar.update(1)
            if i % 5 == 0:
                bar.set_postfix(loss=f"{info['loss']:.4f}", lr=f"{info['lr']:.0e}", refresh=False)

        return slot, progress

    def close(self, slot: int) -> None:
        with self.lock:
            bar = self.open_bars.pop(slot, None)
            if bar is not None:
                bar.close()
            self.free.append(slot)
            self.free.sort()

    def close_all(self) -> None:
        for slot in list(self.open_bars):
            self.close(slot)


